//! The proxy measured on real loopback sockets. Bounds are generous (the
//! machine is shared): these check that delay and rate are applied as
//! modelled, not how fast anything is.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

mod common;

use common::sized_reply_server;
use netshape::{Proxy, Shape};

fn fetch(conn: &mut TcpStream, n: usize) {
    conn.write_all(format!("{n}\n").as_bytes()).expect("write");
    let mut buf = vec![0u8; n];
    conn.read_exact(&mut buf).expect("read");
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[test]
fn one_megabyte_at_8_mbit_takes_about_a_second() {
    let server = sized_reply_server();
    let shape = Shape {
        rtt: Duration::ZERO,
        total_bits_per_sec: Some(8_000_000),
        per_conn_bits_per_sec: None,
        handshake: false,
    };
    let proxy = Proxy::start("127.0.0.1:0", &server, shape).expect("proxy");
    let mut conn = TcpStream::connect(proxy.local_addr()).expect("connect");
    let t = Instant::now();
    fetch(&mut conn, 1_000_000);
    let took = secs(t.elapsed());
    assert!((0.9..2.0).contains(&took), "1 MB at 8 Mbit/s took {took:.2} s");
    let stats = proxy.stop();
    assert_eq!(stats.bytes_down, 1_000_000);
    assert_eq!(stats.connections, 1);
}

#[test]
fn a_request_pays_the_round_trip_and_a_new_connection_pays_one_more() {
    let server = sized_reply_server();
    let proxy = Proxy::start("127.0.0.1:0", &server, Shape::delay(Duration::from_millis(100))).expect("proxy");
    let mut conn = TcpStream::connect(proxy.local_addr()).expect("connect");
    let t = Instant::now();
    fetch(&mut conn, 10);
    let first = secs(t.elapsed());
    let t = Instant::now();
    fetch(&mut conn, 10);
    let second = secs(t.elapsed());
    assert!((0.19..0.45).contains(&first), "first request (handshake + RTT) took {first:.3} s");
    assert!((0.095..0.3).contains(&second), "a request on an open connection took {second:.3} s");
}

#[test]
fn a_stream_is_delayed_not_throttled_by_the_delay() {
    let server = sized_reply_server();
    let proxy = Proxy::start("127.0.0.1:0", &server, Shape::delay(Duration::from_millis(200))).expect("proxy");
    let mut conn = TcpStream::connect(proxy.local_addr()).expect("connect");
    fetch(&mut conn, 1); // pays the handshake
    let t = Instant::now();
    fetch(&mut conn, 20_000_000);
    let took = secs(t.elapsed());
    // One chunk per round trip would take minutes; a delayed stream ~RTT + copy time.
    assert!((0.19..3.0).contains(&took), "20 MB over a 200 ms RTT took {took:.2} s");
}

/// Seconds two clients take, side by side, to fetch 500 kB each through `proxy`.
fn two_clients_fetch_500_kb(proxy: &Proxy) -> f64 {
    let t = Instant::now();
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let addr = proxy.local_addr();
            thread::spawn(move || fetch(&mut TcpStream::connect(addr).expect("connect"), 500_000))
        })
        .collect();
    for c in clients {
        c.join().expect("client");
    }
    secs(t.elapsed())
}

#[test]
fn the_total_cap_is_shared_and_the_per_connection_cap_holds_each() {
    let server = sized_reply_server();
    let shape = Shape {
        rtt: Duration::ZERO,
        total_bits_per_sec: Some(8_000_000),
        per_conn_bits_per_sec: None,
        handshake: false,
    };
    let proxy = Proxy::start("127.0.0.1:0", &server, shape).expect("proxy");
    let took = two_clients_fetch_500_kb(&proxy);
    assert!((0.9..2.0).contains(&took), "2 x 500 kB sharing 8 Mbit/s took {took:.2} s");
    drop(proxy);

    let shape = Shape {
        rtt: Duration::ZERO,
        total_bits_per_sec: None,
        per_conn_bits_per_sec: Some(4_000_000),
        handshake: false,
    };
    let proxy = Proxy::start("127.0.0.1:0", &server, shape).expect("proxy");
    let took = two_clients_fetch_500_kb(&proxy);
    assert!((0.9..2.0).contains(&took), "2 x 500 kB at 4 Mbit/s each took {took:.2} s");
}

#[test]
fn counts_http_requests_and_half_close_reaches_the_server() {
    // A one-shot HTTP server: reads requests until the client half-closes, then
    // answers how many header blocks it saw and closes.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut all = Vec::new();
        conn.read_to_end(&mut all).expect("read");
        let n = String::from_utf8_lossy(&all).matches("\r\n\r\n").count();
        conn.write_all(n.to_string().as_bytes()).expect("write");
    });
    let proxy = Proxy::start("127.0.0.1:0", &server, Shape::delay(Duration::from_millis(20))).expect("proxy");
    let mut conn = TcpStream::connect(proxy.local_addr()).expect("connect");
    for path in ["/a", "/b", "/c"] {
        conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).expect("write");
    }
    conn.shutdown(std::net::Shutdown::Write).expect("half close");
    let mut answer = String::new();
    conn.read_to_string(&mut answer).expect("answer");
    assert_eq!(answer, "3");
    let stats = proxy.stop();
    assert_eq!(stats.requests, 3);
    assert_eq!(stats.bytes_down, 1);
}
