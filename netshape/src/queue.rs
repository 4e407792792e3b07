//! The chunks of one direction waiting in the proxy, each with the instant it
//! may be delivered. Bounded in bytes: a full queue blocks the reader, which
//! stops reading the socket, so the sender feels TCP back-pressure.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use std::time::Instant;

pub enum Item {
    Data {
        deliver_at: Instant,
        bytes: Vec<u8>,
    },
    /// The sender closed its side after everything before this; delivered when due.
    Eof {
        deliver_at: Instant,
    },
    /// The other side failed: stop now, deliver nothing more.
    Abort,
}

struct Inner {
    items: VecDeque<Item>,
    bytes: usize,
    /// The writer is gone: nothing pushed now would ever be delivered.
    closed: bool,
}

pub struct Queue {
    inner: Mutex<Inner>,
    changed: Condvar,
    limit: usize,
}

impl Queue {
    pub fn new(limit: usize) -> Queue {
        Queue {
            inner: Mutex::new(Inner { items: VecDeque::new(), bytes: 0, closed: false }),
            changed: Condvar::new(),
            limit,
        }
    }

    /// Waits until there is room (one chunk may always enter an empty queue).
    /// False once the queue is closed.
    pub fn wait_for_room(&self, n: usize) -> bool {
        let mut inner = self.lock();
        while !inner.closed && inner.bytes > 0 && inner.bytes + n > self.limit {
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
        !inner.closed
    }

    /// The writer stopped: wake and refuse the reader from now on.
    pub fn close(&self) {
        let mut inner = self.lock();
        inner.closed = true;
        inner.items.clear();
        inner.bytes = 0;
        self.changed.notify_all();
    }

    pub fn push(&self, item: Item) {
        let mut inner = self.lock();
        if let Item::Data { bytes, .. } = &item {
            inner.bytes += bytes.len();
        }
        inner.items.push_back(item);
        self.changed.notify_all();
    }

    /// Takes the oldest item, waiting for one.
    pub fn pop(&self) -> Item {
        let mut inner = self.lock();
        loop {
            if let Some(item) = inner.items.pop_front() {
                if let Item::Data { bytes, .. } = &item {
                    inner.bytes -= bytes.len();
                }
                self.changed.notify_all();
                return item;
            }
            inner = self.changed.wait(inner).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The queue's invariants hold between statements, so a panic elsewhere
        // cannot leave it half-updated.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}
