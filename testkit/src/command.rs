//! Running a program the way a person would, with failures that say everything.
// Dev-only helper: a command that does not do what the test expected is the test's failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The path of the workspace binary `name` in the target directory this test was built
/// into (`target/<profile>/<name>`). For a binary of the test's own package prefer
/// `env!("CARGO_BIN_EXE_<name>")`; this is for the other packages' binaries, which
/// `cargo test --workspace` builds.
///
/// # Panics
/// When the binary was not built, naming the `cargo build` that builds it.
pub fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/<test> -> target/<profile>
    let dir = exe.parent().and_then(Path::parent).expect("the test binary is in target/<profile>/deps");
    let bin = dir.join(name);
    assert!(
        bin.exists(),
        "{} was not built: run `cargo build -p {name}` (or `cargo test --workspace`, which builds it)",
        bin.display()
    );
    bin
}

/// A command to run in a test. [`TestCommand::run`] and [`TestCommand::fails`] check the
/// exit status and, when it is not the expected one, panic with the command line, the
/// working directory, the status, stdout and stderr.
pub struct TestCommand {
    cmd: Command,
    cwd: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
}

impl TestCommand {
    /// Runs `program` (a path, or a name on `PATH`).
    pub fn new(program: impl AsRef<OsStr>) -> TestCommand {
        TestCommand { cmd: Command::new(program), cwd: None, stdin: None }
    }

    /// Runs the workspace binary `name` ([`cargo_bin`]).
    pub fn bin(name: &str) -> TestCommand {
        TestCommand::new(cargo_bin(name))
    }

    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.arg(arg);
        self
    }

    pub fn args<I, S>(&mut self, args: I) -> &mut TestCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut TestCommand {
        self.cwd = Some(dir.as_ref().to_path_buf());
        self.cmd.current_dir(dir);
        self
    }

    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut TestCommand {
        self.cmd.env(key, value);
        self
    }

    /// Feeds `bytes` to the command's standard input.
    pub fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut TestCommand {
        self.stdin = Some(bytes.into());
        self
    }

    /// Runs the command and returns what it did, whatever its status.
    pub fn output(&mut self) -> Output {
        self.cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        self.cmd.stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = self.cmd.spawn().unwrap_or_else(|e| panic!("could not run {}: {e}", self.describe()));
        if let Some(bytes) = self.stdin.take() {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped stdin");
            std::thread::spawn(move || stdin.write_all(&bytes));
        }
        child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {}: {e}", self.describe()))
    }

    /// Runs the command, which must succeed; returns its output.
    #[track_caller]
    pub fn run(&mut self) -> Output {
        let out = self.output();
        if !out.status.success() {
            panic!("{}", self.report("the command failed", &out));
        }
        out
    }

    /// Runs the command, which must succeed; returns its stdout as text.
    #[track_caller]
    pub fn stdout(&mut self) -> String {
        String::from_utf8_lossy(&self.run().stdout).into_owned()
    }

    /// Runs the command, which must fail (exit non-zero); returns its output.
    #[track_caller]
    pub fn fails(&mut self) -> Output {
        let out = self.output();
        if out.status.success() {
            panic!("{}", self.report("the command succeeded, and it should have failed", &out));
        }
        out
    }

    /// Runs the command, which must fail with `needle` in its stderr; returns the stderr.
    #[track_caller]
    pub fn fails_with(&mut self, needle: &str) -> String {
        let out = self.fails();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !stderr.contains(needle) {
            panic!("{}", self.report(&format!("stderr does not contain {needle:?}"), &out));
        }
        stderr
    }

    /// Starts the command in the background, its stderr to `stderr` (a log to show on failure).
    pub fn spawn(&mut self, stderr: &Path) -> Child {
        let log = std::fs::File::create(stderr).unwrap_or_else(|e| panic!("{}: {e}", stderr.display()));
        self.cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log);
        self.cmd.spawn().unwrap_or_else(|e| panic!("could not run {}: {e}", self.describe()))
    }

    /// The command line, as a shell would show it.
    pub fn describe(&self) -> String {
        std::iter::once(self.cmd.get_program())
            .chain(self.cmd.get_args())
            .map(|a| {
                let a = a.to_string_lossy();
                if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$\\".contains(c)) {
                    format!("'{}'", a.replace('\'', r"'\''"))
                } else {
                    a.into_owned()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What a failure says: the command, where it ran, its status and its output.
    pub fn report(&self, what: &str, out: &Output) -> String {
        let cwd = match &self.cwd {
            Some(d) => d.display().to_string(),
            None => std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
        };
        format!(
            "{what}\ncommand: {}\ncwd: {cwd}\nstatus: {}\n---- stdout ----\n{}\n---- stderr ----\n{}",
            self.describe(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_the_command_its_status_and_its_output() {
        let mut cmd = TestCommand::new("sh");
        cmd.args(["-c", "echo out; echo err >&2; exit 3"]).current_dir("/");
        let out = cmd.fails();
        let report = cmd.report("failed", &out);
        for needle in ["command: sh -c 'echo out; echo err >&2; exit 3'", "cwd: /", "exit status: 3", "out\n", "err\n"]
        {
            assert!(report.contains(needle), "{needle:?} in {report}");
        }
    }

    #[test]
    #[should_panic(expected = "the command failed")]
    fn run_panics_when_the_command_fails() {
        TestCommand::new("false").run();
    }

    #[test]
    fn stdin_and_stdout() {
        assert_eq!(TestCommand::new("cat").stdin("hello").stdout(), "hello");
    }
}
