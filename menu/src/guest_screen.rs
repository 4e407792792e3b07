//! The guest on the PC's screen: QEMU with its D-Bus display ([`Display::Presenter`]) and
//! `circular-presenter` drawing it full screen on the framebuffer, with the keyboard and
//! mouse. The menu's terminal gets the guest's serial console meanwhile (on a serial line,
//! someone watching it sees the guest boot).
//!
//! The presenter ends in one of three ways, each told apart here: QEMU went away (the
//! guest powered off: exit 0), the person pressed the leave-the-guest chord (exit 10: QEMU
//! keeps running and the menu shows it as running), or it failed (anything else: its last
//! words are the failure's reason).
//!
//! [`Display::Presenter`]: circular_vm::Display::Presenter

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use circular_vm::{Stdio, Vm, VmError, VmOutcome, VmSpec};

/// The presenter program, found on PATH (`/usr/bin` on the stick).
pub const PRESENTER: &str = "circular-presenter";

/// `circular-presenter`'s exit status after the leave-the-guest chord.
const EXIT_LEFT: i32 = 10;

/// The console the presenter puts in graphics mode: the VT on the screen.
const SCREEN_TTY: &str = "/dev/tty0";

/// How long QEMU may take to open its QMP socket.
const QMP_WAIT: Duration = Duration::from_secs(30);

/// How long the presenter may take to notice that QEMU has gone.
const PRESENTER_GRACE: Duration = Duration::from_secs(3);

/// A VM shown through the presenter, or waiting off screen to be shown again.
pub struct GuestScreen {
    /// QEMU.
    pub vm: Vm,
    qmp: PathBuf,
    /// The end of the presenter's stderr: a failure's reason.
    said: Arc<Mutex<String>>,
    /// While set, the guest's serial console is copied to the menu's terminal.
    echo: Arc<AtomicBool>,
}

/// How one showing of the guest ended.
pub enum Shown {
    /// QEMU ended (the guest powered off, or was stopped).
    Ended(Result<VmOutcome, VmError>),
    /// The person left the guest with the chord; QEMU keeps running.
    Left,
    /// The presenter could not show the guest; its words. QEMU has been stopped.
    Failed(String),
}

impl GuestScreen {
    /// Starts QEMU for `spec` (its display must be [`circular_vm::Display::Presenter`]) and
    /// the copy of its serial console to this process's standard output.
    ///
    /// # Errors
    /// Those of [`Vm::start`].
    pub fn start(spec: &VmSpec) -> Result<GuestScreen, VmError> {
        let mut vm = Vm::start(spec, Stdio::Piped)?;
        let echo = Arc::new(AtomicBool::new(true));
        if let Some(serial) = vm.take_stdout() {
            let on = Arc::clone(&echo);
            // The copy runs until QEMU closes its end; it never blocks QEMU, since it always reads.
            std::thread::spawn(move || copy_to_console(serial, &on, None));
        }
        Ok(GuestScreen { vm, qmp: spec.qmp_socket(), said: Arc::default(), echo })
    }

    /// Shows the guest until QEMU ends, the person leaves it, or the presenter fails.
    /// `stop` (the menu's own shutdown) stops QEMU.
    pub fn show(&mut self, stop: &AtomicBool) -> Shown {
        self.echo.store(true, Ordering::Relaxed);
        let shown = self.show_inner(stop);
        self.echo.store(false, Ordering::Relaxed);
        shown
    }

