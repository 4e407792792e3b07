//! Running the external tools (debootstrap, apt in a chroot, mke2fs, mount …).
//!
//! Every tool's output goes to one log file in the work directory; on a terminal a
//! spinner shows the step and the tool's latest line. A failure becomes an
//! [`OsError::CommandFailed`] carrying the last lines, so the user sees why without
//! opening the log. It does not interpret what the tools print, except for a few
//! well-known messages that deserve a hint.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::error::{OsError, Result};

/// How many output lines an error shows.
const TAIL_LINES: usize = 15;

/// Where tool output goes, and the step counter shown to the user.
pub struct Runner {
    log_path: PathBuf,
    log: File,
}

impl Runner {
    pub fn new(log_path: &Path) -> Result<Self> {
        let log = File::create(log_path).map_err(|e| OsError::io(format!("creating {}", log_path.display()), e))?;
        Ok(Runner { log_path: log_path.to_path_buf(), log })
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
    pub fn run(&mut self, what: &str, cmd: &mut Command) -> Result<()> {
        self.run_capture(what, cmd).map(|_| ())
    }

    /// Like [`Runner::run`], and returns the tail of the output (for callers that
    /// must recognise a message, such as debootstrap's "couldn't download").
    pub fn run_capture(&mut self, what: &str, cmd: &mut Command) -> Result<String> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let _ = writeln!(self.log, "$ {}", describe(cmd));
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|source| OsError::Spawn { program: program.clone(), source })?;
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
        let status = child.wait().map_err(|source| OsError::Spawn { program: program.clone(), source })?;
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
        Err(OsError::CommandFailed {
            what: what.to_string(),
            status: status.to_string(),
            hint: hint_for(&tail_text),
            tail: tail_text,
            log: self.log_path.clone(),
        })
    }

    /// Runs a quick command and returns its standard output (not logged line by line).
    pub fn output(&mut self, what: &str, cmd: &mut Command) -> Result<String> {
        let program = cmd.get_program().to_string_lossy().into_owned();
        let _ = writeln!(self.log, "$ {}", describe(cmd));
        let out =
            cmd.stdin(Stdio::null()).output().map_err(|source| OsError::Spawn { program: program.clone(), source })?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let _ = self.log.write_all(stderr.as_bytes());
        if !out.status.success() {
            return Err(OsError::CommandFailed {
                what: what.to_string(),
                status: out.status.to_string(),
                hint: hint_for(&stderr),
                tail: stderr,
                log: self.log_path.clone(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
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

/// A hint for well-known failure messages.
pub fn hint_for(output: &str) -> String {
    let o = output.to_ascii_lowercase();
    if o.contains("no space left on device") || o.contains("could not allocate block") {
        " (the disk or the image is full: free space on the host, or pass a larger --size)".into()
    } else if o.contains("temporary failure resolving")
        || o.contains("could not resolve")
        || o.contains("failed to fetch")
        || o.contains("couldn't download")
        || o.contains("failed getting release file")
    {
        " (the Debian mirror could not be reached: check the network and --mirror)".into()
    } else if o.contains("unable to locate package") || o.contains("has no installation candidate") {
        " (a package in --packages does not exist in this suite)".into()
    } else {
        String::new()
    }
}

/// Checks that a program is on PATH; returns a [`OsError::MissingTool`] saying
/// which Debian package provides it.
pub fn require_tool(tool: &str, package: &str) -> Result<()> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].iter().map(PathBuf::from))
        .any(|dir| dir.join(tool).is_file());
    if found {
        Ok(())
    } else {
        Err(OsError::MissingTool {
            tool: tool.to_string(),
            hint: format!("install it with `apt-get install {package}` (or run `make deps`)"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_what_needs_it() {
        let mut c = Command::new("chroot");
        c.args(["/r", "sh", "-c", "echo 'hi' > x", ""]);
        assert_eq!(describe(&c), "chroot /r sh -c 'echo '\\''hi'\\'' > x' ''");
    }

    #[test]
    fn hints() {
        assert!(hint_for("write error: No space left on device").contains("full"));
        assert!(hint_for("E: Failed getting release file http://x/dists/y/Release").contains("mirror"));
        assert!(hint_for("E: Unable to locate package nosuch").contains("package"));
        assert_eq!(hint_for("all fine"), "");
    }

    #[test]
    fn failure_carries_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Runner::new(&dir.path().join("log")).unwrap();
        let err = r.run("demo", Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("demo failed"), "{text}");
        assert!(text.contains("one") && text.contains("two"), "{text}");
        assert!(r.run("ok", Command::new("true").arg("x")).is_ok());
    }
}
