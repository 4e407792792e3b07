//! A running QEMU: start it, poll or wait for it, stop it, and say how it ended.

use std::io::Read;
use std::process::{Child, ChildStdout, Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::command::{qemu_args, VmSpec};
use crate::error::VmError;
use crate::overlay::{prepare_overlay, private_dir, remove_entry, PreparedDisk};
use crate::Display;

/// How much of QEMU's stderr is kept for the failure message.
const STDERR_KEEP: usize = 16 * 1024;

/// QEMU that ends within this time without success "could not start".
const START_GRACE: Duration = Duration::from_secs(5);

/// Where QEMU's standard input and output go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stdio {
    /// Inherit the terminal: for `-nographic` and curses, which draw there.
    Terminal,
    /// Nothing: for windowed displays, so the menu keeps the terminal.
    Detached,
    /// Standard input from nothing, standard output a pipe the caller takes
    /// with [`Vm::take_stdout`]. With [`crate::Display::None`] that pipe carries the
    /// guest's serial console, for a program that watches it (`image-build
    /// profile` waits for the login prompt there). The caller must keep reading
    /// it, or QEMU stops when the pipe is full.
    Piped,
}

/// A started VM. Dropping it stops QEMU and removes a throw-away overlay.
#[derive(Debug)]
pub struct Vm {
    child: Child,
    disk: PreparedDisk,
    stderr: Arc<Mutex<Vec<u8>>>,
    reader: Option<JoinHandle<()>>,
    started: Instant,
    outcome: Option<VmOutcome>,
}

/// How a VM ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmOutcome {
    /// QEMU exited with status 0: the guest powered off (or QEMU was asked to quit).
    pub powered_off: bool,
    /// QEMU ended with an error within 5 s of its start: it never really ran the guest.
    pub could_not_start: bool,
    /// "exit status 1", "killed by signal 9".
    pub status: String,
    /// From QEMU's start to its end.
    pub ran_for: Duration,
    /// The end of what QEMU wrote to stderr (its last 12 lines), trimmed.
    pub stderr: String,
}

impl VmOutcome {
    /// QEMU's own words, the lines that say what went wrong.
    pub fn reason(&self) -> String {
        if self.stderr.is_empty() {
            format!("QEMU printed nothing; it ended with {}", self.status)
        } else {
            self.stderr.clone()
        }
    }
}

