//! `circular-init`: PID 1 of the Circular appliance.
//!
//! It is what runs after the kernel: it mounts the kernel filesystems, loads
//! the modules this PC needs, mounts (and on first boot grows) the cache
//! partition of the USB stick, brings up the network (wired, and Wi-Fi with
//! wpa_supplicant) with DHCP, starts
//! `blockfs` on the store, and runs the boot menu on the console, returning to
//! it when a guest ends. It reaps orphans, and on power-off, reboot or
//! Ctrl-Alt-Del it stops everything, syncs and unmounts the cache first.
//!
//! It is not a general init system: no service files, no runlevels, no
//! getty. It does not link FUSE, the menu or QEMU; those run as child
//! processes, so that a crash in any of them is reported and recovered from
//! instead of panicking the kernel. Each job lives in its own small module.

use init::protocol::MenuExit;
use init::{bootmode, cache, cmdline, console, firmware, kmod, log, mounts, net, procs, services};
use init::{error, info, say, warn};

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::sys::reboot::{reboot, set_cad_enabled, RebootMode};
use nix::sys::signal::{SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Power {
    Off,
    Reboot,
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("circular-init is PID 1 of the Circular appliance's initramfs; it does nothing elsewhere.");
        std::process::exit(2);
    }
    std::panic::set_hook(Box::new(|info| {
        error!("internal error: {info}");
    }));
    // Nothing may unwind out of PID 1: the kernel would panic.
    let outcome = std::panic::catch_unwind(boot);
    let msg = match outcome {
        Ok(msg) => msg,
        Err(_) => "an internal error stopped the appliance (see the messages above)".to_string(),
    };
    fatal(&msg)
}

