//! menu: Circular's boot menu and desktop mode.
//!
//! What it is: a ratatui menu of the distributions and dated snapshots that a
//! blockfs mount serves (two levels, details with editable VM settings, start
//! progress, and clear screens when nothing can boot), and [`desktop`], the
//! `circular` program that mounts blockfs itself on an ordinary Linux desktop.
//! It starts the chosen snapshot with the `circular-vm` crate (KVM or TCG, a
//! qcow2 overlay over the read-only dated image, keep or discard changes).
//!
//! What it is not: it does not build QEMU command lines or run QEMU itself
//! (`circular-vm` does), it does not fetch, verify or cache blocks (blockfs
//! does, and the menu only reads the figures blockfs reports), and it does not
//! bring up the machine (the appliance's PID 1 does, then calls [`run`]). It draws on a
//! terminal only: the Linux console (16 colours, 80x25), a serial line, or a
//! terminal emulator; no mouse is needed.

pub mod cli;
pub mod desktop;
pub mod format;
mod guest_screen;
pub mod host;
pub mod network;
pub mod problem;
pub mod progress;
pub mod qemu_command;
mod run;
pub mod state;
mod term;
pub mod view;
#[cfg(test)]
mod view_tests;
pub mod wifi;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

pub use circular_vm::{Accel, Display};

/// What the menu needs from its caller.
#[derive(Debug, Clone)]
pub struct MenuConfig {
    /// A blockfs mount, already mounted by the caller.
    pub mountpoint: PathBuf,
    /// Where VM overlays go (`<cache_dir>/overlays/`); normally blockfs's cache.
    pub cache_dir: PathBuf,
    /// `None`: KVM when it works, else TCG after asking. `Some`: that, never asked.
    pub accel: Option<Accel>,
    pub display: Display,
    /// Running as the appliance's PID 1: adds Power off and Reboot, and there is
    /// no "quit".
    pub appliance: bool,
    /// How the PC booted ("UEFI Secure Boot, lockdown integrity"), shown at the right of
    /// the status line; the appliance sets it, desktop mode has none.
    pub boot_mode: Option<String>,
}

/// Why the menu returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuExit {
    Quit,
    PowerOff,
    Reboot,
}

#[derive(Debug, thiserror::Error)]
pub enum MenuError {
    /// The terminal itself failed (not a tty, or it went away). Everything
    /// else is shown on screen and never returned.
    #[error("the terminal could not be used: {0}")]
    Terminal(#[from] std::io::Error),
}

/// Shows the menu on this process's terminal until the person quits, powers
/// off or reboots. VMs run from here and come back here.
pub fn run(config: MenuConfig) -> Result<MenuExit, MenuError> {
    let never = AtomicBool::new(false);
    run_until(config, &never)
}

/// As [`run`], and returns [`MenuExit::Quit`] soon after `stop` becomes true
/// (a signal handler sets it), stopping a running VM first.
pub fn run_until(config: MenuConfig, stop: &AtomicBool) -> Result<MenuExit, MenuError> {
    let mut term = term::Term::enter()?;
    run::run_loop(&config, &mut term, stop)
    // `term` is dropped here, on success and on error: the terminal is restored.
}

/// What the person chose on a problem screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemChoice {
    /// Try the mount again.
    Retry,
    Exit(MenuExit),
}

/// For callers whose blockfs mount failed: shows the error as a clear screen
/// (no network and nothing cached, catalog refused, …) with what to do, and
/// returns the choice. The appliance and desktop mode both use it.
pub fn show_problem(
    err: &blockfs::Error,
    appliance: bool,
    cache_dir: &std::path::Path,
    stop: &AtomicBool,
) -> Result<ProblemChoice, MenuError> {
    show_problem_screen(problem::Problem::from_blockfs(err), appliance, cache_dir, stop)
}

/// As [`show_problem`], for a caller that has the problem but not the typed
/// error: the appliance runs blockfs as a separate process and knows the
/// kind and message it wrote ([`problem::Problem::from_report`]). On the appliance, `n`
/// opens the network screen here too (no store yet is when it is needed most); its
/// settings are saved under `cache_dir`.
pub fn show_problem_screen(
    problem: problem::Problem,
    appliance: bool,
    cache_dir: &std::path::Path,
    stop: &AtomicBool,
) -> Result<ProblemChoice, MenuError> {
    use crossterm::event::{self, Event, KeyEventKind};
    use state::{App, Screen};
    let mut app = App::new(
        run::empty_catalog(),
        Err("not mounted".to_string()),
        appliance,
        Display::None,
        state::AccelState { accel: Accel::Kvm, forced: true, no_kvm_reason: None, tcg_accepted: false },
    );
    app.screen = Screen::Problem(problem);
    app.address = host::address();
    let mut term = term::Term::enter()?;
    let mut net = run::NetLink::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(ProblemChoice::Exit(MenuExit::Quit));
        }
        net.tick(&mut app);
        term.draw(&app)?;
        if !event::poll(std::time::Duration::from_millis(500))? {
            app.address = host::address();
            continue;
        }
        let Event::Key(key) = event::read()? else {
            continue;
        };
        if key.kind != KeyEventKind::Press {
            continue;
        }
        let action = app.on_key(key);
        if let Some(choice) = problem_action(action, &mut app, &mut net, cache_dir) {
            return Ok(choice);
        }
    }
}

/// What the problem screen's loop does with one key's action: the network screen's
/// actions are carried out here (the same [`run::NetLink`] as in the menu), a retry or
/// an exit ends the loop.
fn problem_action(
    action: state::Action,
    app: &mut state::App,
    net: &mut run::NetLink,
    cache_dir: &std::path::Path,
) -> Option<ProblemChoice> {
    match action {
        state::Action::Retry => Some(ProblemChoice::Retry),
        state::Action::Exit(e) => Some(ProblemChoice::Exit(e)),
        state::Action::Network(a) => {
            net.perform(app, cache_dir, a);
            None
        }
        _ => None,
    }
}

#[cfg(test)]
mod problem_tests {
    use super::*;
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

    /// The bug a hand boot found: with no store mounted the appliance shows the problem
    /// screen's own loop, which dropped the network screen's scan, so the screen said "no
    /// adapter" without ever asking wpa_supplicant.
    #[test]
    fn the_problem_screen_carries_out_the_network_screens_scan() {
        let mut app = state::App::new(
            run::empty_catalog(),
            Err("not mounted".to_string()),
            true,
            Display::None,
            state::AccelState { accel: Accel::Kvm, forced: true, no_kvm_reason: None, tcg_accepted: false },
        );
        app.screen = state::Screen::Problem(problem::Problem::NoNetwork { detail: String::new() });
        let cache = tempfile::tempdir().unwrap();
        let mut net = run::NetLink::new();
        let action = app.on_key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::NONE));
        assert!(problem_action(action, &mut app, &mut net, cache.path()).is_none());
        let state::Screen::Network(s) = &app.screen else { panic!("{:?}", app.screen) };
        // No wpa_supplicant runs here, so the scan must have said why there is no adapter.
        assert!(s.message.as_deref().is_some_and(|m| m.contains("no Wi-Fi adapter")), "{s:?}");
    }
}
