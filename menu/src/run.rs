//! The event loop: draws the [`App`], turns keys into [`Action`]s and performs
//! them (reading the mount, starting and supervising QEMU). All the I/O of the
//! menu is here; the decisions are in `state.rs` and `progress.rs`.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use blockfs::catalog::Catalog;
use blockfs::status::{read_catalog, Status};
use crossterm::event::{self, Event, KeyEventKind};

use crate::guest_screen::{GuestScreen, Shown};
use crate::problem::Problem;
use crate::progress::{progress, ready_to_launch};
use crate::state::{AccelState, Action, App, Failure, Notice, Screen, Target};
use crate::term::Term;
use crate::{format, host, MenuConfig, MenuError, MenuExit};
use circular_vm::{self as vm, Display, ResolvedImage, Stdio, Vm, VmError, VmOutcome, VmSpec};

/// How often the mount's figures are read again.
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How long a key is waited for before the screen is redrawn.
const TICK: Duration = Duration::from_millis(200);

/// A start under way: the image is being opened and its first block read, by
/// a thread, so the menu keeps drawing while the network works.
struct StartJob {
    target: Target,
    image: ResolvedImage,
    opened: Receiver<Result<(), String>>,
    /// Dropping this lets the thread close the image.
    _hold: Sender<()>,
}

struct Runner<'a> {
    config: &'a MenuConfig,
    stop: &'a AtomicBool,
    start: Option<StartJob>,
    /// The VM the running screen is about, while the menu has the screen.
    running: Option<(Background, Target)>,
    /// The network screen's wpa_supplicant.
    net: NetLink,
}

/// A VM that runs while the menu shows.
enum Background {
    /// In its own QEMU window (desktop mode).
    Window(Vm),
    /// Left with the presenter's chord: off screen until the person goes back to it.
    OffScreen(GuestScreen),
}

impl Background {
    fn vm(&mut self) -> &mut Vm {
        match self {
            Background::Window(vm) => vm,
            Background::OffScreen(guest) => &mut guest.vm,
        }
    }
}

/// How often the network screen reads the scan results (wpa_supplicant keeps them fresh
/// after a `SCAN`; reading is one small datagram).
const SCAN_EVERY: Duration = Duration::from_secs(2);

pub(crate) fn empty_catalog() -> Catalog {
    let now = time::OffsetDateTime::now_utc();
    Catalog::new(now, now)
}

fn read_status(mountpoint: &Path) -> Result<Status, String> {
    Status::read(mountpoint).map_err(|e| e.to_string())
}

pub(crate) fn accel_state(config: &MenuConfig) -> AccelState {
    match config.accel {
        Some(accel) => AccelState { accel, forced: true, no_kvm_reason: None, tcg_accepted: false },
        None => {
            let check = vm::detect_accel();
            AccelState { accel: check.accel, forced: false, no_kvm_reason: check.no_kvm_reason, tcg_accepted: false }
        }
    }
}

/// Builds the app from the mount: its catalog and status, or the problem.
pub(crate) fn load_app(config: &MenuConfig) -> App {
    let (catalog, problem) = match read_catalog(&config.mountpoint) {
        Ok(c) => (c, None),
        Err(e) => (empty_catalog(), Some(Problem::from_blockfs(&e))),
    };
    let mut app =
        App::new(catalog, read_status(&config.mountpoint), config.appliance, config.display, accel_state(config));
    if let Some(p) = problem {
        app.screen = Screen::Problem(p);
    }
    app.host_cpus = host::cpus();
    app.host_memory_mib = host::memory_mib();
    app.address = host::address();
    app.boot_mode = config.boot_mode.clone();
    app
}

pub(crate) fn run_loop(config: &MenuConfig, term: &mut Term, stop: &AtomicBool) -> Result<MenuExit, MenuError> {
    let mut app = load_app(config);
    let mut runner = Runner { config, stop, start: None, running: None, net: NetLink::new() };
    let mut last_status = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            runner.stop_vm(&mut app);
            return Ok(MenuExit::Quit);
        }
        if last_status.elapsed() >= STATUS_EVERY {
            app.set_status(read_status(&config.mountpoint));
            app.address = host::address();
            last_status = Instant::now();
        }
        runner.net.tick(&mut app);
        runner.tick_start(&mut app, term)?;
        runner.tick_running(&mut app);
        if app.screen == Screen::Details {
            app.kept = app.target().and_then(|t| vm::kept_overlay(&config.cache_dir, &t.distribution, &t.date));
        }
        term.draw(&app)?;
        if !event::poll(TICK)? {
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let action = app.on_key(key);
        if let Some(exit) = runner.perform(action, &mut app, term)? {
            runner.stop_vm(&mut app);
            return Ok(exit);
        }
    }
}