    fn show_inner(&mut self, stop: &AtomicBool) -> Shown {
        match self.wait_for_qmp() {
            Ok(true) => {}
            Ok(false) => return Shown::Ended(self.vm.wait()),
            Err(words) => return self.fail(words),
        }
        let mut presenter = match self.spawn_presenter() {
            Ok(child) => child,
            Err(words) => return self.fail(words),
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                end(&mut presenter);
                return Shown::Ended(self.vm.stop(Duration::from_secs(5)));
            }
            match self.vm.try_wait() {
                Ok(None) => {}
                Ok(Some(outcome)) => {
                    // QEMU closed QMP, so the presenter is on its way out: give it a moment to put
                    // the console back in text mode itself.
                    let deadline = Instant::now() + PRESENTER_GRACE;
                    while Instant::now() < deadline && matches!(presenter.try_wait(), Ok(None)) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    end(&mut presenter);
                    return Shown::Ended(Ok(outcome));
                }
                Err(e) => {
                    end(&mut presenter);
                    return Shown::Ended(Err(e));
                }
            }
            match presenter.try_wait() {
                Ok(None) => {}
                Ok(Some(status)) if status.code() == Some(EXIT_LEFT) => return Shown::Left,
                // QEMU is going: the next turn sees its end.
                Ok(Some(status)) if status.success() => {}
                Ok(Some(status)) => {
                    // Its stderr is at its end once it has exited; give the copy a moment.
                    std::thread::sleep(Duration::from_millis(100));
                    let words = last_lines(&self.said.lock().map(|s| s.clone()).unwrap_or_default(), 6);
                    return self.fail(format!("circular-presenter ended with {status}: {words}"));
                }
                Err(e) => return self.fail(format!("circular-presenter: {e}")),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// True once QEMU listens on QMP; false when QEMU ended first.
    fn wait_for_qmp(&mut self) -> Result<bool, String> {
        let deadline = Instant::now() + QMP_WAIT;
        while !self.qmp.exists() {
            match self.vm.try_wait() {
                Ok(Some(_)) => return Ok(false),
                Ok(None) => {}
                Err(e) => return Err(e.to_string()),
            }
            if Instant::now() > deadline {
                return Err(format!("QEMU opened no QMP socket at {} in {} s", self.qmp.display(), QMP_WAIT.as_secs()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(true)
    }

    /// Starts the presenter. Its stderr (a line about the input devices, warnings, its error)
    /// goes to the menu's terminal with the guest's serial console, and its end is kept.
    fn spawn_presenter(&self) -> Result<Child, String> {
        let mut cmd = Command::new(PRESENTER);
        cmd.arg("--qmp").arg(&self.qmp);
        if Path::new(SCREEN_TTY).exists() {
            cmd.arg("--tty").arg(SCREEN_TTY);
        }
        cmd.stdin(std::process::Stdio::null()).stdout(std::process::Stdio::null());
        cmd.stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("{PRESENTER} could not be started: {e}"))?;
        if let Some(stderr) = child.stderr.take() {
            let (said, on) = (Arc::clone(&self.said), Arc::clone(&self.echo));
            if let Ok(mut s) = said.lock() {
                s.clear();
            }
            std::thread::spawn(move || copy_to_console(stderr, &on, Some(&said)));
        }
        Ok(child)
    }

    /// The guest cannot be shown: a guest nobody can see or type into is stopped.
    fn fail(&mut self, words: String) -> Shown {
        let _ = self.vm.stop(Duration::from_secs(5));
        Shown::Failed(words)
    }
}

/// Stops the presenter if it still runs and reaps it.
fn end(presenter: &mut Child) {
    if matches!(presenter.try_wait(), Ok(None)) {
        let _ = presenter.kill();
    }
    let _ = presenter.wait();
}

/// Copies `from` (the guest's serial console, or the presenter's stderr) to standard output
/// while `on` is set, and drops it otherwise (the menu owns the terminal then). Control
/// characters other than tab, line feed, carriage return and backspace are dropped: the guest
/// is whatever the catalog names, and must not send escape sequences to the appliance's
/// console. With `kept`, the end of what came is kept there ([`SAID_KEEP`] bytes), shown or not.
fn copy_to_console(mut from: impl Read, on: &AtomicBool, kept: Option<&Mutex<String>>) {
    let mut buf = [0u8; 4096];
    let mut out = std::io::stdout();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 {
            break;
        }
        let clean = printable(&buf[..n]);
        if on.load(Ordering::Relaxed) {
            let _ = out.write_all(&clean).and_then(|()| out.flush());
        }
        if let Some(Ok(mut s)) = kept.map(Mutex::lock) {
            s.push_str(&String::from_utf8_lossy(&clean));
            let excess = s.len().saturating_sub(SAID_KEEP);
            if excess > 0 {
                let cut = (excess..s.len()).find(|&i| s.is_char_boundary(i)).unwrap_or(s.len());
                s.drain(..cut);
            }
        }
    }
}

/// How much of the presenter's stderr is kept.
const SAID_KEEP: usize = 4096;

/// `bytes` without C0 control characters (tab, LF, CR and BS kept) and DEL.
fn printable(bytes: &[u8]) -> Vec<u8> {
    bytes.iter().copied().filter(|&b| b >= 0x20 && b != 0x7f || matches!(b, b'\t' | b'\n' | b'\r' | 0x08)).collect()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guests_serial_reaches_the_console_without_escape_sequences() {
        assert_eq!(
            printable(b"\x1b[2J\x1b]0;owned\x07login: \xc3\xa9\r\n\tok\x7f"),
            b"[2J]0;ownedlogin: \xc3\xa9\r\n\tok"
        );
    }

    #[test]
    fn a_failure_keeps_the_presenters_last_words() {
        assert_eq!(last_lines("a\n\nb\nc\n", 2), "b | c");
    }
}