/// Everything from the first mount to the menu loop. Returns only when the
/// boot cannot go on, with the reason to show.
fn boot() -> String {
    // The kernel starts init with no PATH; the tools we run live here.
    std::env::set_var("PATH", "/usr/bin:/usr/sbin");
    if let Err(e) = mounts::early() {
        return format!("{e}");
    }
    log::open_kmsg();
    // Ctrl-Alt-Del becomes SIGINT to PID 1, so we can shut down cleanly.
    let _ = set_cad_enabled(false);
    let sigfd = match signals() {
        Ok(fd) => fd,
        Err(e) => return format!("signal setup: {e}"),
    };
    let raw_cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let (mut cfg, warnings) = cmdline::parse(&raw_cmdline);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_string();
    say!("Circular appliance starting (Linux {release})");
    info!("command line: {}", raw_cmdline.trim());
    for w in warnings {
        warn!("{w}");
    }

    // Modules: what the PC's devices ask for, plus what we always need.
    let moddir = PathBuf::from("/lib/modules").join(&release);
    let mut loader = match kmod::Loader::new(&moddir) {
        Ok(loader) => Some(loader),
        Err(e) => {
            warn!("kernel modules: {e}; continuing with what the kernel has built in");
            None
        }
    };
    if let Some(loader) = &mut loader {
        // Drivers whose firmware is on the stick's cache partition wait for it (firmware.rs).
        loader.hold(firmware::held_modules(&std::fs::read_to_string(firmware::HELD_MODULES).unwrap_or_default()));
        // crc32c first: ext4 asks the crypto API for it, which would
        // otherwise call a /sbin/modprobe that does not exist here.
        for m in [
            "crc32c_generic",
            "crc32c_intel",
            "fuse",
            "ext4",
            "vfat",
            "nls_cp437",
            "nls_iso8859_1",
            "evdev",
            "sd_mod",
            "usb_storage",
            "uas",
        ]
        .into_iter()
        // UEFI variables, for the boot mode; a BIOS boot has none (the module says ENODEV).
        .chain(Path::new(bootmode::EFI_DIR).is_dir().then_some("efivarfs"))
        {
            if let Err(e) = loader.load(m) {
                info!("{e}");
            }
        }
        let mut loaded = loader.coldplug(Duration::from_secs(12));
        if cfg.test_hwsim {
            match loader.load("mac80211_hwsim") {
                Ok(new) => loaded.extend(new),
                Err(e) => warn!("circular.test.hwsim: {e}"),
            }
        }
        if !net::wifi::wireless_links().is_empty() {
            for m in net::wifi::CRYPTO_MODULES {
                match loader.load(m) {
                    Ok(new) => loaded.extend(new),
                    Err(e) => info!("{e}"),
                }
            }
        }
        say!("loaded {} kernel modules for this PC", loaded.len());
        info!("modules: {}", loaded.join(" "));
    }

    // How the firmware started us, for the log and the menu's status line: a support
    // person asks this first when a PC refuses the stick or a module.
    for p in bootmode::mount_sources() {
        info!("boot mode: {p}");
    }
    say!("boot mode: {}", bootmode::detect());

    // Cache partition. (Before the network: the known Wi-Fi networks live on it.)
    let cache = cache::setup(&cfg.cache_label, cfg.grow);
    let logdir = cache.dir.join("log");
    log::open_file(&logdir.join("init.log"));
    if let Some(loader) = &mut loader {
        load_held_drivers(loader, &cache);
    }
    if let Some(size) = cache::fs_size(&cache.dir) {
        say!("cache: {} MiB{}", size >> 20, if cache.in_ram() { " in RAM" } else { "" });
    }
    if let Ok(saved) = std::fs::read_to_string(cache.dir.join(init::protocol::SAVED_NETWORK_SETTINGS)) {
        info!("network screen's saved settings: {}", saved.trim());
        for w in cmdline::apply_saved(&mut cfg, &saved) {
            warn!("{w}");
        }
    }

    // Network (unless told to stay offline). wpa_supplicant first, so that a
    // known Wi-Fi network can be joined while bring_up waits for carrier.
    let mut online = false;
    let mut late_network = None;
    if cfg.offline {
        say!("offline mode (circular.offline): only cached snapshots can boot");
    } else {
        let wifi = net::wifi::start(&cache.dir, &logdir);
        let link_wait = if !wifi.is_empty() && net::wifi::knows_networks(&cache.dir) {
            net::wifi::JOIN_WAIT
        } else {
            Duration::from_secs(6)
        };
        let dhcp_timeout = Duration::from_secs(cfg.dhcp_timeout_s);
        let ups = net::bring_up(link_wait, dhcp_timeout, cfg.ip.as_ref());
        online = !ups.is_empty();
        if online {
            if cfg.ip.is_none() {
                net::keep_leases(ups);
            }
        } else {
            warn!("no network yet: only cached snapshots can boot until a cable is plugged in or a Wi-Fi network is joined (and DHCP answers)");
            // The supervisor polls this each second and restarts blockfs with
            // the store once a lease has come.
            let (tx, rx) = std::sync::mpsc::channel();
            let fixed = cfg.ip.clone();
            std::thread::spawn(move || {
                let _ = tx.send(net::watch(dhcp_timeout, fixed.as_ref()));
            });
            late_network = Some(rx);
        }
    }

    // blockfs. (The accelerator is the menu's choice: it checks KVM itself
    // and asks before falling back to TCG, unless circular.accel= forces one.)
    let mut sup = Supervisor::new(cfg, cache, sigfd);
    sup.online = online;
    sup.late_network = late_network;
    sup.start_blockfs();
    sup.run()
}

/// The drivers held back for their firmware (GPUs): with the firmware from the stick's cache
/// partition when it is there, without it otherwise (they then do what they can).
fn load_held_drivers(loader: &mut kmod::Loader, cache: &cache::Cache) {
    let held = loader.release_held();
    if held.is_empty() {
        return;
    }
    let held = held.join(" ");
    if cache.in_ram() {
        warn!("firmware: the cache is in RAM, so no stick partition holds it; {held} load without it");
    } else {
        match firmware::use_firmware_in(&cache.dir) {
            Ok(fw) => info!("firmware: {} ({} files, {} KiB) for {held}", fw.dir.display(), fw.files, fw.bytes >> 10),
            Err(e) => warn!("firmware: {e}; {held} load without it"),
        }
    }
    let loaded = loader.coldplug_once();
    if !loaded.is_empty() {
        info!("modules after the firmware: {}", loaded.join(" "));
    }
}

