//! Faults of the link, switchable while the proxy runs: the link goes down
//! (every connection is cut, new ones are refused) or stalls (connections stay
//! open and no byte moves), then comes back.

use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::Error;

/// What the link does besides its delay and rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Bytes flow (with the shape's delay and rate).
    #[default]
    None,
    /// The link is down: every open connection is reset, and every new one is
    /// reset as soon as it is accepted.
    Drop,
    /// The link hangs: connections stay open and new ones are accepted, but no
    /// byte moves either way until the fault changes; then the held bytes flow on.
    Stall,
}

impl Fault {
    /// The word for the fault, as `--fault-file` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::Drop => "drop",
            Fault::Stall => "stall",
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Fault {
    type Err = Error;

    /// One word, `none`, `drop` or `stall`, in any case, with any whitespace
    /// around it (a file written with `echo` ends with a newline). An empty
    /// text is `none`.
    fn from_str(text: &str) -> Result<Fault, Error> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "none" => Ok(Fault::None),
            "drop" => Ok(Fault::Drop),
            "stall" => Ok(Fault::Stall),
            other => Err(Error::Fault(format!("{other:?} is not a fault; write none, drop or stall"))),
        }
    }
}

/// The fault in force, shared by every pump, which waits here while the link stalls.
#[derive(Debug, Default)]
pub(crate) struct FaultGate {
    fault: Mutex<Fault>,
    changed: Condvar,
}

/// How often a stalled pump looks at the proxy's stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

impl FaultGate {
    pub(crate) fn get(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.changed.notify_all();
    }

    /// Returns at once unless the link stalls; else when the stall ends or the proxy stops.
    pub(crate) fn wait_while_stalled(&self, stopping: &AtomicBool) {
        let mut fault = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        while *fault == Fault::Stall && !stopping.load(Ordering::SeqCst) {
            fault = match self.changed.wait_timeout(fault, STOP_POLL) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }
}

/// Cuts a connection: linger 0 makes the kernel answer with an RST instead of a
/// FIN once the last handle of the socket closes, and the shutdown wakes every
/// pump blocked on it now (so the peer sees the end at once).
pub(crate) fn reset(stream: &TcpStream) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: the descriptor is open (borrowed from a live TcpStream), and the
    // option value is a valid `linger` whose exact size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        // Without linger 0 the peer gets a FIN instead: still a cut connection.
        eprintln!("netshape: cannot set SO_LINGER: {}", std::io::Error::last_os_error());
    }
    let _ = stream.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_words_parse_in_any_case_and_anything_else_says_what_to_write() {
        assert_eq!("none\n".parse::<Fault>().unwrap(), Fault::None);
        assert_eq!("".parse::<Fault>().unwrap(), Fault::None);
        assert_eq!(" DROP ".parse::<Fault>().unwrap(), Fault::Drop);
        assert_eq!("stall\n".parse::<Fault>().unwrap(), Fault::Stall);
        let e = "reset".parse::<Fault>().unwrap_err().to_string();
        assert!(e.contains("\"reset\"") && e.contains("none, drop or stall"), "{e}");
        for f in [Fault::None, Fault::Drop, Fault::Stall] {
            assert_eq!(f.to_string().parse::<Fault>().unwrap(), f);
        }
    }

    #[test]
    fn a_stalled_gate_holds_until_set_back_or_stopped() {
        let gate = std::sync::Arc::new(FaultGate::default());
        let stopping = std::sync::Arc::new(AtomicBool::new(false));
        gate.wait_while_stalled(&stopping); // none: returns at once
        gate.set(Fault::Stall);
        let (g, s) = (gate.clone(), stopping.clone());
        let waiter = std::thread::spawn(move || g.wait_while_stalled(&s));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!waiter.is_finished(), "a stalled pump went on");
        gate.set(Fault::None);
        waiter.join().unwrap();
        gate.set(Fault::Stall);
        let (g, s) = (gate.clone(), stopping.clone());
        let waiter = std::thread::spawn(move || g.wait_while_stalled(&s));
        stopping.store(true, Ordering::SeqCst);
        waiter.join().unwrap();
    }
}
