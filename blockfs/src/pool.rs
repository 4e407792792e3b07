//! A fixed pool of threads running boxed jobs: how FUSE requests leave the
//! session's single thread so that many reads can wait on the network at once.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    sender: Option<Sender<Job>>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Pool {
    pub fn new(name: &str, size: usize) -> std::io::Result<Pool> {
        let (sender, receiver) = channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let threads = (0..size.max(1))
            .map(|n| {
                let receiver: Arc<Mutex<Receiver<Job>>> = receiver.clone();
                thread::Builder::new().name(format!("{name}-{n}")).spawn(move || loop {
                    let job = match receiver.lock() {
                        Ok(r) => r.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Pool { sender: Some(sender), threads })
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
}
