//! The menu's state machine: what is on screen, what is selected, and what a
//! key does. Pure: no terminal, no files, no processes, so every state can be
//! driven and checked in a unit test. The runner (`run.rs`) performs the
//! [`Action`]s that keys return and feeds results back in.

use std::collections::HashMap;
use std::time::Instant;

use blockfs::catalog::{Catalog, Distribution, Media, Snapshot};
use blockfs::status::Status;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::problem::{ErrorKind, Problem};
use crate::MenuExit;
use circular_vm::{Accel, DiskChanges, Display, KeptOverlay, VmSettings};

/// One snapshot chosen to boot, always by date (the "latest" entry resolves to one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub distribution: String,
    pub title: String,
    pub date: String,
    /// Chosen through the "latest" entry.
    pub via_latest: bool,
}

/// The accelerator, and whether the person agreed to go on without KVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelState {
    pub accel: Accel,
    /// Set on the command line (`--accel`): never ask.
    pub forced: bool,
    pub no_kvm_reason: Option<String>,
    /// "Boot anyway" was answered once; not asked again this session.
    pub tcg_accepted: bool,
}

impl AccelState {
    fn must_ask(&self) -> bool {
        self.accel == Accel::Tcg && !self.forced && !self.tcg_accepted
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Starting {
    pub target: Target,
    /// `Status::fetched_bytes` when the start began, to show this start's share.
    pub fetched_at_start: u64,
    pub since: Instant,
    /// The first read of the image succeeded (its index and first block are here).
    pub image_ready: bool,
    /// A prefetch of this snapshot's profile was seen in the status.
    pub prefetch_seen: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub target: Target,
    pub fetched_at_start: u64,
    pub since: Instant,
    /// `x` was pressed: the next `y` stops the VM.
    pub confirm_stop: bool,
}

/// A start that went wrong, shown until a key is pressed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub headline: String,
    pub reason: String,
    pub what_to_do: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// Level 1: the distributions.
    Distributions,
    /// Level 2: the selected distribution's snapshots.
    Snapshots,
    /// The selected snapshot's details and VM settings.
    Details,
    /// No KVM: ask before going on under TCG.
    AskNoKvm(Target),
    Starting(Starting),
    /// The VM runs in its own window, or off screen after the presenter's chord; the menu
    /// stays on this terminal.
    Running(Running),
    Failed(Failure),
    /// Clear-screen states: no network and nothing cached, catalog refused, …
    Problem(Problem),
    /// The network screen (`n`, on the appliance): Wi-Fi, proxy, fixed address.
    Network(Box<crate::network::NetScreen>),
}

/// What the runner must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    None,
    Exit(MenuExit),
    /// Start this snapshot: open its image, watch the fetch, then launch.
    Boot(Target),
    /// Launch now, without waiting for the boot working set.
    LaunchNow,
    /// Give up the start under way.
    CancelStart,
    /// Stop the running VM.
    StopVm,
    /// Show again the guest that was left with the presenter's chord.
    ShowGuest,
    /// Read the catalog and the status again.
    Retry,
    /// Delete the kept changes of this snapshot.
    ForgetKept(Target),
    /// What the network screen asks for.
    Network(crate::network::NetAction),
}

/// A line shown under the list: how the last VM ended, and similar news.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub text: String,
    pub is_error: bool,
}

/// The settings rows of the details screen, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Memory,
    Cpus,
    Changes,
    /// The size of a CD's empty scratch disk (only for a CD snapshot).
    Scratch,
    FullScreen,
    Boot,
}

