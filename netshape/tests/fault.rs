//! The faults on real loopback sockets: `drop` really resets open connections
//! and refuses new ones, `stall` really holds bytes and lets them through when
//! set back to `none`, and `--fault-file` switches them in the running binary.
//! Waits are bounded polls, never fixed sleeps standing in for an event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::sized_reply_server;
use netshape::{Fault, Proxy, Shape};

fn no_shape() -> Shape {
    Shape { rtt: Duration::ZERO, total_bits_per_sec: None, per_conn_bits_per_sec: None, handshake: false }
}

/// Asks for n bytes and reads them all, or says why not.
fn try_fetch(conn: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    conn.write_all(format!("{n}\n").as_bytes())?;
    let mut buf = vec![0u8; n];
    conn.read_exact(&mut buf)?;
    Ok(buf)
}

fn connect(addr: impl std::net::ToSocketAddrs) -> TcpStream {
    let c = TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    c
}

#[test]
fn drop_resets_open_connections_and_refuses_new_ones_until_set_back() {
    let server = sized_reply_server();
    let proxy = Proxy::start("127.0.0.1:0", &server, no_shape()).expect("proxy");
    let mut open = connect(proxy.local_addr());
    assert_eq!(try_fetch(&mut open, 1000).expect("a fetch before the fault").len(), 1000);

    proxy.set_fault(Fault::Drop);
    assert_eq!(proxy.fault(), Fault::Drop);
    // The open connection is cut: the next request gets no answer.
    let e = try_fetch(&mut open, 1000).expect_err("a cut connection still answered");
    assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe), "{e:?}");
    // A new one is accepted by the kernel, then reset before any byte.
    let mut new = connect(proxy.local_addr());
    let e = try_fetch(&mut new, 10).expect_err("a new connection got through a dropped link");
    // The reset can meet the request's write (EPIPE) or its read, whichever comes first.
    assert!(matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe), "{e:?}");
    assert!(proxy.stats().resets >= 2, "{:?}", proxy.stats());

    proxy.set_fault(Fault::None);
    let mut again = connect(proxy.local_addr());
    assert_eq!(try_fetch(&mut again, 5000).expect("a fetch after the link came back"), vec![7u8; 5000]);
}

#[test]
fn stall_holds_every_byte_then_delivers_them_all_when_set_back() {
    let server = sized_reply_server();
    let proxy = Proxy::start("127.0.0.1:0", &server, no_shape()).expect("proxy");
    let mut conn = connect(proxy.local_addr());
    assert_eq!(try_fetch(&mut conn, 10).expect("warm-up").len(), 10);

    proxy.set_fault(Fault::Stall);
    conn.write_all(b"100000\n").expect("the request is written (the kernel buffers it)");
    conn.set_read_timeout(Some(Duration::from_millis(800))).expect("timeout");
    let mut first = [0u8; 1];
    let e = conn.read(&mut first).expect_err("a byte moved through a stalled link");
    assert!(matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut), "{e:?}");
    // A connection made during the stall is accepted and held too, not refused.
    let mut during = connect(proxy.local_addr());
    during.write_all(b"3\n").expect("write");
    during.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
    assert!(during.read(&mut first).is_err(), "the new connection moved a byte while stalled");

    let resumed = Instant::now();
    proxy.set_fault(Fault::None);
    conn.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut all = vec![0u8; 100_000];
    conn.read_exact(&mut all).expect("the held answer after the stall");
    assert_eq!(all, vec![7u8; 100_000]);
    during.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut three = [0u8; 3];
    during.read_exact(&mut three).expect("the connection made during the stall");
    assert!(resumed.elapsed() < Duration::from_secs(5), "resuming took {:?}", resumed.elapsed());
    assert_eq!(proxy.stats().resets, 0);
}

/// The binary, its fault file, and the address it listens on.
struct Running {
    child: Child,
    addr: String,
    fault_file: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run_binary(server: &str) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let fault_file = dir.path().join("fault");
    let mut child = Command::new(env!("CARGO_BIN_EXE_netshape"))
        .args(["--listen", "127.0.0.1:0", "--to", server, "--fault-file"])
        .arg(&fault_file)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("netshape runs");
    // The first stderr line names the address it listens on.
    let mut line = String::new();
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    stderr.read_line(&mut line).expect("banner");
    // Keep reading: a closed pipe would make its later log lines fail.
    thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let addr = line.split_whitespace().nth(1).expect("an address in the banner").to_string();
    Running { child, addr, fault_file, _dir: dir }
}

/// Polls `ok` every 50 ms for up to 10 s (the file is read ten times a second).
fn within_10s(what: &str, mut ok: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if ok() {
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen within 10 s");
}

fn write_fault(path: &std::path::Path, word: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{word}\n")).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

#[test]
fn the_fault_file_switches_the_running_binary() {
    let server = sized_reply_server();
    let run = run_binary(&server);
    let fetch_ok = || try_fetch(&mut connect(run.addr.as_str()), 100).is_ok();
    assert!(fetch_ok(), "no fault file: the link works");
    write_fault(&run.fault_file, "drop");
    within_10s("the link going down", || !fetch_ok());
    // A word it does not know leaves the fault as it was.
    write_fault(&run.fault_file, "bogus");
    thread::sleep(Duration::from_millis(300));
    assert!(!fetch_ok(), "a bad word brought the link back");
    write_fault(&run.fault_file, "none");
    within_10s("the link coming back", fetch_ok);
    write_fault(&run.fault_file, "stall");
    let mut held = connect(run.addr.as_str());
    within_10s("the link stalling", || {
        held.set_read_timeout(Some(Duration::from_millis(300))).expect("timeout");
        try_fetch(&mut held, 10).is_err()
    });
    std::fs::remove_file(&run.fault_file).expect("remove");
    within_10s("the link flowing again (no file means none)", fetch_ok);
}
