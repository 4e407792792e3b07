//! A small QMP client: enough to hand QEMU a socket (`getfd` with the fd in SCM_RIGHTS, then
//! `add_client` with protocol `@dbus-display`) and, for tests, to ask for `screendump`.

use std::io::{BufRead, BufReader, IoSlice, Write};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use serde_json::{json, Value};

use crate::error::{Error, Result};

/// A QMP connection after the capabilities handshake.
#[derive(Debug)]
pub struct Qmp {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to the QMP socket at `path` and leaves capabilities negotiation mode.
    ///
    /// # Errors
    /// [`Error::QmpIo`] when the socket cannot be reached, [`Error::Qmp`] when QEMU refuses.
    pub fn connect(path: &Path) -> Result<Qmp> {
        let io = |source| Error::QmpIo { path: path.to_path_buf(), source };
        let stream = UnixStream::connect(path).map_err(io)?;
        let writer = stream.try_clone().map_err(io)?;
        let mut qmp = Qmp { path: path.to_path_buf(), reader: BufReader::new(stream), writer };
        let greeting = qmp.read_message("greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(Error::Qmp { command: "greeting".into(), message: format!("not QMP: {greeting}") });
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn io(&self, source: std::io::Error) -> Error {
        Error::QmpIo { path: self.path.clone(), source }
    }

    /// Reads the next message, or [`Error::QmpClosed`] at the end of the stream.
    fn read_message(&mut self, command: &str) -> Result<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).map_err(|e| self.io(e))?;
        if n == 0 {
            return Err(Error::QmpClosed);
        }
        serde_json::from_str(&line).map_err(|e| Error::Qmp { command: command.into(), message: format!("{e}: {line}") })
    }

    /// Waits for the reply to the command just sent; events before it are dropped.
    fn reply(&mut self, command: &str) -> Result<Value> {
        loop {
            let msg = self.read_message(command)?;
            if let Some(ret) = msg.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = msg.get("error") {
                let desc = err.get("desc").and_then(Value::as_str).unwrap_or("(no description)");
                return Err(Error::Qmp { command: command.into(), message: desc.to_string() });
            }
        }
    }

    /// Runs `command` with `arguments` (a JSON object) and returns its `return` value.
    ///
    /// # Errors
    /// [`Error::Qmp`] with QEMU's description when it fails; [`Error::QmpClosed`] if QEMU exits.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes()).map_err(|e| self.io(e))?;
        self.reply(command)
    }

    /// Passes `fd` to QEMU under `name` (`getfd`; the fd travels as SCM_RIGHTS beside the command).
    ///
    /// # Errors
    /// As [`Qmp::execute`].
    pub fn getfd(&mut self, fd: BorrowedFd<'_>, name: &str) -> Result<()> {
        let line = format!("{}\n", json!({ "execute": "getfd", "arguments": { "fdname": name } }));
        let fds = [fd.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [IoSlice::new(line.as_bytes())];
        let sent = sendmsg::<()>(self.writer.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .map_err(|e| self.io(std::io::Error::from(e)))?;
        if sent != line.len() {
            // The fd went with the first bytes; the rest of the command follows as plain data.
            self.writer.write_all(&line.as_bytes()[sent..]).map_err(|e| self.io(e))?;
        }
        self.reply("getfd").map(|_| ())
    }

    /// Waits until QEMU closes the socket (the VM has exited), dropping events meanwhile.
    /// Blocks in `read`: no polling.
    ///
    /// # Errors
    /// [`Error::QmpIo`] if the socket fails otherwise.
    pub fn wait_closed(mut self) -> Result<()> {
        loop {
            match self.read_message("(events)") {
                Err(Error::QmpClosed) => return Ok(()),
                Err(Error::Qmp { .. }) | Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    }
}