/// Blocks the signals PID 1 handles and returns a signalfd that reads them.
fn signals() -> nix::Result<SignalFd> {
    let set = procs::handled();
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)?;
    SignalFd::with_flags(&set, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
}

struct Supervisor {
    cfg: cmdline::Config,
    cache: cache::Cache,
    sigfd: SignalFd,
    online: bool,
    /// The network thread's answer when the network was not there at boot:
    /// the leases, once DHCP has answered.
    late_network: Option<std::sync::mpsc::Receiver<Vec<net::Up>>>,
    /// blockfs runs offline (the cache alone) although the network is now up:
    /// it is restarted with the store as soon as no guest is using the mount.
    blockfs_offline: bool,
    /// The mount was taken away to restart blockfs online: its exit is expected.
    restarting_online: bool,
    console: PathBuf,
    blockfs: Option<Pid>,
    blockfs_starts: procs::RecentStarts,
    blockfs_next: Option<Instant>,
    menu: Option<Pid>,
    menu_crashes: procs::RecentStarts,
    menu_next: Instant,
    shell: Option<Pid>,
    /// With `circular.shell`: a rescue shell on a console the menu does not
    /// use (tty2, Alt-F2; or the screen when the menu is on a serial line),
    /// started again when it exits.
    spare_shell: Option<Pid>,
    spare_shell_next: Instant,
}

impl Supervisor {
    fn new(cfg: cmdline::Config, cache: cache::Cache, sigfd: SignalFd) -> Self {
        let console = console::primary();
        info!("console for the menu: {}", console.display());
        Supervisor {
            cfg,
            cache,
            sigfd,
            online: false,
            late_network: None,
            blockfs_offline: false,
            restarting_online: false,
            console,
            blockfs: None,
            blockfs_starts: procs::RecentStarts::new(procs::BLOCKFS_WINDOW),
            blockfs_next: None,
            menu: None,
            menu_crashes: procs::RecentStarts::new(procs::MENU_WINDOW),
            menu_next: Instant::now(),
            shell: None,
            spare_shell: None,
            spare_shell_next: Instant::now(),
        }
    }

    fn logdir(&self) -> PathBuf {
        self.cache.dir.join("log")
    }

    fn start_blockfs(&mut self) {
        self.blockfs_next = None;
        if self.cfg.servers.is_empty() && !self.cfg.offline {
            let message = "no store configured: circular.server= is missing from the kernel command line (rebuild the stick with make usb SERVER=...)";
            warn!("{message}");
            services::set_blockfs_error("usage", message);
            return;
        }
        // A dead FUSE daemon leaves a mount that answers ENOTCONN: clear it.
        if services::mounted() {
            let _ = mounts::unmount(Path::new(services::MOUNTPOINT));
        }
        // Most of the partition holds blocks; the rest is for the guests'
        // copy-on-write overlays and the logs.
        let cache_max = cache::fs_size(&self.cache.dir).map(|s| s / 10 * 7);
        self.blockfs_starts.record(Instant::now());
        self.blockfs_offline = !self.online;
        match services::start_blockfs(
            &self.cfg.servers,
            self.cfg.offline || !self.online,
            &self.cache.dir,
            cache_max,
            self.cfg.ca.as_deref().map(|f| self.cache.dir.join(f)).as_deref(),
            self.cfg.proxy.as_deref(),
            &self.logdir(),
        ) {
            Ok(pid) => {
                self.blockfs = Some(pid);
                match services::wait_mounted(pid, Duration::from_secs(30)) {
                    Ok(()) if services::mounted() => {
                        // The previous failure, if any, is over. (It stays
                        // while a restart is only trying, so the menu's
                        // problem screen does not flicker.)
                        services::clear_blockfs_error();
                        say!("store mounted at {} ({})", services::MOUNTPOINT, self.cfg.servers.join(", "))
                    }
                    Ok(()) => warn!("blockfs has not mounted the store after 30 s; the menu starts anyway"),
                    Err(exit) => {
                        self.blockfs = None;
                        self.blockfs_failed(exit);
                    }
                }
            }
            Err(e) => {
                warn!("{e}");
                services::set_blockfs_error("other", &e.to_string());
            }
        }
    }

