//! The server both proxy tests talk to through netshape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread;

/// A server that, per connection, answers each line `N\n` with N bytes of 7.
pub fn sized_reply_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            thread::spawn(move || {
                let mut out = conn.try_clone().expect("clone");
                for line in BufReader::new(conn).lines() {
                    let Ok(line) = line else { return };
                    let Ok(n) = line.trim().parse::<usize>() else { return };
                    if out.write_all(&vec![7u8; n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}
