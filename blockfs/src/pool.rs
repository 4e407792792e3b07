//! A fixed pool of threads running boxed jobs: how FUSE requests leave the
//! session's single thread so that many reads can wait on the network at once.
//!
//! A job that panics (a bug) does not take its thread with it: the panic is
//! caught, logged and kept for `status.json`, and the thread takes the next job.
//! (A pool whose threads died one by one would drop every job, and the mount
//! would answer EIO to everything while it looked alive.)

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    sender: Option<Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
    last_panic: Arc<Mutex<Option<String>>>,
}

impl Pool {
    pub fn new(name: &str, size: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let last_panic = Arc::new(Mutex::new(None));
        let threads = (0..size.max(1))
            .map(|n| {
                let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
                let last_panic = last_panic.clone();
                let thread_name = format!("{name}-{n}");
                thread::Builder::new().name(thread_name.clone()).spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    if let Err(panic) = catch_unwind(AssertUnwindSafe(job)) {
                        let text = crate::loader::panic_text(&*panic);
                        log::error!("{thread_name}: {text}; the request failed, the thread goes on");
                        *last_panic.lock().unwrap_or_else(|p| p.into_inner()) = Some(text);
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool { sender: Some(sender), threads, last_panic })
    }

    /// The message of the last job that panicked, if one did.
    pub fn last_panic(&self) -> Option<String> {
        self.last_panic.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn execute(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(sender) = &self.sender {
            // Sending fails only after shutdown began; the job is dropped then.
            let _ = sender.send(Box::new(job));
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.sender.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn runs_every_job_before_drop_returns() {
        let count = Arc::new(AtomicUsize::new(0));
        let pool = Pool::new("t", 3).unwrap();
        for _ in 0..50 {
            let count = count.clone();
            pool.execute(move || {
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
        drop(pool);
        assert_eq!(count.load(Ordering::Relaxed), 50);
    }

    #[test]
    fn a_job_that_panics_leaves_its_thread_serving() {
        let count = Arc::new(AtomicUsize::new(0));
        let pool = Pool::new("t", 2).unwrap();
        for i in 0..20 {
            let count = count.clone();
            pool.execute(move || {
                if i % 2 == 0 {
                    panic!("job {i} broke");
                }
                count.fetch_add(1, Ordering::Relaxed);
            });
        }
        let last = loop {
            if count.load(Ordering::Relaxed) == 10 {
                break pool.last_panic();
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        assert!(last.unwrap().contains("broke"));
        drop(pool);
        assert_eq!(count.load(Ordering::Relaxed), 10);
    }
}