    fn blockfs_failed(&mut self, exit: procs::Exit) {
        let tail = std::fs::read_to_string(self.logdir().join("blockfs.log")).unwrap_or_default();
        let last: Vec<&str> = tail.lines().rev().take(3).collect();
        warn!("blockfs stopped ({exit}): {}", last.into_iter().rev().collect::<Vec<_>>().join(" | "));
        // The menu shows blockfs's error file as its problem screen (catalog
        // refused, no network and nothing cached, ...), choosing it by kind.
        // A blockfs that died without writing one (killed, out of memory)
        // gets its last stderr line instead, as kind "other".
        // (A second's margin for coarse file times; restarts are 3 s apart.)
        let started = self
            .blockfs_starts
            .last()
            .and_then(|t| SystemTime::now().checked_sub(t.elapsed() + Duration::from_secs(1)))
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if !services::blockfs_reported_since(started) {
            let message = services::last_message(&tail)
                .map(|m| format!("blockfs stopped ({exit}): {m}"))
                .unwrap_or_else(|| format!("blockfs stopped ({exit}) and printed nothing"));
            services::set_blockfs_error("other", &message);
        }
        if let Some(delay) = procs::blockfs_restart_delay(self.blockfs_starts.count()) {
            self.blockfs_next = Some(Instant::now() + delay);
        } else {
            warn!("blockfs failed 5 times in 5 minutes; not restarting it. Check the network and circular.server=, then reboot.");
        }
    }

    fn start_menu(&mut self) {
        let program = self.cfg.menu.clone().unwrap_or_else(|| services::MENU.to_string());
        let framebuffer = Path::new(console::FRAMEBUFFER).exists();
        let display = cmdline::pick_display(self.cfg.display, framebuffer, console::is_serial(&self.console));
        match console::framebuffer_description().filter(|_| framebuffer) {
            Some(fb) => info!("display: {display}; {} is {fb}", console::FRAMEBUFFER),
            None => info!("display: {display}; no framebuffer"),
        }
        let args = services::MenuArgs {
            program,
            cache_dir: self.cache.dir.clone(),
            accel: self.cfg.accel.clone(),
            display: display.into(),
            console: self.console.clone(),
        };
        match services::start_menu(&args) {
            Ok(pid) => {
                info!("menu started (pid {pid}) on {}", self.console.display());
                log::mute_console(true);
                self.menu = Some(pid);
            }
            Err(e) => {
                error!("{e}");
                error!(
                    "The boot menu cannot run. Press Ctrl-Alt-Del to restart{}.",
                    if self.cfg.shell {
                        ""
                    } else {
                        ", or boot the GRUB entry with the serial console for a rescue shell"
                    }
                );
                self.menu_next = Instant::now() + Duration::from_secs(30);
                if self.cfg.shell {
                    self.start_shell();
                }
            }
        }
    }

    fn start_shell(&mut self) {
        log::mute_console(false);
        say!("rescue shell: type 'exit' to return to the menu");
        match services::start_shell(&self.console) {
            Ok(pid) => self.shell = Some(pid),
            Err(e) => error!("{e}"),
        }
    }

    /// The VT for the spare rescue shell: the screen's first VT when the
    /// menu is on a serial line, else the second VT.
    fn spare_console(&self) -> PathBuf {
        PathBuf::from(if console::is_serial(&self.console) { "/dev/tty1" } else { "/dev/tty2" })
    }

    fn start_spare_shell(&mut self) {
        let tty = self.spare_console();
        match services::start_shell(&tty) {
            Ok(pid) => {
                info!("rescue shell (circular.shell) on {}", tty.display());
                self.spare_shell = Some(pid);
            }
            Err(e) => {
                warn!("rescue shell on {}: {e}", tty.display());
                self.spare_shell_next = Instant::now() + Duration::from_secs(30);
            }
        }
    }