/// The network screen's link to wpa_supplicant, opened when the screen scans and dropped
/// when it closes. The menu and the problem screen's loop ([`crate::show_problem_screen`])
/// both drive the network screen through it.
pub(crate) struct NetLink {
    /// wpa_supplicant, while the network screen is open.
    wifi: Option<crate::wifi::Wifi>,
    /// When the network screen last read the scan results.
    last_scan: Instant,
}

impl NetLink {
    /// Not yet open: the first scan opens it.
    pub(crate) fn new() -> NetLink {
        NetLink { wifi: None, last_scan: Instant::now() }
    }

    /// Carries out what the network screen asked.
    pub(crate) fn perform(&mut self, app: &mut App, cache: &Path, action: crate::network::NetAction) {
        use crate::network::{save_setting, saved_setting, NetAction};
        let Screen::Network(s) = &mut app.screen else { return };
        match action {
            NetAction::None | NetAction::Close => {}
            NetAction::Scan => {
                if s.proxy.is_none() {
                    s.proxy = saved_setting(cache, "circular.proxy");
                }
                if s.fixed_ip.is_none() {
                    s.fixed_ip = saved_setting(cache, "circular.ip");
                }
                if self.wifi.is_none() {
                    match crate::wifi::Wifi::open(Path::new(crate::wifi::CTRL_DIR)) {
                        Ok(w) => self.wifi = Some(w),
                        Err(e) => s.message = Some(e.to_string()),
                    }
                }
                if let Some(w) = &mut self.wifi {
                    s.adapter = Some(w.iface().to_string());
                    if let Err(e) = w.scan() {
                        s.message = Some(e.to_string());
                    }
                }
                self.last_scan = Instant::now() - SCAN_EVERY;
            }
            NetAction::Connect { ssid, security, passphrase } => match &mut self.wifi {
                Some(w) => {
                    if let Err(e) = w.connect(&ssid, security, &passphrase) {
                        s.join_failed(e.to_string());
                    }
                }
                None => s.join_failed("no Wi-Fi adapter is ready".into()),
            },
            NetAction::SetProxy(v) => {
                let ok = v.is_empty() || v.starts_with("http://") || v.starts_with("https://");
                if !ok {
                    s.message = Some("give the proxy as http://host:port (or nothing for none)".into());
                } else if let Err(e) = save_setting(cache, "circular.proxy", &v) {
                    s.message = Some(format!("could not save the proxy: {e}"));
                } else {
                    s.proxy = (!v.is_empty()).then_some(v);
                    s.message = Some(
                        "Saved on the stick; it applies from the next boot (b on the menu's problem screen reboots)."
                            .into(),
                    );
                }
            }
            NetAction::SetFixedIp(v) => match save_setting(cache, "circular.ip", &v) {
                Ok(()) => {
                    s.fixed_ip = (!v.is_empty()).then_some(v);
                    s.message = Some("Saved on the stick; it applies from the next boot (a wrong form is reported then, and DHCP is used).".into());
                }
                Err(e) => s.message = Some(format!("could not save the address: {e}")),
            },
        }
    }

    /// While the network screen is open: the scan results and the join's progress.
    pub(crate) fn tick(&mut self, app: &mut App) {
        let Screen::Network(s) = &mut app.screen else {
            self.wifi = None;
            return;
        };
        if self.last_scan.elapsed() < SCAN_EVERY {
            return;
        }
        self.last_scan = Instant::now();
        let Some(w) = &mut self.wifi else { return };
        match w.networks() {
            Ok(n) => s.set_networks(n),
            Err(e) => s.message = Some(e.to_string()),
        }
        if let crate::network::NetStep::Joining(ssid) = &s.step {
            if let Ok(st) = w.status() {
                if st.joined() && st.ssid.as_deref() == Some(ssid.as_str()) {
                    s.message = Some(format!("Joined {ssid}; waiting for DHCP (the network line below follows)."));
                }
            }
        }
    }
}