pub struct App {
    pub catalog: Catalog,
    /// The last read of the mount's status, or why it could not be read.
    pub status: Result<Status, String>,
    /// The network line's first words (`host::address`), e.g. "online via eth0 10.0.2.15",
    /// "DHCP… (eth0)", "no network (cable unplugged?)".
    pub address: Option<String>,
    /// How the appliance booted, for the status line (`MenuConfig::boot_mode`).
    pub boot_mode: Option<String>,
    pub appliance: bool,
    pub display: Display,
    pub accel: AccelState,
    pub screen: Screen,
    pub dist_sel: usize,
    /// 0 is the "latest" entry; i is `snapshots[i - 1]`.
    pub snap_sel: usize,
    pub field_sel: usize,
    /// The kept overlay of the snapshot on the details screen, if any.
    pub kept: Option<KeptOverlay>,
    /// `d` was pressed once on the details screen: the next `d` forgets.
    pub forget_armed: bool,
    pub notice: Option<Notice>,
    pub host_cpus: u32,
    pub host_memory_mib: u32,
    settings: HashMap<(String, String), VmSettings>,
}

const MEMORY_STEP_MIB: u32 = 256;
/// The sizes ←/→ offer for a CD's scratch disk, in GiB (0: none).
const SCRATCH_STEPS_GIB: [u32; 7] = [0, 4, 8, 16, 32, 64, 128];
const MEMORY_MIN_MIB: u32 = 256;

impl App {
    pub fn new(
        catalog: Catalog,
        status: Result<Status, String>,
        appliance: bool,
        display: Display,
        accel: AccelState,
    ) -> App {
        let mut app = App {
            catalog,
            status,
            address: None,
            boot_mode: None,
            appliance,
            display,
            accel,
            screen: Screen::Distributions,
            dist_sel: 0,
            snap_sel: 0,
            field_sel: 0,
            kept: None,
            forget_armed: false,
            notice: None,
            host_cpus: 1,
            host_memory_mib: 1024,
            settings: HashMap::new(),
        };
        app.check_offline();
        app
    }

    pub fn distribution(&self) -> Option<&Distribution> {
        self.catalog.distributions.get(self.dist_sel)
    }

    /// The snapshot under the cursor on level 2 (the latest one for the "latest" entry).
    pub fn snapshot(&self) -> Option<&Snapshot> {
        let d = self.distribution()?;
        d.snapshots.get(self.snap_sel.saturating_sub(1))
    }

    pub fn find_snapshot(&self, target: &Target) -> Option<&Snapshot> {
        self.catalog.distribution(&target.distribution)?.snapshots.iter().find(|s| s.date == target.date)
    }

    /// The selected snapshot as a boot target.
    pub fn target(&self) -> Option<Target> {
        let d = self.distribution()?;
        let s = self.snapshot()?;
        Some(Target {
            distribution: d.name.clone(),
            title: d.title.clone(),
            date: s.date.clone(),
            via_latest: self.snap_sel == 0,
        })
    }

    /// Entries of level 1: distributions, then (appliance) Power off and Reboot.
    pub fn level1_len(&self) -> usize {
        self.catalog.distributions.len() + if self.appliance { 2 } else { 0 }
    }

    pub fn level2_len(&self) -> usize {
        self.distribution().map_or(0, |d| if d.snapshots.is_empty() { 0 } else { d.snapshots.len() + 1 })
    }

    pub fn fields(&self) -> Vec<Field> {
        let mut f = vec![Field::Memory, Field::Cpus];
        if self.snapshot().is_some_and(|s| s.media == Media::Cdrom) {
            f.push(Field::Scratch);
        }
        f.push(Field::Changes);
        if self.display.is_windowed() {
            f.push(Field::FullScreen);
        }
        f.push(Field::Boot);
        f
    }

    /// The settings for a snapshot: what the person set, else the catalog's.
    pub fn settings_for(&self, distribution: &str, date: &str) -> VmSettings {
        if let Some(s) = self.settings.get(&(distribution.to_string(), date.to_string())) {
            return *s;
        }
        let boot = self
            .catalog
            .distribution(distribution)
            .and_then(|d| d.snapshots.iter().find(|s| s.date == date))
            .map(|s| s.boot.clone())
            .unwrap_or_default();
        let mut s = VmSettings::from_catalog(&boot, self.appliance);
        s.cpus = s.cpus.clamp(1, self.host_cpus.max(1));
        s.memory_mib = s.memory_mib.clamp(MEMORY_MIN_MIB, self.max_memory_mib());
        s
    }