    fn menu_exited(&mut self, exit: procs::Exit) {
        self.menu = None;
        log::mute_console(false);
        match exit {
            procs::Exit::Code(c) if MenuExit::from_code(c) == Some(MenuExit::PowerOff) => {
                shutdown(Power::Off, &self.cache)
            }
            procs::Exit::Code(c) if MenuExit::from_code(c) == Some(MenuExit::Reboot) => {
                shutdown(Power::Reboot, &self.cache)
            }
            procs::Exit::Code(c) if MenuExit::from_code(c) == Some(MenuExit::RetryStore) => {
                // A person asked: start blockfs now, with a fresh allowance
                // of automatic restarts.
                self.blockfs_starts.clear();
                if self.blockfs.is_none() {
                    self.start_blockfs();
                }
                self.menu_next = Instant::now();
            }
            procs::Exit::Code(c) if MenuExit::from_code(c) == Some(MenuExit::Again) => self.menu_next = Instant::now(),
            other => {
                let wait = procs::menu_restart_delay(self.menu_crashes.record(Instant::now())).as_secs();
                error!(
                    "the menu stopped unexpectedly ({other}); it restarts in {wait} s. The log is in {}/init.log.",
                    self.logdir().display()
                );
                self.menu_next = Instant::now() + Duration::from_secs(wait);
            }
        }
    }

    /// A lease after boot: blockfs, started on the cache alone, is restarted
    /// with the store. Restarting it needs the mount free, so the check is
    /// the unmount itself: while a guest runs from a cached snapshot the
    /// kernel says EBUSY and it is tried again next second, once the guest
    /// has ended. blockfs exits when its mount goes; the reaper starts it again.
    fn check_late_network(&mut self) {
        if let Some(rx) = &self.late_network {
            match rx.try_recv() {
                Ok(ups) => {
                    let names: Vec<String> = ups.iter().map(|u| format!("{} {}", u.name, u.lease.address)).collect();
                    say!("network is up (online via {}): the store can be reached now", names.join(", "));
                    self.online = true;
                    self.late_network = None;
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => return,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.late_network = None;
                    return;
                }
            }
        }
        if !self.online || self.cfg.offline || self.restarting_online {
            return;
        }
        match self.blockfs {
            // Not running after an offline start (nothing cached, or it gave
            // up after 5 tries): start it with the store now.
            None if self.blockfs_offline => {
                self.blockfs_starts.clear();
                self.start_blockfs();
            }
            None => {}
            Some(_) if !self.blockfs_offline => {}
            Some(_) if !services::mounted() => {}
            Some(_) => match nix::mount::umount2(Path::new(services::MOUNTPOINT), nix::mount::MntFlags::empty()) {
                Ok(()) => {
                    info!("offline store unmounted; blockfs restarts with the store");
                    self.restarting_online = true;
                }
                Err(nix::Error::EBUSY) => {}
                Err(e) => {
                    warn!("unmounting the offline store to go online: {e}");
                    self.blockfs_offline = false;
                }
            },
        }
    }