impl Runner<'_> {
    fn perform(&mut self, action: Action, app: &mut App, term: &mut Term) -> Result<Option<MenuExit>, MenuError> {
        match action {
            Action::None => {}
            Action::Exit(exit) => return Ok(Some(exit)),
            Action::Boot(target) => self.begin_start(app, target),
            Action::LaunchNow => {
                if let Some(job) = self.start.take() {
                    self.launch(app, term, job)?;
                }
            }
            Action::CancelStart => {
                self.start = None;
                app.screen = Screen::Details;
            }
            Action::StopVm => self.stop_vm(app),
            Action::ShowGuest => self.show_again(app, term)?,
            Action::Retry => {
                let fresh = load_app(self.config);
                let problem = matches!(fresh.screen, Screen::Problem(_));
                app.catalog = fresh.catalog;
                app.screen = if problem { fresh.screen } else { Screen::Distributions };
                app.dist_sel = 0;
                app.set_status(fresh.status);
            }
            Action::Network(a) => self.network(app, a),
            Action::ForgetKept(target) => {
                match vm::remove_kept_overlay(&self.config.cache_dir, &target.distribution, &target.date) {
                    Ok(()) => {
                        app.notice = Some(Notice {
                            text: format!("{} {}: kept changes deleted", target.title, target.date),
                            is_error: false,
                        })
                    }
                    Err(e) => app.notice = Some(Notice { text: e.to_string(), is_error: true }),
                }
            }
        }
        Ok(None)
    }

    /// Carries out what the network screen asked.
    fn network(&mut self, app: &mut App, action: crate::network::NetAction) {
        self.net.perform(app, &self.config.cache_dir, action);
    }

    /// Resolves the image (the "latest" symlink to its date), then opens it in
    /// a thread: that fetches its index, and lets blockfs start its prefetch.
    fn begin_start(&mut self, app: &mut App, mut target: Target) {
        let entry = if target.via_latest { "latest".to_string() } else { target.date.clone() };
        let image = match vm::resolve_image(&self.config.mountpoint, &target.distribution, &entry) {
            Ok(image) => image,
            Err(e) => {
                app.failed(Failure {
                    headline: format!("{} {}: the image is not on the mount", target.title, target.date),
                    reason: e.to_string(),
                    what_to_do: "Press Enter. If blockfs stopped, restart Circular.".to_string(),
                });
                return;
            }
        };
        target.date = image.date.clone();
        let (opened_tx, opened) = mpsc::channel();
        let (hold, hold_rx) = mpsc::channel::<()>();
        let path = image.path.clone();
        let spawned = std::thread::Builder::new().name("open-image".into()).spawn(move || {
            let result = first_read(&path);
            let _ = opened_tx.send(result.as_ref().map(|_| ()).map_err(|e| e.clone()));
            // Keep the image open until the start ends or is given up.
            let _file = result;
            let _ = hold_rx.recv();
        });
        if let Err(e) = spawned {
            app.failed(Failure {
                headline: "Could not start a thread".to_string(),
                reason: e.to_string(),
                what_to_do: "The machine is out of resources; power off a VM or restart.".to_string(),
            });
            return;
        }
        app.starting(target.clone());
        self.start = Some(StartJob { target, image, opened, _hold: hold });
    }

    fn tick_start(&mut self, app: &mut App, term: &mut Term) -> Result<(), MenuError> {
        let Some(job) = &self.start else {
            return Ok(());
        };
        let Screen::Starting(s) = &mut app.screen else {
            self.start = None;
            return Ok(());
        };
        match job.opened.try_recv() {
            Ok(Ok(())) => s.image_ready = true,
            Ok(Err(reason)) => {
                let target = job.target.clone();
                self.start = None;
                app.failed(Failure {
                    headline: format!("{} {}: the image could not be read", target.title, target.date),
                    reason,
                    what_to_do: "A snapshot that is not fully cached needs the server: check the network \
                                 line below, then press Enter and try again."
                        .to_string(),
                });
                return Ok(());
            }
            Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
        }
        let Screen::Starting(s) = &app.screen else {
            return Ok(());
        };
        let Some(snapshot) = app.find_snapshot(&job.target) else {
            return Ok(());
        };
        let p = progress(app.status(), &job.target, snapshot, s.fetched_at_start);
        let prefetch_seen = s.prefetch_seen || p.from_profile;
        let ready = ready_to_launch(s.image_ready, snapshot.profile.is_some(), prefetch_seen, &p, s.since.elapsed());
        if let Screen::Starting(s) = &mut app.screen {
            s.prefetch_seen = prefetch_seen;
        }
        if ready {
            if let Some(job) = self.start.take() {
                self.launch(app, term, job)?;
            }
        }
        Ok(())
    }

    fn launch(&mut self, app: &mut App, term: &mut Term, job: StartJob) -> Result<(), MenuError> {
        let target = job.target.clone();
        let fetched_at_start = match &app.screen {
            Screen::Starting(s) => s.fetched_at_start,
            _ => 0,
        };
        let Some(snapshot) = app.find_snapshot(&target).cloned() else {
            app.screen = Screen::Distributions;
            return Ok(());
        };
        let settings = app.settings_for(&target.distribution, &target.date);
        let mut spec = VmSpec::new(
            &target.distribution,
            &job.image.date,
            job.image.path.clone(),
            snapshot.image_size,
            snapshot.boot.firmware,
            settings,
            app.accel.accel,
            self.config.display,
            self.config.cache_dir.clone(),
        );
        spec.media = snapshot.media;
        if self.config.display == Display::Presenter {
            term.suspend(&format!(
                "Circular: {} {} is starting under QEMU ({}) on the screen. Its serial console follows.\r\n\
                 Ctrl+Alt+Esc leaves the guest (it keeps running); powering it off comes back to the menu.\r\n",
                target.title,
                target.date,
                app.accel.accel.as_str().to_uppercase()
            ))?;
            let started = GuestScreen::start(&spec);
            // QEMU holds the image open itself now.
            drop(job);
            match started {
                Ok(guest) => self.show(app, term, guest, target, fetched_at_start)?,
                Err(e) => {
                    term.resume()?;
                    finish(app, &target, Err(e));
                }
            }
            return Ok(());
        }
        if self.config.display.is_windowed() {
            match Vm::start(&spec, Stdio::Detached) {
                Ok(vm) => {
                    app.running(target.clone(), fetched_at_start);
                    self.running = Some((Background::Window(vm), target));
                }
                Err(e) => finish(app, &target, Err(e)),
            }
            // The job (and its open image) ends here; QEMU holds its own.
            return Ok(());
        }
        let mut banner = format!(
            "Circular: {} {} is starting under QEMU ({}). The guest's console follows.\r\n\
             Power the guest off to come back to the menu (ctrl-a x stops QEMU at once).\r\n",
            target.title,
            target.date,
            app.accel.accel.as_str().to_uppercase()
        );
        if let Some(login) = &snapshot.login {
            banner.push_str(&format!("Log in: {login}\r\n"));
        }
        term.suspend(&banner)?;
        let outcome = Vm::start(&spec, Stdio::Terminal).and_then(|mut vm| loop {
            if self.stop.load(Ordering::Relaxed) {
                break vm.stop(Duration::from_secs(5));
            }
            if let Some(o) = vm.try_wait()? {
                break Ok(o);
            }
            std::thread::sleep(Duration::from_millis(100));
        });
        drop(job);
        term.resume()?;
        drain_input();
        finish(app, &target, outcome);
        Ok(())
    }

    /// Shows the guest through the presenter until it powers off, the person leaves it, or the
    /// presenter fails; the menu then has the terminal again.
    fn show(
        &mut self,
        app: &mut App,
        term: &mut Term,
        mut guest: GuestScreen,
        target: Target,
        fetched_at_start: u64,
    ) -> Result<(), MenuError> {
        let shown = guest.show(self.stop);
        term.resume()?;
        drain_input();
        match shown {
            Shown::Ended(outcome) => finish(app, &target, outcome),
            Shown::Left => {
                app.running(target.clone(), fetched_at_start);
                self.running = Some((Background::OffScreen(guest), target));
            }
            Shown::Failed(reason) => app.failed(Failure {
                headline: format!("{} {}: the guest's screen could not be shown", target.title, target.date),
                reason,
                what_to_do: "The VM was stopped. To boot with the text display instead, press e in the stick's \
                             GRUB menu and add circular.display=curses to the linux line."
                    .to_string(),
            }),
        }
        Ok(())
    }

    /// Back to a guest left with the chord.
    fn show_again(&mut self, app: &mut App, term: &mut Term) -> Result<(), MenuError> {
        match self.running.take() {
            Some((Background::OffScreen(guest), target)) => {
                let fetched_at_start = match &app.screen {
                    Screen::Running(r) => r.fetched_at_start,
                    _ => 0,
                };
                term.suspend(&format!("Circular: back to {} {}.\r\n", target.title, target.date))?;
                self.show(app, term, guest, target, fetched_at_start)
            }
            other => {
                self.running = other;
                Ok(())
            }
        }
    }

    fn tick_running(&mut self, app: &mut App) {
        let Some((background, target)) = &mut self.running else {
            return;
        };
        match background.vm().try_wait() {
            Ok(None) => {}
            Ok(Some(o)) => {
                let target = target.clone();
                self.running = None;
                drain_input();
                finish(app, &target, Ok(o));
            }
            Err(e) => {
                let target = target.clone();
                self.running = None;
                finish(app, &target, Err(e));
            }
        }
    }

    fn stop_vm(&mut self, app: &mut App) {
        if let Some((mut background, target)) = self.running.take() {
            let outcome = background.vm().stop(Duration::from_secs(5));
            finish(app, &target, outcome);
        }
    }
}

