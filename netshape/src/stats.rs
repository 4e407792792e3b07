//! What the proxy moved, for benchmark reports.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    connections: AtomicU64,
    requests: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    resets: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    pub connections: u64,
    /// HTTP request header blocks sent client to server.
    pub requests: u64,
    /// Client to server.
    pub bytes_up: u64,
    /// Server to client.
    pub bytes_down: u64,
    /// Connections the drop fault cut (open ones) or refused (new ones).
    pub resets: u64,
}

impl StatsSnapshot {
    /// One line of JSON, the form the CLI prints and writes.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"connections\":{},\"requests\":{},\"bytes_up\":{},\"bytes_down\":{},\"resets\":{}}}",
            self.connections, self.requests, self.bytes_up, self.bytes_down, self.resets
        )
    }
}

impl Stats {
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
            resets: self.resets.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn connection(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn reset(&self) {
        self.resets.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn moved(&self, up: bool, n: usize) {
        let counter = if up { &self.bytes_up } else { &self.bytes_down };
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn requests(&self, n: u64) {
        if n > 0 {
            self.requests.fetch_add(n, Ordering::Relaxed);
        }
    }
}

/// Counts `\r\n\r\n` in a byte stream that arrives in arbitrary pieces: the end
/// of each HTTP request's header block.
#[derive(Debug, Default)]
pub struct RequestCounter {
    /// How many bytes of "\r\n\r\n" the stream currently ends with.
    matched: usize,
}

const END: &[u8; 4] = b"\r\n\r\n";

impl RequestCounter {
    /// Feeds the next piece of the stream; returns how many header blocks ended in it.
    pub fn feed(&mut self, bytes: &[u8]) -> u64 {
        let mut found = 0;
        for &b in bytes {
            if b == END[self.matched] {
                self.matched += 1;
                if self.matched == END.len() {
                    found += 1;
                    self.matched = 0;
                }
            } else {
                // "\r\n\r" followed by "\r" still ends with "\r"; "\n" cases
                // cannot restart a match.
                self.matched = usize::from(b == b'\r');
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_header_ends_across_any_split() {
        let stream = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n\r\nHEAD /c HTTP/1.1\r\n\r\n";
        for split in 0..stream.len() {
            let mut c = RequestCounter::default();
            let n = c.feed(&stream[..split]) + c.feed(&stream[split..]);
            assert_eq!(n, 3, "split at {split}");
        }
        let mut c = RequestCounter::default();
        assert_eq!(stream.iter().map(|b| c.feed(std::slice::from_ref(b))).sum::<u64>(), 3);
        let mut c = RequestCounter::default();
        assert_eq!(c.feed(b"\r\r\n\r\n\r\n"), 1);
    }
}
