//! Running external tools, for every builder in `image-build`: `os` (debootstrap, apt in a
//! chroot, mke2fs, mount …), `initramfs` (apt-get, dpkg, depmod, objcopy, xz, ldd) and `usb`
//! (grub-mkimage, mkfs.fat, mtools, mke2fs).
//!
//! Every tool's output goes to one log file; on a terminal a spinner shows the step and the
//! tool's latest line. A failure becomes a [`ToolError::Failed`] carrying the last lines, so
//! the user sees why without opening the log. It does not interpret what the tools print,
//! except for a few well-known messages ([`Symptom`]); the builder words the hint for those,
//! because the fix names its own flags.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How many output lines an error shows.
const TAIL_LINES: usize = 15;

/// A tool that could not run, or ran and failed.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program (or a file a step needs) is not installed.
    #[error("`{tool}` was not found: {hint}")]
    Missing { tool: String, hint: String },

    /// The program exists but could not be started (permissions, resources).
    #[error("could not start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    /// The program ran and exited with a failure.
    #[error("{what} failed ({status}){hint}; last lines of its output:\n{tail}\nfull log: {log}")]
    Failed {
        what: String,
        status: ExitStatus,
        /// What the output suggests went wrong, when it is a well-known message.
        symptom: Option<Symptom>,
        /// The caller's advice for `symptom`, with a leading space and parentheses, or empty.
        hint: &'static str,
        tail: String,
        log: PathBuf,
    },

    /// The log file could not be written.
    #[error("creating the build log {path}{}: {source}", disk_full_hint(source))]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn disk_full_hint(e: &std::io::Error) -> &'static str {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        " (the disk is full: free some space)"
    } else {
        ""
    }
}

/// Well-known failure messages that deserve a hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Symptom {
    /// No space left on the host's disk or in the image being filled.
    DiskFull,
    /// A mirror or server could not be reached.
    NoNetwork,
    /// apt does not know a package name.
    UnknownPackage,
}

impl Symptom {
    /// Recognises the symptom in a tool's output, if any.
    pub fn find(output: &str) -> Option<Symptom> {
        let o = output.to_ascii_lowercase();
        if o.contains("no space left on device") || o.contains("could not allocate block") {
            Some(Symptom::DiskFull)
        } else if o.contains("temporary failure resolving")
            || o.contains("could not resolve")
            || o.contains("failed to fetch")
            || o.contains("couldn't download")
            || o.contains("failed getting release file")
        {
            Some(Symptom::NoNetwork)
        } else if o.contains("unable to locate package")
            || o.contains("has no installation candidate")
            || o.contains("has no candidate")
        {
            Some(Symptom::UnknownPackage)
        } else {
            None
        }
    }
}

/// A builder's advice for a symptom: a text such as " (check the network)", appended to the
/// failure message.
pub type Hints = fn(Symptom) -> &'static str;

/// Where tool output goes, and the step lines shown to the user.
pub struct Runner {
    log_path: PathBuf,
    log: File,
    hints: Hints,
}