/// Throws away keys typed while a VM had the keyboard: on the appliance, the
/// guest's full-screen display and this console share it, and an Enter meant
/// for the guest must not boot something from the menu afterwards.
fn drain_input() {
    while event::poll(Duration::ZERO).unwrap_or(false) {
        if event::read().is_err() {
            break;
        }
    }
}

/// Opens the image and reads its first sector: proof that the index and the
/// first block arrive, before QEMU is given the file.
fn first_read(path: &Path) -> Result<std::fs::File, String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut sector = [0u8; 512];
    file.read_exact(&mut sector).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(file)
}

/// Shows how a VM ended: a notice when the guest powered off, a failure screen
/// with QEMU's words otherwise.
fn finish(app: &mut App, target: &Target, outcome: Result<VmOutcome, VmError>) {
    match outcome {
        Ok(o) if o.powered_off => app.finished(Notice {
            text: format!("{} {}: {}", target.title, target.date, format::vm_outcome(&o)),
            is_error: false,
        }),
        Ok(o) => {
            let reason = o.reason();
            app.failed(Failure {
                headline: format!("{} {}: {}", target.title, target.date, format::vm_outcome(&o)),
                what_to_do: advice(&reason),
                reason,
            })
        }
        Err(e) => app.failed(Failure {
            headline: format!("{} {}: QEMU could not be started", target.title, target.date),
            reason: e.to_string(),
            what_to_do: "Press Enter to go back.".to_string(),
        }),
    }
}

