//! Child processes of PID 1: spawning with a clean signal mask, reaping every
//! exit (PID 1 inherits every orphan), and stopping everything at shutdown.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Signals PID 1 handles through its signalfd, blocked in PID 1 itself.
pub fn handled() -> SigSet {
    let mut s = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGPWR,
        Signal::SIGHUP,
    ] {
        s.add(sig);
    }
    s
}

/// A Command whose child starts with no blocked signals (a child inherits
/// the signal mask across exec, and PID 1 blocks the ones it reads).
pub fn command(program: &str) -> Command {
    let mut c = Command::new(program);
    // SAFETY: sigprocmask is async-signal-safe; it only changes the mask of
    // the forked child before exec.
    unsafe {
        c.pre_exec(|| {
            let empty = SigSet::empty();
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&empty), None).map_err(std::io::Error::from)?;
            Ok(())
        });
    }
    c
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exit code {c}"),
            Exit::Signal(s) => write!(f, "killed by signal {s}"),
        }
    }
}

/// Reaps every child that has ended, without blocking.
pub fn reap() -> Vec<(Pid, Exit)> {
    let mut out = Vec::new();
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => out.push((pid, Exit::Code(code))),
            Ok(WaitStatus::Signaled(pid, sig, _)) => out.push((pid, Exit::Signal(sig as i32))),
            Ok(WaitStatus::StillAlive) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// Sends SIGTERM to every process but PID 1, waits up to `grace` for them to
/// go, then SIGKILLs the rest.
pub fn stop_all(grace: Duration) {
    let _ = kill(Pid::from_raw(-1), Signal::SIGTERM);
    // An interactive shell (the rescue shell) ignores SIGTERM but ends on a
    // hang-up. blockfs, the menu and QEMU treat SIGHUP as SIGTERM.
    let _ = kill(Pid::from_raw(-1), Signal::SIGHUP);
    let start = Instant::now();
    while start.elapsed() < grace {
        reap();
        // ECHILD: no children left at all.
        if matches!(waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)), Err(nix::Error::ECHILD)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    crate::warn!("some processes did not stop within {} s: killing them", grace.as_secs());
    let _ = kill(Pid::from_raw(-1), Signal::SIGKILL);
    std::thread::sleep(Duration::from_millis(300));
    reap();
}
