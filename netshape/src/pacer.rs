//! Serialisation on a link of fixed rate: a chunk of n bytes occupies the link
//! for n / rate seconds after it (and everything queued before it) arrived.
//! No burst credit is kept: an idle link does not save up capacity.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Pacer {
    bytes_per_sec: f64,
    /// When the link is next free.
    free_at: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(bits_per_sec: u64) -> Pacer {
        Pacer { bytes_per_sec: bits_per_sec as f64 / 8.0, free_at: Mutex::new(None) }
    }

    /// How long n bytes occupy the link.
    pub fn duration(&self, n: usize) -> Duration {
        Duration::from_secs_f64(n as f64 / self.bytes_per_sec)
    }

    /// Books n bytes that are ready at `ready`; returns when their last byte has
    /// left the link.
    pub fn book(&self, n: usize, ready: Instant) -> Instant {
        // A poisoned lock only means another pump panicked mid-booking; the
        // instant inside is still a valid time, so carry on with it.
        let mut free_at = self.free_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = free_at.map_or(ready, |f| f.max(ready));
        let end = start + self.duration(n);
        *free_at = Some(end);
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_to_back_chunks_queue_and_idle_time_is_not_saved() {
        let p = Pacer::new(8_000_000); // 1 MB/s
        let t0 = Instant::now();
        let a = p.book(1000, t0);
        let b = p.book(1000, t0);
        assert_eq!(a - t0, Duration::from_millis(1));
        assert_eq!(b - t0, Duration::from_millis(2));
        // After a pause the link starts fresh from the new chunk's ready time.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(p.book(1000, later) - later, Duration::from_millis(1));
    }
}