    fn max_memory_mib(&self) -> u32 {
        // Leave the host room for itself, blockfs's cache and QEMU.
        self.host_memory_mib.saturating_sub(512).max(MEMORY_MIN_MIB)
    }

    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref().ok()
    }

    /// New figures from the mount; may enter or leave the "no network and
    /// nothing cached" screen.
    pub fn set_status(&mut self, status: Result<Status, String>) {
        self.status = status;
        self.check_offline();
    }

    /// True when nothing can boot: no source answers and no snapshot is fully cached.
    pub fn nothing_bootable(&self) -> bool {
        match self.status() {
            Some(s) => !s.online && !s.snapshots.iter().any(|x| x.fully_cached()),
            None => false,
        }
    }

    fn check_offline(&mut self) {
        let browsing = matches!(self.screen, Screen::Distributions | Screen::Snapshots | Screen::Details);
        let shown =
            matches!(self.screen, Screen::Problem(Problem::NoNetwork { .. } | Problem::CertificateRefused { .. }));
        if browsing && self.nothing_bootable() {
            // A read that met only certificate refusals says so by its kind; the
            // screen then does not send the person to the network cable.
            let refused = self.status().and_then(|s| s.last_error.as_ref()).filter(|e| e.kind == ErrorKind::Tls);
            self.screen = Screen::Problem(match refused {
                Some(e) => Problem::from_report(e),
                None => Problem::NoNetwork {
                    detail: self
                        .status()
                        .and_then(|s| s.sources.iter().find_map(|x| x.last_error.clone()))
                        .unwrap_or_default(),
                },
            });
        } else if shown && !self.nothing_bootable() {
            self.screen = Screen::Distributions;
        }
    }

    /// Handles one key press and says what the runner must do.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        let ctrl_c = key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c {
            // In raw mode ctrl-c is a key, not a signal: treat it as quit, except
            // on the appliance (there is nothing to quit to) and while a VM runs.
            return match (&self.screen, self.appliance) {
                (Screen::Running(_) | Screen::Starting(_), _) | (_, true) => Action::None,
                _ => Action::Exit(MenuExit::Quit),
            };
        }
        let code = key.code;
        let quit = || -> Action {
            if self.appliance {
                Action::None
            } else {
                Action::Exit(MenuExit::Quit)
            }
        };
        if let Screen::Network(s) = &mut self.screen {
            return match s.on_key(code) {
                // Back to the menu, read again: the network may have brought the store.
                crate::network::NetAction::Close => Action::Retry,
                a => Action::Network(a),
            };
        }
        let open_network = self.appliance
            && code == KeyCode::Char('n')
            && matches!(self.screen, Screen::Distributions | Screen::Problem(_));
        if open_network {
            self.screen = Screen::Network(Box::new(crate::network::NetScreen::new(None, None, None)));
            return Action::Network(crate::network::NetAction::Scan);
        }
        match self.screen.clone() {
            Screen::Distributions => match code {
                KeyCode::Up | KeyCode::Char('k') => {
                    self.dist_sel = self.dist_sel.saturating_sub(1);
                    Action::None
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    self.dist_sel = (self.dist_sel + 1).min(self.level1_len().saturating_sub(1));
                    Action::None
                }
                KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                    let n = self.catalog.distributions.len();
                    if self.dist_sel < n {
                        self.snap_sel = 0;
                        self.screen = Screen::Snapshots;
                        Action::None
                    } else if self.appliance && self.dist_sel == n {
                        Action::Exit(MenuExit::PowerOff)
                    } else if self.appliance && self.dist_sel == n + 1 {
                        Action::Exit(MenuExit::Reboot)
                    } else {
                        Action::None
                    }
                }
                KeyCode::Char('q') => quit(),
                _ => Action::None,
            },
            Screen::Snapshots => match code {
                KeyCode::Up | KeyCode::Char('k') => {
                    self.snap_sel = self.snap_sel.saturating_sub(1);
                    Action::None
                }
                KeyCode::Down | KeyCode::Char('j') => {
                    self.snap_sel = (self.snap_sel + 1).min(self.level2_len().saturating_sub(1));
                    Action::None
                }
                KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                    if self.snapshot().is_some() {
                        self.screen = Screen::Details;
                        // The cursor starts on "Boot": Enter, Enter, Enter boots.
                        self.field_sel = self.fields().len() - 1;
                        self.forget_armed = false;
                    }
                    Action::None
                }
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Left | KeyCode::Char('h') => {
                    self.screen = Screen::Distributions;
                    Action::None
                }
                KeyCode::Char('q') => quit(),
                _ => Action::None,
            },
            Screen::Details => self.details_key(code),
            Screen::AskNoKvm(target) => match code {
                KeyCode::Enter | KeyCode::Char('y') => {
                    self.accel.tcg_accepted = true;
                    Action::Boot(target)
                }
                KeyCode::Esc | KeyCode::Backspace | KeyCode::Char('n') => {
                    self.screen = Screen::Details;
                    Action::None
                }
                _ => Action::None,
            },
            Screen::Starting(_) => match code {
                KeyCode::Enter => Action::LaunchNow,
                KeyCode::Esc | KeyCode::Backspace => Action::CancelStart,
                _ => Action::None,
            },
            Screen::Running(mut r) => {
                if self.appliance && self.display != Display::Presenter {
                    // Full-screen QEMU may share this keyboard: never act on it. (The presenter
                    // grabs the keyboard while it shows the guest; this screen shows only after
                    // the person left the guest.)
                    return Action::None;
                }
                match (r.confirm_stop, code) {
                    (false, KeyCode::Enter) if self.display == Display::Presenter => Action::ShowGuest,
                    (false, KeyCode::Char('x')) => {
                        r.confirm_stop = true;
                        self.screen = Screen::Running(r);
                        Action::None
                    }
                    (true, KeyCode::Char('y')) => Action::StopVm,
                    (true, _) => {
                        r.confirm_stop = false;
                        self.screen = Screen::Running(r);
                        Action::None
                    }
                    _ => Action::None,
                }
            }
            Screen::Failed(_) => match code {
                KeyCode::Enter | KeyCode::Esc | KeyCode::Backspace => {
                    self.screen = if self.snapshot().is_some() { Screen::Details } else { Screen::Distributions };
                    Action::None
                }
                KeyCode::Char('q') => quit(),
                _ => Action::None,
            },
            // Handled above.
            Screen::Network(_) => Action::None,
            Screen::Problem(_) => match code {
                KeyCode::Enter | KeyCode::Char('r') => Action::Retry,
                KeyCode::Char('p') if self.appliance => Action::Exit(MenuExit::PowerOff),
                KeyCode::Char('b') if self.appliance => Action::Exit(MenuExit::Reboot),
                KeyCode::Char('q') => quit(),
                _ => Action::None,
            },
        }
    }

    fn details_key(&mut self, code: KeyCode) -> Action {
        let fields = self.fields();
        let field = fields.get(self.field_sel).copied().unwrap_or(Field::Boot);
        let Some(target) = self.target() else {
            self.screen = Screen::Snapshots;
            return Action::None;
        };
        if code != KeyCode::Char('d') {
            self.forget_armed = false;
        }
        match code {
            KeyCode::Up | KeyCode::Char('k') => {
                self.field_sel = self.field_sel.saturating_sub(1);
                Action::None
            }
            KeyCode::Down | KeyCode::Char('j') => {
                self.field_sel = (self.field_sel + 1).min(fields.len() - 1);
                Action::None
            }
            KeyCode::Left | KeyCode::Char('-') | KeyCode::Char('h') => {
                self.adjust(&target, field, -1);
                Action::None
            }
            KeyCode::Right | KeyCode::Char('+') | KeyCode::Char('=') | KeyCode::Char('l') | KeyCode::Char(' ') => {
                self.adjust(&target, field, 1);
                Action::None
            }
            KeyCode::Enter | KeyCode::Char('b') => self.boot(target),
            KeyCode::Char('d') if self.kept.is_some() => {
                if self.forget_armed {
                    self.forget_armed = false;
                    Action::ForgetKept(target)
                } else {
                    self.forget_armed = true;
                    Action::None
                }
            }
            KeyCode::Esc | KeyCode::Backspace => {
                self.screen = Screen::Snapshots;
                Action::None
            }
            KeyCode::Char('q') => {
                if self.appliance {
                    Action::None
                } else {
                    Action::Exit(MenuExit::Quit)
                }
            }
            _ => Action::None,
        }
    }

    /// Enter on the details screen: ask about TCG first if needed.
    fn boot(&mut self, target: Target) -> Action {
        if self.accel.must_ask() {
            self.screen = Screen::AskNoKvm(target);
            Action::None
        } else {
            Action::Boot(target)
        }
    }

    fn adjust(&mut self, target: &Target, field: Field, dir: i64) {
        let mut s = self.settings_for(&target.distribution, &target.date);
        match field {
            Field::Memory => {
                let m = i64::from(s.memory_mib) + dir * i64::from(MEMORY_STEP_MIB);
                // Snap to the step so odd catalog values become round numbers.
                let m = (m / i64::from(MEMORY_STEP_MIB)) * i64::from(MEMORY_STEP_MIB);
                s.memory_mib =
                    u32::try_from(m.max(0)).unwrap_or(MEMORY_MIN_MIB).clamp(MEMORY_MIN_MIB, self.max_memory_mib());
            }
            Field::Cpus => {
                let c = i64::from(s.cpus) + dir;
                s.cpus = u32::try_from(c.max(1)).unwrap_or(1).min(self.host_cpus.max(1));
            }
            Field::Changes => {
                s.changes = match s.changes {
                    DiskChanges::Discard => DiskChanges::Keep,
                    DiskChanges::Keep => DiskChanges::Discard,
                }
            }
            Field::Scratch => {
                let at = SCRATCH_STEPS_GIB.iter().position(|&g| g >= s.scratch_gib).unwrap_or(0);
                let next = if dir < 0 { at.saturating_sub(1) } else { (at + 1).min(SCRATCH_STEPS_GIB.len() - 1) };
                s.scratch_gib = SCRATCH_STEPS_GIB[next];
            }
            Field::FullScreen => s.full_screen = !s.full_screen,
            Field::Boot => return,
        }
        self.settings.insert((target.distribution.clone(), target.date.clone()), s);
    }

    /// The runner began a start.
    pub fn starting(&mut self, target: Target) {
        let fetched_at_start = self.status().map_or(0, |s| s.fetched_bytes);
        self.screen = Screen::Starting(Starting {
            target,
            fetched_at_start,
            since: Instant::now(),
            image_ready: false,
            prefetch_seen: false,
        });
    }

    /// QEMU runs in a window; the menu shows the running screen.
    pub fn running(&mut self, target: Target, fetched_at_start: u64) {
        self.screen = Screen::Running(Running { target, fetched_at_start, since: Instant::now(), confirm_stop: false });
    }

    /// Back to the details of the snapshot that ran, with news of how it ended.
    pub fn finished(&mut self, notice: Notice) {
        self.notice = Some(notice);
        self.screen = Screen::Details;
        self.check_offline();
    }

    pub fn failed(&mut self, failure: Failure) {
        self.notice = Some(Notice { text: failure.headline.clone(), is_error: true });
        self.screen = Screen::Failed(failure);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use blockfs::catalog::BootSettings;
    use blockfs::format::Sha1Name;
    use blockfs::status::SnapshotStatus;
    use time::macros::datetime;

    pub fn snapshot(date: &str, notes: &str) -> Snapshot {
        Snapshot {
            date: date.to_string(),
            index: Sha1Name::of(date.as_bytes()),
            image_size: 2 << 30,
            stored_bytes: 850 << 20,
            profile: None,
            boot: BootSettings { memory_mib: 1024, cpus: 2, firmware: blockfs::catalog::Firmware::Bios },
            notes: notes.to_string(),
            media: Default::default(),
            login: None,
            source: None,
        }
    }

    pub fn catalog() -> Catalog {
        let mut c = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        c.add_snapshot("bookworm", Some("Debian 12 (bookworm)"), snapshot("2026-11-15", ""));
        c.add_snapshot("bookworm", None, snapshot("2026-11-22", "Point release 12.13"));
        c.add_snapshot("trixie", Some("Debian 13 (trixie)"), snapshot("2026-11-22", ""));
        c
    }

    pub fn status(online: bool, cached: &[(&str, &str, u64, u64)]) -> Status {
        Status {
            online,
            cache_bytes: 300 << 20,
            cache_max_bytes: 3 << 30,
            fetched_bytes: 120 << 20,
            cache_hits: 1234,
            snapshots: cached
                .iter()
                .map(|(d, date, c, t)| SnapshotStatus {
                    distribution: d.to_string(),
                    date: date.to_string(),
                    index_cached: true,
                    total_blocks: *t,
                    cached_blocks: *c,
                })
                .collect(),
            ..Status::default()
        }
    }

    pub fn accel(accel: Accel, forced: bool) -> AccelState {
        AccelState {
            accel,
            forced,
            no_kvm_reason: (accel == Accel::Tcg)
                .then(|| "the CPU reports no hardware virtualization (VT-x/AMD-V)".to_string()),
            tcg_accepted: false,
        }
    }

    pub fn app() -> App {
        let mut a = App::new(
            catalog(),
            Ok(status(true, &[("bookworm", "2026-11-22", 45, 100)])),
            false,
            Display::Sdl,
            accel(Accel::Kvm, false),
        );
        a.host_cpus = 4;
        a.host_memory_mib = 8192;
        a
    }

    pub fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn two_levels_and_back() {
        let mut a = app();
        assert_eq!(a.on_key(key(KeyCode::Down)), Action::None);
        assert_eq!(a.distribution().unwrap().name, "trixie");
        a.on_key(key(KeyCode::Char('j'))); // stays on the last entry
        assert_eq!(a.dist_sel, 1);
        a.on_key(key(KeyCode::Char('k')));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.screen, Screen::Snapshots);
        assert_eq!(a.level2_len(), 3, "latest + two dated");
        // Entry 0 is "latest", i.e. the newest date.
        assert_eq!(a.target().unwrap().date, "2026-11-22");
        assert!(a.target().unwrap().via_latest);
        a.on_key(key(KeyCode::Down));
        a.on_key(key(KeyCode::Down));
        let t = a.target().unwrap();
        assert_eq!((t.date.as_str(), t.via_latest), ("2026-11-15", false));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.screen, Screen::Details);
        assert_eq!(a.fields()[a.field_sel], Field::Boot);
        a.on_key(key(KeyCode::Esc));
        assert_eq!(a.screen, Screen::Snapshots);
        a.on_key(key(KeyCode::Backspace));
        assert_eq!(a.screen, Screen::Distributions);
        assert_eq!(a.on_key(key(KeyCode::Char('q'))), Action::Exit(MenuExit::Quit));
    }

    #[test]
    fn settings_are_edited_and_boot_carries_the_target() {
        let mut a = app();
        a.on_key(key(KeyCode::Enter));
        a.on_key(key(KeyCode::Enter));
        a.field_sel = 0; // memory
        a.on_key(key(KeyCode::Right));
        a.on_key(key(KeyCode::Right));
        a.on_key(key(KeyCode::Down)); // cpus
        a.on_key(key(KeyCode::Right));
        a.on_key(key(KeyCode::Right));
        a.on_key(key(KeyCode::Right)); // clamped to the host's 4
        a.on_key(key(KeyCode::Down)); // changes
        a.on_key(key(KeyCode::Right));
        a.on_key(key(KeyCode::Down)); // full screen
        a.on_key(key(KeyCode::Char(' ')));
        let s = a.settings_for("bookworm", "2026-11-22");
        assert_eq!(s.memory_mib, 1536);
        assert_eq!(s.cpus, 4);
        assert_eq!(s.changes, DiskChanges::Keep);
        assert!(s.full_screen);
        // Other snapshots keep the catalog's values.
        assert_eq!(a.settings_for("bookworm", "2026-11-15").memory_mib, 1024);
        match a.on_key(key(KeyCode::Enter)) {
            Action::Boot(t) => assert_eq!((t.distribution.as_str(), t.date.as_str()), ("bookworm", "2026-11-22")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_kvm_asks_once_unless_forced() {
        let mut a = app();
        a.accel = accel(Accel::Tcg, false);
        a.on_key(key(KeyCode::Enter));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::None);
        assert!(matches!(a.screen, Screen::AskNoKvm(_)));
        a.on_key(key(KeyCode::Char('n')));
        assert_eq!(a.screen, Screen::Details);
        a.on_key(key(KeyCode::Enter));
        assert!(matches!(a.on_key(key(KeyCode::Char('y'))), Action::Boot(_)));
        a.screen = Screen::Details;
        assert!(matches!(a.on_key(key(KeyCode::Enter)), Action::Boot(_)), "asked once per session");

        let mut forced = app();
        forced.accel = accel(Accel::Tcg, true);
        forced.on_key(key(KeyCode::Enter));
        forced.on_key(key(KeyCode::Enter));
        assert!(matches!(forced.on_key(key(KeyCode::Enter)), Action::Boot(_)));
    }

    #[test]
    fn nothing_cached_and_offline_is_a_clear_screen_until_it_changes() {
        let mut a = app();
        a.set_status(Ok(status(false, &[("bookworm", "2026-11-22", 45, 100)])));
        assert!(matches!(a.screen, Screen::Problem(Problem::NoNetwork { .. })));
        assert_eq!(a.on_key(key(KeyCode::Char('r'))), Action::Retry);
        // A fully cached snapshot can boot offline: the menu comes back.
        a.set_status(Ok(status(false, &[("bookworm", "2026-11-22", 100, 100)])));
        assert_eq!(a.screen, Screen::Distributions);
    }

    #[test]
    fn certificate_refusals_offline_get_their_own_screen_not_the_cables() {
        let mut a = app();
        let mut st = status(false, &[("bookworm", "2026-11-22", 45, 100)]);
        st.last_error = Some(blockfs::ErrorReport {
            kind: ErrorKind::Tls,
            message: "TLS: the server's certificate has expired".into(),
        });
        a.set_status(Ok(st.clone()));
        match &a.screen {
            Screen::Problem(p @ Problem::CertificateRefused { .. }) => assert!(p.detail().contains("expired")),
            other => panic!("expected the certificate screen, got {other:?}"),
        }
        // Another kind of last error is the no-network screen, as before.
        st.last_error = Some(blockfs::ErrorReport { kind: ErrorKind::Io, message: "x".into() });
        a.screen = Screen::Distributions;
        a.set_status(Ok(st));
        assert!(matches!(a.screen, Screen::Problem(Problem::NoNetwork { .. })));
        // And the screen goes when something can boot.
        a.set_status(Ok(status(false, &[("bookworm", "2026-11-22", 100, 100)])));
        assert_eq!(a.screen, Screen::Distributions);
    }

    #[test]
    fn n_opens_the_network_screen_on_the_appliance_from_the_menu_and_the_no_network_problem() {
        use crate::network::NetAction;
        let mut a = app();
        assert_eq!(a.on_key(key(KeyCode::Char('n'))), Action::None, "desktop mode has no network screen");
        a.appliance = true;
        assert_eq!(a.on_key(key(KeyCode::Char('n'))), Action::Network(NetAction::Scan));
        assert!(matches!(a.screen, Screen::Network(_)));
        // Keys go to the network screen; leaving it reads the store again.
        assert_eq!(a.on_key(key(KeyCode::Char('r'))), Action::Network(NetAction::Scan));
        assert_eq!(a.on_key(key(KeyCode::Esc)), Action::Retry);
        // (The runner's retry shows the menu or the problem again.)
        a.screen = Screen::Distributions;
        a.set_status(Ok(status(false, &[])));
        assert!(matches!(a.screen, Screen::Problem(Problem::NoNetwork { .. })));
        assert_eq!(a.on_key(key(KeyCode::Char('n'))), Action::Network(NetAction::Scan));
        assert!(matches!(a.screen, Screen::Network(_)));
    }

    #[test]
    fn appliance_has_power_entries_and_no_quit() {
        let mut a = app();
        a.appliance = true;
        assert_eq!(a.level1_len(), 4);
        assert_eq!(a.on_key(key(KeyCode::Char('q'))), Action::None);
        assert_eq!(a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::None);
        a.dist_sel = 2;
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::Exit(MenuExit::PowerOff));
        a.on_key(key(KeyCode::Down));
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::Exit(MenuExit::Reboot));
    }

    #[test]
    fn starting_running_and_stop_keys() {
        let mut a = app();
        let t = Target {
            distribution: "bookworm".into(),
            title: "Debian 12 (bookworm)".into(),
            date: "2026-11-22".into(),
            via_latest: true,
        };
        a.starting(t.clone());
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::LaunchNow);
        assert_eq!(a.on_key(key(KeyCode::Esc)), Action::CancelStart);
        a.running(t, 0);
        assert_eq!(a.on_key(key(KeyCode::Char('y'))), Action::None);
        a.on_key(key(KeyCode::Char('x')));
        assert_eq!(a.on_key(key(KeyCode::Char('y'))), Action::StopVm);
        assert_eq!(a.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)), Action::None);
    }

    #[test]
    fn on_the_appliance_the_running_screen_answers_keys_only_after_the_presenters_chord() {
        let mut a = app();
        a.appliance = true;
        let t = Target {
            distribution: "bookworm".into(),
            title: "Debian 12 (bookworm)".into(),
            date: "2026-11-22".into(),
            via_latest: true,
        };
        // curses: QEMU shares the console's keyboard, so the menu must not act on it.
        a.display = Display::Curses;
        a.running(t.clone(), 0);
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::None);
        a.on_key(key(KeyCode::Char('x')));
        assert_eq!(a.on_key(key(KeyCode::Char('y'))), Action::None);
        // The presenter gave the keyboard back: Enter shows the guest again, x y stops it.
        a.display = Display::Presenter;
        a.running(t, 0);
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::ShowGuest);
        a.on_key(key(KeyCode::Char('x')));
        assert_eq!(a.on_key(key(KeyCode::Enter)), Action::None, "Enter after x cancels the stop");
        a.on_key(key(KeyCode::Char('x')));
        assert_eq!(a.on_key(key(KeyCode::Char('y'))), Action::StopVm);
    }

    #[test]
    fn kept_changes_are_forgotten_on_second_d() {
        let mut a = app();
        a.on_key(key(KeyCode::Enter));
        a.on_key(key(KeyCode::Enter));
        assert_eq!(a.on_key(key(KeyCode::Char('d'))), Action::None, "nothing kept");
        a.kept = Some(KeptOverlay { path: "/x".into(), bytes: 1 << 20, modified: std::time::SystemTime::UNIX_EPOCH });
        assert_eq!(a.on_key(key(KeyCode::Char('d'))), Action::None);
        assert!(a.forget_armed);
        assert!(matches!(a.on_key(key(KeyCode::Char('d'))), Action::ForgetKept(_)));
    }
}