/// A hint from QEMU's message: the usual causes, in the words a person needs.
pub(crate) fn advice(reason: &str) -> String {
    let r = reason.to_lowercase();
    if r.contains("kvm") {
        "KVM failed: check /dev/kvm and VT-x/AMD-V in the firmware setup, or run with --accel tcg.".to_string()
    } else if r.contains("memory") || r.contains("cannot allocate") {
        "Not enough memory: lower the VM's memory in its settings and boot again.".to_string()
    } else if r.contains("input/output error") || r.contains("could not open") || r.contains("could not read") {
        "The image could not be read: without the network only fully cached snapshots boot. \
         Check the network line, then try again."
            .to_string()
    } else if r.contains("display") || r.contains("sdl") || r.contains("gtk") || r.contains("dbus") {
        "The display could not open: try --display curses or --display none \
         (on the stick: circular.display=curses in GRUB's linux line)."
            .to_string()
    } else {
        "Press Enter to go back; change the VM settings or try another snapshot.".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::advice;

    #[test]
    fn the_network_screen_says_when_no_wifi_adapter_is_ready() {
        use crate::state::tests::{app, key};
        use crossterm::event::KeyCode;
        let dir = tempfile::tempdir().unwrap();
        let config = crate::MenuConfig {
            mountpoint: dir.path().join("m"),
            cache_dir: dir.path().to_path_buf(),
            accel: None,
            display: circular_vm::Display::None,
            appliance: true,
            boot_mode: None,
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let mut runner =
            super::Runner { config: &config, stop: &stop, start: None, running: None, net: super::NetLink::new() };
        let mut a = app();
        a.appliance = true;
        let action = a.on_key(key(KeyCode::Char('n')));
        let crate::state::Action::Network(n) = action else { panic!("{action:?}") };
        runner.network(&mut a, n);
        let crate::state::Screen::Network(s) = &a.screen else { panic!() };
        // (No wpa_supplicant runs here: /run/wpa_supplicant has no socket.)
        assert!(s.message.as_deref().is_some_and(|m| m.contains("no Wi-Fi adapter")), "{s:?}");
    }

    #[test]
    fn advice_names_the_usual_causes() {
        assert!(advice("qemu-system-x86_64: failed to initialize kvm: Permission denied").contains("--accel tcg"));
        assert!(advice("cannot set up guest memory 'pc.ram': Cannot allocate memory").contains("lower"));
        assert!(advice("Could not open '/mnt/x.img': Input/output error").contains("network"));
        assert!(advice("something else").contains("Enter"));
    }
}
