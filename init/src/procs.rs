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

/// Starts (or crashes) of one service in a sliding window, for deciding how
/// soon, and whether, to start it again.
#[derive(Debug, Clone)]
pub struct RecentStarts {
    window: Duration,
    times: Vec<Instant>,
}

impl RecentStarts {
    /// Counts events of the last `window`.
    pub fn new(window: Duration) -> Self {
        RecentStarts { window, times: Vec::new() }
    }

    /// Records one at `now`; returns how many the window holds, this one included.
    pub fn record(&mut self, now: Instant) -> usize {
        let window = self.window;
        self.times.retain(|t| now.saturating_duration_since(*t) < window);
        self.times.push(now);
        self.times.len()
    }

    /// How many the window held at the last [`RecentStarts::record`].
    pub fn count(&self) -> usize {
        self.times.len()
    }

    /// The latest one recorded.
    pub fn last(&self) -> Option<Instant> {
        self.times.last().copied()
    }

    /// Forgets them all: a fresh allowance (a person asked, or the network came).
    pub fn clear(&mut self) {
        self.times.clear();
    }
}

/// blockfs's starts are counted over 5 minutes (docs/APPLIANCE.md).
pub const BLOCKFS_WINDOW: Duration = Duration::from_secs(300);

/// When to start blockfs again after it died, given its starts in the last
/// [`BLOCKFS_WINDOW`]: 3 s later, at most 5 starts in 5 minutes; then never
/// (`None`), until a person asks or the network changes (docs/APPLIANCE.md).
pub fn blockfs_restart_delay(starts_in_window: usize) -> Option<Duration> {
    (starts_in_window < 5).then_some(Duration::from_secs(3))
}

/// The menu's crashes are counted over 2 minutes.
pub const MENU_WINDOW: Duration = Duration::from_secs(120);

/// When to start the menu again after it crashed, given its crashes in the
/// last [`MENU_WINDOW`]: 2 s, or 30 s from the fifth on, so a menu that
/// cannot start does not flood the console; it is never given up on (it is
/// the only way to power off cleanly).
pub fn menu_restart_delay(crashes_in_window: usize) -> Duration {
    Duration::from_secs(if crashes_in_window >= 5 { 30 } else { 2 })
}

#[cfg(test)]
mod restart_tests {
    use super::*;

    #[test]
    fn blockfs_is_restarted_3_s_after_it_dies_at_most_5_times_in_5_minutes() {
        let t0 = Instant::now();
        let mut starts = RecentStarts::new(BLOCKFS_WINDOW);
        let minute = Duration::from_secs(60);
        // Five starts within five minutes: the first four deaths are retried after 3 s,
        // the fifth is not.
        for i in 0..5u32 {
            let n = starts.record(t0 + minute * i);
            let delay = blockfs_restart_delay(n);
            if i < 4 {
                assert_eq!(delay, Some(Duration::from_secs(3)), "death after start {n}");
            } else {
                assert_eq!(delay, None, "a sixth start in 5 minutes");
            }
        }
        // Deaths rarer than 5 in 5 minutes (every 76 s) never run out of restarts.
        let mut spread = RecentStarts::new(BLOCKFS_WINDOW);
        for i in 0..20u32 {
            let n = spread.record(t0 + Duration::from_secs(76) * i);
            assert!(blockfs_restart_delay(n).is_some(), "start {i} ({n} in the window)");
        }
        assert_eq!(spread.count(), 4);
        // A person's retry gives a fresh allowance.
        starts.clear();
        assert_eq!(blockfs_restart_delay(starts.record(t0 + minute * 5)), Some(Duration::from_secs(3)));
        assert_eq!(starts.last(), Some(t0 + minute * 5));
    }

    #[test]
    fn the_menu_waits_longer_after_five_crashes_in_two_minutes_and_is_never_given_up() {
        let t0 = Instant::now();
        let mut crashes = RecentStarts::new(MENU_WINDOW);
        let delays: Vec<u64> =
            (0..7u32).map(|i| menu_restart_delay(crashes.record(t0 + Duration::from_secs(10) * i)).as_secs()).collect();
        assert_eq!(delays, [2, 2, 2, 2, 30, 30, 30]);
        // Two quiet minutes later, it is quick again.
        assert_eq!(menu_restart_delay(crashes.record(t0 + Duration::from_secs(60 + 121))), Duration::from_secs(2));
    }
}