impl Runner {
    /// Creates (truncates) the log at `log_path`; failures are worded with `hints`.
    pub fn new(log_path: &Path, hints: Hints) -> Result<Self, ToolError> {
        let log = File::create(log_path).map_err(|source| ToolError::Log { path: log_path.to_path_buf(), source })?;
        Ok(Runner { log_path: log_path.to_path_buf(), log, hints })
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Tells the user (and the log) which step starts.
    pub fn step(&mut self, text: &str) {
        eprintln!("==> {text}");
        let _ = writeln!(self.log, "==> {text}");
    }

    pub fn note(&mut self, text: &str) {
        eprintln!("    {text}");
        let _ = writeln!(self.log, "    {text}");
    }

    /// Runs `cmd` to completion with stdin closed, logging its output.
    pub fn run(&mut self, what: &str, cmd: &mut Command) -> Result<(), ToolError> {
        self.run_capture(what, cmd).map(|_| ())
    }

    /// Like [`Runner::run`], and returns the tail of the output (for callers that
    /// must recognise a message, such as debootstrap's "couldn't download").
    pub fn run_capture(&mut self, what: &str, cmd: &mut Command) -> Result<String, ToolError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let _ = writeln!(self.log, "$ {}", describe(cmd));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| spawn_error(&program, source))?;
        let (tx, rx) = mpsc::channel::<String>();
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(spawn_reader(out, tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(spawn_reader(err, tx.clone()));
        }
        drop(tx);

        let bar = spinner(what);
        let started = Instant::now();
        let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
        // The channel closes when both pipes reach EOF, i.e. when the tool exits
        // (or hands its pipes to a daemon, which none of the tools here do).
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let _ = writeln!(self.log, "{line}");
                    let short: String = line.chars().take(100).collect();
                    bar.set_message(format!("{what}: {short}"));
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => bar.tick(),
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        for r in readers {
            let _ = r.join();
        }
        let status = child.wait().map_err(|source| ToolError::Spawn { program: program.clone(), source })?;
        bar.finish_and_clear();
        let secs = started.elapsed().as_secs_f64();
        let _ = writeln!(self.log, "# {what}: {status} after {secs:.1} s");
        let tail_text = tail.iter().cloned().collect::<Vec<_>>().join("\n");
        if status.success() {
            if secs >= 5.0 {
                eprintln!("    {what}: done in {secs:.0} s");
            }
            return Ok(tail_text);
        }
        Err(self.failed(what, status, tail_text))
    }

    /// Runs a quick command and returns its standard output (not logged line by line).
    pub fn output(&mut self, what: &str, cmd: &mut Command) -> Result<String, ToolError> {
        self.output_bytes(what, cmd).map(|out| String::from_utf8_lossy(&out).into_owned())
    }

    /// Like [`Runner::output`], for output that is not text (`xz -dc`).
    pub fn output_bytes(&mut self, what: &str, cmd: &mut Command) -> Result<Vec<u8>, ToolError> {
        let out = self.capture(cmd)?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(self.failed(what, out.status, stderr));
        }
        Ok(out.stdout)
    }

    /// Runs a quick command and returns what it printed and how it exited, whatever that
    /// was: for tools whose exit status is not a verdict (`ldd` exits 1 on a static
    /// program). Standard error goes to the log too.
    pub fn capture(&mut self, cmd: &mut Command) -> Result<Output, ToolError> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let _ = writeln!(self.log, "$ {}", describe(cmd));
        let out = cmd.stdin(Stdio::null()).output().map_err(|source| spawn_error(&program, source))?;
        let _ = self.log.write_all(&out.stderr);
        Ok(out)
    }

    fn failed(&self, what: &str, status: ExitStatus, tail: String) -> ToolError {
        let symptom = Symptom::find(&tail);
        ToolError::Failed {
            what: what.to_string(),
            status,
            symptom,
            hint: symptom.map(self.hints).unwrap_or_default(),
            tail,
            log: self.log_path.clone(),
        }
    }
}

/// A program that is not installed says so, and how to get it; other start failures
/// keep the system's reason.
fn spawn_error(program: &str, source: std::io::Error) -> ToolError {
    if source.kind() == std::io::ErrorKind::NotFound {
        ToolError::Missing {
            tool: program.to_string(),
            hint: "install it (`make deps` installs every program the build uses)".into(),
        }
    } else {
        ToolError::Spawn { program: program.to_string(), source }
    }
}

fn spawn_reader<R: std::io::Read + Send + 'static>(r: R, tx: mpsc::Sender<String>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(r);
        let mut buf = Vec::new();
        // Lines, lossily decoded: tools print progress with \r and the odd non-UTF-8 byte.
        while let Ok(n) = reader.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf);
            for part in text.split('\r') {
                let part = part.trim_end();
                if !part.is_empty() && tx.send(part.to_string()).is_err() {
                    return;
                }
            }
            buf.clear();
        }
    })
}

fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("    {spinner} [{elapsed}] {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// A shell-like rendering of a command, for the log.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        let a = a.to_string_lossy();
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$;&|<>".contains(c)) {
            s.push_str(&format!(" '{}'", a.replace('\'', "'\\''")));
        } else {
            s.push(' ');
            s.push_str(&a);
        }
    }
    s
}

/// Checks that a program is on PATH (or in /usr/sbin, /sbin, which a user's PATH may
/// lack); returns a [`ToolError::Missing`] saying which Debian package provides it.
pub fn require_tool(tool: &str, package: &str) -> Result<(), ToolError> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .any(|dir| dir.join(tool).is_file());
    if found {
        Ok(())
    } else {
        Err(missing(tool, package))
    }
}

/// Checks that a file a tool needs (GRUB's boot.img, its module directory) exists.
pub fn require_file(path: &str, package: &str) -> Result<(), ToolError> {
    if Path::new(path).exists() {
        Ok(())
    } else {
        Err(missing(path, package))
    }
}

fn missing(what: &str, package: &str) -> ToolError {
    ToolError::Missing {
        tool: what.to_string(),
        hint: format!("install it with `apt-get install {package}` (or run `make deps`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: Symptom) -> &'static str {
        match s {
            Symptom::DiskFull => " (full)",
            Symptom::NoNetwork => " (network)",
            Symptom::UnknownPackage => " (package)",
        }
    }

    #[test]
    fn describe_quotes_what_needs_it() {
        let mut c = Command::new("chroot");
        c.args(["/r", "sh", "-c", "echo 'hi' > x", ""]);
        assert_eq!(describe(&c), "chroot /r sh -c 'echo '\\''hi'\\'' > x' ''");
    }

    #[test]
    fn symptoms() {
        assert_eq!(Symptom::find("write error: No space left on device"), Some(Symptom::DiskFull));
        assert_eq!(Symptom::find("E: Failed getting release file http://x/dists/y/Release"), Some(Symptom::NoNetwork));
        assert_eq!(Symptom::find("E: Unable to locate package nosuch"), Some(Symptom::UnknownPackage));
        assert_eq!(
            Symptom::find(
                "E: Can't select candidate version from package firmware-amd-graphics as it has no candidate"
            ),
            Some(Symptom::UnknownPackage),
            "apt-get download of a package from a component apt has not got"
        );
        assert_eq!(Symptom::find("all fine"), None);
    }

    #[test]
    fn failure_carries_the_tail_and_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::new(&dir.path().join("log"), words).unwrap();
        let err = r.run("demo", Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("demo failed"), "{text}");
        assert!(text.contains("one") && text.contains("two"), "{text}");
        assert!(r.run("ok", Command::new("true").arg("x")).is_ok());

        let err = r.output("full", Command::new("sh").args(["-c", "echo 'No space left on device' >&2; exit 1"]));
        match err {
            Err(ToolError::Failed { symptom: Some(Symptom::DiskFull), hint, .. }) => assert_eq!(hint, " (full)"),
            other => panic!("{other:?}"),
        }
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        assert!(log.contains("$ sh -c 'echo one; echo two >&2; exit 3'") && log.contains("No space left"), "{log}");
    }

    #[test]
    fn output_bytes_and_capture() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::new(&dir.path().join("log"), words).unwrap();
        let bytes = r.output_bytes("printf", Command::new("printf").arg("\\377\\000a")).unwrap();
        assert_eq!(bytes, [0xff, 0, b'a']);
        let out = r.capture(Command::new("sh").args(["-c", "echo out; exit 1"])).unwrap();
        assert!(!out.status.success());
        assert_eq!(out.stdout, b"out\n");
    }

    #[test]
    fn a_missing_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::new(&dir.path().join("log"), words).unwrap();
        let err = r.run("x", &mut Command::new("circular-no-such-program")).unwrap_err();
        assert!(matches!(&err, ToolError::Missing { tool, .. } if tool == "circular-no-such-program"), "{err}");
        assert!(require_tool("circular-no-such-program", "nothing").unwrap_err().to_string().contains("apt-get"));
        assert!(require_tool("sh", "dash").is_ok());
        assert!(require_file("/", "base-files").is_ok());
    }
}