impl Vm {
    /// Prepares the overlay ([`prepare_overlay`]) and starts QEMU with
    /// [`qemu_args`]. QEMU's stderr is always kept for [`VmOutcome::stderr`].
    ///
    /// # Errors
    /// Those of [`prepare_overlay`] (and, for [`Display::Presenter`], of making the QMP
    /// socket's directory private), and [`VmError::NoProgram`] when QEMU
    /// cannot be run (the throw-away overlay is then deleted). Errors here mean
    /// QEMU never ran; a QEMU that starts and then refuses its options is an
    /// outcome ([`VmOutcome::could_not_start`]), not an error.
    pub fn start(spec: &VmSpec, stdio: Stdio) -> Result<Vm, VmError> {
        if spec.display == Display::Presenter {
            // QMP can do anything to the VM: only this user may reach it. A socket left by a
            // QEMU that was killed would make this one's bind fail.
            let socket = spec.qmp_socket();
            if let Some(dir) = socket.parent() {
                private_dir(dir)?;
            }
            remove_entry(&socket)?;
        }
        let disk = prepare_overlay(spec)?;
        let mut cmd = Command::new(&spec.qemu);
        cmd.args(qemu_args(spec, disk.overlay.as_deref(), disk.uefi.as_ref()));
        cmd.stderr(std::process::Stdio::piped());
        match stdio {
            Stdio::Terminal => {}
            Stdio::Detached => {
                cmd.stdin(std::process::Stdio::null());
                cmd.stdout(std::process::Stdio::null());
            }
            Stdio::Piped => {
                cmd.stdin(std::process::Stdio::null());
                cmd.stdout(std::process::Stdio::piped());
            }
        }
        let mut child = match cmd.spawn() {
            Ok(child) => child,
            Err(source) => {
                disk.cleanup();
                return Err(VmError::NoProgram { program: spec.qemu.display().to_string(), source });
            }
        };
        let stderr = Arc::new(Mutex::new(Vec::new()));
        // A thread drains stderr so QEMU never blocks on a full pipe, keeping
        // only the tail, which is where QEMU says why it stopped.
        let reader = child.stderr.take().map(|mut pipe| {
            let keep = Arc::clone(&stderr);
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    if let Ok(mut kept) = keep.lock() {
                        kept.extend_from_slice(&buf[..n]);
                        let excess = kept.len().saturating_sub(STDERR_KEEP);
                        kept.drain(..excess);
                    }
                }
            })
        });
        Ok(Vm { child, disk, stderr, reader, started: Instant::now(), outcome: None })
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The file the guest writes to: the overlay, or a CD's scratch disk (`None`: a CD without one).
    pub fn overlay(&self) -> Option<&std::path::Path> {
        self.disk.overlay.as_deref()
    }

    /// Time since QEMU was started (not counting the overlay's making).
    pub fn running_for(&self) -> Duration {
        self.started.elapsed()
    }

    /// QEMU's standard output, once: `Some` only for a VM started with
    /// [`Stdio::Piped`], the first time.
    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// The outcome if QEMU has ended, without blocking.
    ///
    /// # Errors
    /// [`VmError::Io`] when the process cannot be asked about.
    pub fn try_wait(&mut self) -> Result<Option<VmOutcome>, VmError> {
        if let Some(o) = &self.outcome {
            return Ok(Some(o.clone()));
        }
        match self.child.try_wait() {
            Ok(Some(status)) => Ok(Some(self.finish(status))),
            Ok(None) => Ok(None),
            Err(e) => Err(VmError::io("qemu", e)),
        }
    }

    /// Blocks until QEMU ends.
    ///
    /// # Errors
    /// [`VmError::Io`] when the process cannot be waited for.
    pub fn wait(&mut self) -> Result<VmOutcome, VmError> {
        if let Some(o) = &self.outcome {
            return Ok(o.clone());
        }
        let status = self.child.wait().map_err(|e| VmError::io("qemu", e))?;
        Ok(self.finish(status))
    }

    /// Asks QEMU to quit (SIGTERM: like pulling the plug, the overlay stays
    /// consistent), then waits up to `grace` before killing it (SIGKILL).
    ///
    /// # Errors
    /// [`VmError::Io`] when the process cannot be waited for.
    pub fn stop(&mut self, grace: Duration) -> Result<VmOutcome, VmError> {
        if let Some(o) = self.try_wait()? {
            return Ok(o);
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(o) = self.try_wait()? {
                return Ok(o);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.wait()
    }

    fn finish(&mut self, status: ExitStatus) -> VmOutcome {
        if let Some(reader) = self.reader.take() {
            // QEMU has exited, so the pipe is at its end and this returns.
            let _ = reader.join();
        }
        self.disk.cleanup();
        let stderr = self.stderr.lock().map(|b| String::from_utf8_lossy(&b).trim().to_string()).unwrap_or_default();
        let ran_for = self.started.elapsed();
        let outcome = VmOutcome {
            powered_off: status.success(),
            could_not_start: !status.success() && ran_for < START_GRACE,
            status: describe(status),
            ran_for,
            stderr: last_lines(&stderr, 12),
        };
        self.outcome = Some(outcome.clone());
        outcome
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        if self.outcome.is_none() {
            let _ = self.stop(Duration::from_secs(3));
        }
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown status".to_string(),
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Firmware;
    use crate::{Accel, DiskChanges, Display, VmSettings};
    use std::path::{Path, PathBuf};

    fn spec(dir: &Path, qemu: PathBuf) -> VmSpec {
        let image = dir.join("x.img");
        std::fs::write(&image, vec![0u8; 1 << 20]).unwrap();
        let mut s = VmSpec::new(
            "tiny",
            "2026-11-22",
            image,
            1 << 20,
            Firmware::Bios,
            VmSettings { memory_mib: 64, cpus: 1, changes: DiskChanges::Discard, full_screen: false, scratch_gib: 0 },
            Accel::Tcg,
            Display::None,
            dir.join("cache"),
        );
        s.qemu = qemu;
        s
    }

    /// A stand-in QEMU: a shell script, to check the supervision without a guest.
    fn script(dir: &Path, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("fake-qemu");
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    #[test]
    fn a_failing_start_reports_stderr_and_cleans_up() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let q = script(
            dir.path(),
            "echo 'qemu-system-x86_64: -accel kvm: failed to initialize kvm: No such file or directory' >&2; exit 1",
        );
        let mut vm = Vm::start(&spec(dir.path(), q), Stdio::Detached).unwrap();
        let overlay = vm.overlay().unwrap().to_path_buf();
        let o = vm.wait().unwrap();
        assert!(!o.powered_off && o.could_not_start, "{o:?}");
        assert!(o.reason().contains("failed to initialize kvm"), "{o:?}");
        assert!(!overlay.exists(), "the throw-away overlay is deleted");
    }

    #[test]
    fn success_means_powered_off_and_stop_ends_a_hung_vm() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let q = script(dir.path(), "exit 0");
        let o = Vm::start(&spec(dir.path(), q), Stdio::Detached).unwrap().wait().unwrap();
        assert!(o.powered_off, "{o:?}");

        let q = script(dir.path(), "exec sleep 60");
        let mut vm = Vm::start(&spec(dir.path(), q), Stdio::Detached).unwrap();
        assert_eq!(vm.try_wait().unwrap(), None);
        let o = vm.stop(Duration::from_secs(5)).unwrap();
        assert!(!o.powered_off && o.status.contains("signal 15"), "{o:?}");
    }

    #[test]
    fn piped_stdout_is_the_callers_to_read() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        // Reads its stdin to the end first: a piped VM's stdin is empty, not the terminal.
        let q = script(dir.path(), "cat; echo 'circular login: '");
        let mut vm = Vm::start(&spec(dir.path(), q), Stdio::Piped).unwrap();
        let mut out = vm.take_stdout().unwrap();
        assert!(vm.take_stdout().is_none(), "stdout is handed out once");
        let mut console = String::new();
        out.read_to_string(&mut console).unwrap();
        assert_eq!(console, "circular login: \n");
        assert!(vm.wait().unwrap().powered_off);
    }

    #[test]
    fn a_missing_qemu_is_named() {
        if !testkit::need(&["qemu-img"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let err = Vm::start(&spec(dir.path(), dir.path().join("no-such-qemu")), Stdio::Detached).unwrap_err();
        assert!(err.to_string().contains("install QEMU"), "{err}");
    }

    #[test]
    fn real_qemu_reports_a_bad_option() {
        // Real QEMU, refused at once: the reason must be QEMU's own message.
        if !testkit::need(&["qemu-img", "qemu-system-x86_64"]) {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let mut s = spec(dir.path(), PathBuf::from("qemu-system-x86_64"));
        s.settings.memory_mib = 0; // "-m 0" is refused by QEMU
        s.settings.cpus = 99999;
        let o = Vm::start(&s, Stdio::Detached).unwrap().wait().unwrap();
        assert!(o.could_not_start, "{o:?}");
        assert!(o.reason().contains("qemu-system-x86_64"), "{o:?}");
    }
}