    /// The supervision loop: restart what died, reap orphans, react to
    /// power signals. Never returns except by shutdown.
    fn run(&mut self) -> String {
        loop {
            let now = Instant::now();
            if self.menu.is_none() && self.shell.is_none() && now >= self.menu_next {
                self.start_menu();
            }
            if self.cfg.shell && self.spare_shell.is_none() && now >= self.spare_shell_next {
                self.start_spare_shell();
            }
            if self.blockfs.is_none() && self.blockfs_next.is_some_and(|t| now >= t) {
                self.start_blockfs();
            }
            self.check_late_network();
            let mut pfd = libc::pollfd { fd: self.sigfd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: poll on one pollfd we own, with a timeout.
            unsafe { libc::poll(&mut pfd, 1, 1000) };
            while let Ok(Some(info)) = self.sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGCHLD) => {}
                    Ok(Signal::SIGINT) | Ok(Signal::SIGTERM) => shutdown(Power::Reboot, &self.cache),
                    Ok(Signal::SIGUSR1) | Ok(Signal::SIGUSR2) | Ok(Signal::SIGPWR) => shutdown(Power::Off, &self.cache),
                    _ => {}
                }
            }
            for (pid, exit) in procs::reap() {
                if Some(pid) == self.menu {
                    info!("menu exited: {exit}");
                    self.menu_exited(exit);
                } else if Some(pid) == self.blockfs && self.restarting_online {
                    self.blockfs = None;
                    self.restarting_online = false;
                    info!("offline blockfs stopped ({exit}); starting it with the store");
                    self.blockfs_starts.clear();
                    self.start_blockfs();
                    // The menu read the cached catalog at its start: a new one
                    // shows the store's snapshots. (No guest runs: the mount was free.)
                    if let Some(menu) = self.menu {
                        let _ = nix::sys::signal::kill(menu, Signal::SIGTERM);
                    }
                } else if Some(pid) == self.blockfs {
                    self.blockfs = None;
                    self.blockfs_failed(exit);
                } else if Some(pid) == self.shell {
                    self.shell = None;
                    self.menu_next = Instant::now();
                } else if Some(pid) == self.spare_shell {
                    self.spare_shell = None;
                    self.spare_shell_next = Instant::now() + Duration::from_secs(1);
                } else {
                    info!("reaped orphan {pid} ({exit})");
                }
            }
        }
    }
}

/// Stops every process, syncs, unmounts the cache, then powers off or reboots.
fn shutdown(kind: Power, cache: &cache::Cache) -> ! {
    log::mute_console(false);
    say!("{} ...", if kind == Power::Off { "powering off" } else { "restarting" });
    // QEMU, the menu and blockfs all get SIGTERM: QEMU stops the guest,
    // blockfs unmounts the store.
    procs::stop_all(Duration::from_secs(8));
    let _ = mounts::unmount(Path::new(services::MOUNTPOINT));
    say!("syncing and unmounting the cache");
    log::close_file();
    nix::unistd::sync();
    if cache.device.is_some() {
        if let Err(e) = nix::mount::umount2(Path::new(cache::MOUNTPOINT), nix::mount::MntFlags::empty()) {
            warn!("unmount the cache: {e}; remounting it read-only");
            let _ = nix::mount::mount(
                None::<&str>,
                cache::MOUNTPOINT,
                None::<&str>,
                nix::mount::MsFlags::MS_REMOUNT | nix::mount::MsFlags::MS_RDONLY,
                None::<&str>,
            );
        }
    }
    nix::unistd::sync();
    let mode = if kind == Power::Off { RebootMode::RB_POWER_OFF } else { RebootMode::RB_AUTOBOOT };
    let e = reboot(mode);
    // reboot(2) does not return on success.
    error!("reboot failed: {e:?}. It is safe to switch the PC off now.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// Shows why the appliance cannot go on and what to do; offers the rescue
/// shell when `circular.shell` is set; waits for Ctrl-Alt-Del.
fn fatal(msg: &str) -> ! {
    log::mute_console(false);
    error!("{msg}");
    error!("What to do: press Ctrl-Alt-Del to restart. If it happens again, boot the GRUB entry");
    error!("'Circular (serial console ...)' for a rescue shell, and read /cache/log/init.log.");
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let allow_shell = cmdline::parse(&cmdline).0.shell;
    let console = console::primary();
    let _ = set_cad_enabled(false);
    let set = procs::handled();
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None);
    let mut shell: Option<Pid> = None;
    loop {
        if allow_shell && shell.is_none() {
            match services::start_shell(&console) {
                Ok(pid) => shell = Some(pid),
                Err(e) => error!("{e}"),
            }
        }
        match set.wait() {
            Ok(Signal::SIGINT) | Ok(Signal::SIGTERM) => shutdown(Power::Reboot, &cache::current()),
            Ok(Signal::SIGUSR1) | Ok(Signal::SIGUSR2) | Ok(Signal::SIGPWR) => shutdown(Power::Off, &cache::current()),
            _ => {
                for (pid, _) in procs::reap() {
                    if Some(pid) == shell {
                        shell = None;
                    }
                }
            }
        }
    }
}
