//! `circular-menu`: the boot menu as the appliance runs it, in its own
//! process on the console (started by circular-init, which does not link the
//! menu: a crash here costs a menu restart, not a kernel panic).
//!
//! It is a thin wrapper around the `menu` crate: it waits for the store that
//! PID 1's blockfs mounts, shows [`menu::run_until`] on this terminal (the VGA
//! text console or a serial line), and when blockfs could not mount the store
//! shows the menu's clear problem screen for the error blockfs wrote to
//! [`BLOCKFS_ERROR`] (`{"kind": …, "message": …}`; PID 1 writes one in the same
//! form when blockfs died without a word). The screen is chosen by the kind.
//!
//! Exit codes tell PID 1 what to do next: 0 = show the menu again,
//! 10 = power off, 11 = reboot, 13 = start blockfs again now (the person
//! pressed "try again" on a problem screen).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use menu::problem::{ErrorReport, Problem};
use menu::{Accel, Display, MenuConfig, MenuExit, ProblemChoice};

use init::protocol::{mounted, MenuExit as Next, BLOCKFS_ERROR, MOUNTPOINT};

#[derive(Debug)]
struct Args {
    mountpoint: PathBuf,
    cache_dir: PathBuf,
    /// `None`: the menu checks KVM itself and asks before using TCG.
    accel: Option<Accel>,
    display: Display,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        mountpoint: PathBuf::from(MOUNTPOINT),
        cache_dir: PathBuf::from("/cache"),
        accel: None,
        display: Display::None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut val = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--mountpoint" => a.mountpoint = PathBuf::from(val()?),
            "--cache" => a.cache_dir = PathBuf::from(val()?),
            "--accel" => a.accel = Some(val()?.parse::<Accel>().map_err(|e| format!("--accel: {e}"))?),
            "--display" => a.display = val()?.parse::<Display>().map_err(|e| format!("--display: {e}"))?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("circular-menu: {e}");
            return ExitCode::from(2);
        }
    };
    // PID 1 sends SIGTERM at shutdown: stop the guest, give the console back.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("circular-menu: signal handler: {e}");
            return ExitCode::from(1);
        }
    }
    match run(&args, &stop) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            note(&format!("{e}"));
            eprintln!("circular-menu: {e}");
            ExitCode::from(1)
        }
    }
}

/// Shows what fits the store's state until the person chooses an exit.
fn run(args: &Args, stop: &AtomicBool) -> Result<u8, menu::MenuError> {
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        if mounted(&args.mountpoint) {
            note("store mounted: showing the menu");
            let exit = menu::run_until(
                MenuConfig {
                    mountpoint: args.mountpoint.clone(),
                    cache_dir: args.cache_dir.clone(),
                    accel: args.accel,
                    display: args.display,
                    appliance: true,
                    boot_mode: Some(init::bootmode::detect().to_string()),
                },
                stop,
            )?;
            note(&format!("menu: {exit:?}"));
            return Ok(exit_code(exit));
        }
        let error = blockfs_error();
        let problem = match &error {
            Some(report) => Problem::from_report(report),
            // Blockfs still runs but has not mounted (PID 1 waited 30 s): it
            // is still trying the server. The screen goes when the mount comes.
            None => Problem::Other {
                headline: "Waiting for the store".to_string(),
                detail: "blockfs is still asking the server for the catalog; this screen goes \
                         away by itself when the store is mounted."
                    .to_string(),
            },
        };
        note(&format!("no store mounted: showing \"{}\"", problem.headline()));
        // Leave the problem screen by itself when the state changes: the
        // mount appears (blockfs restarted and worked), the error changes, or
        // PID 1 asks this process to stop.
        let leave = AtomicBool::new(false);
        let done = AtomicBool::new(false);
        let choice = std::thread::scope(|scope| {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    if stop.load(Ordering::Relaxed) || mounted(&args.mountpoint) || blockfs_error() != error {
                        leave.store(true, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(300));
                }
            });
            let choice = menu::show_problem_screen(problem, true, &args.cache_dir, &leave);
            done.store(true, Ordering::Relaxed);
            choice
        });
        match choice? {
            ProblemChoice::Retry => return Ok(Next::RetryStore.code()),
            ProblemChoice::Exit(MenuExit::PowerOff) => return Ok(Next::PowerOff.code()),
            ProblemChoice::Exit(MenuExit::Reboot) => return Ok(Next::Reboot.code()),
            // Stopped by a signal, or the store's state changed: look again.
            ProblemChoice::Exit(MenuExit::Quit) => continue,
        }
    }
}

fn exit_code(exit: MenuExit) -> u8 {
    match exit {
        MenuExit::Quit => 0,
        MenuExit::PowerOff => Next::PowerOff.code(),
        MenuExit::Reboot => Next::Reboot.code(),
    }
}

/// Why blockfs could not mount (its error file), when it could not.
fn blockfs_error() -> Option<ErrorReport> {
    ErrorReport::read(std::path::Path::new(BLOCKFS_ERROR))
}

/// Records what the menu did in the kernel log (PID 1 copies nothing of the
/// menu's output: the console belongs to the menu).
fn note(msg: &str) {
    use std::io::Write;
    if let Ok(mut k) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
        let _ = k.write_all(format!("<6>circular-menu: {msg}\n").as_bytes());
    }
}
