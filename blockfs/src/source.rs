//! Sources: the base URLs of a store (`https://`, `http://`, `file://`), tried in
//! order with failover, retried with backoff while the network is gone, up to a
//! deadline. Every copy is checked by the caller's verifier before it is accepted;
//! a bad copy sends the request on to the next source.

use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::status::SourceStatus;

/// Where files of a store come from.
#[derive(Debug, Clone)]
enum Base {
    Http(url::Url),
    File(PathBuf),
}

/// Why one attempt at one source failed.
enum Miss {
    /// The source answered that it does not have the file.
    NotFound(String),
    /// The source could not be reached, or answered with a server error: retry later.
    Transient(String),
}

pub struct Sources {
    bases: Vec<Base>,
    client: reqwest::blocking::Client,
    deadline: Duration,
    /// The source that answered last; requests start there.
    preferred: AtomicUsize,
    online: AtomicBool,
    status: Mutex<Vec<SourceStatus>>,
    /// Copies that a verifier refused.
    bad_copies: AtomicU64,
}

/// Longest a single HTTP request may take; the deadline bounds the retries.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

impl Sources {
    /// Parses base URLs. An empty list is allowed: it means offline.
    pub fn new(urls: &[String], deadline: Duration) -> Result<Sources> {
        let bases = urls.iter().map(|u| parse_base(u)).collect::<Result<Vec<_>>>()?;
        let client = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(64)
            .user_agent(concat!("circular-blockfs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::BadUrl { url: urls.join(","), reason: format!("cannot start the HTTP client: {e}") })?;
        let status = urls.iter().map(|u| SourceStatus { url: u.clone(), ..SourceStatus::default() }).collect();
        Ok(Sources {
            bases,
            client,
            deadline,
            preferred: AtomicUsize::new(0),
            online: AtomicBool::new(false),
            status: Mutex::new(status),
            bad_copies: AtomicU64::new(0),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Vec<SourceStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    pub fn bad_copies(&self) -> u64 {
        self.bad_copies.load(Ordering::Relaxed)
    }

    /// Fetches `path` (relative to each base) and returns what `verify` makes of
    /// the first copy it accepts. Sources that do not answer are retried with
    /// backoff until the deadline; when every source answered and none had a good
    /// copy, it fails at once. `max_bytes` bounds what is read from a source.
    pub fn fetch<T>(&self, path: &str, max_bytes: u64, verify: impl Fn(Vec<u8>) -> Result<T>) -> Result<T> {
        self.fetch_until(path, max_bytes, self.deadline, verify)
    }

    /// As [`Sources::fetch`], with its own deadline.
    pub fn fetch_until<T>(
        &self,
        path: &str,
        max_bytes: u64,
        deadline: Duration,
        verify: impl Fn(Vec<u8>) -> Result<T>,
    ) -> Result<T> {
        if self.bases.is_empty() {
            return Err(Error::NotCached { what: path.to_string() });
        }
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        loop {
            let mut problems = Vec::new();
            let mut any_transient = false;
            let mut all_not_found = true;
            let first = self.preferred.load(Ordering::Relaxed);
            for n in 0..self.bases.len() {
                let i = (first + n) % self.bases.len();
                match self.get(i, path, max_bytes) {
                    Ok(bytes) => {
                        self.mark(i, None);
                        all_not_found = false;
                        match verify(bytes) {
                            Ok(value) => {
                                self.preferred.store(i, Ordering::Relaxed);
                                return Ok(value);
                            }
                            Err(e) => {
                                self.bad_copies.fetch_add(1, Ordering::Relaxed);
                                problems.push(format!("{}: {e}", self.label(i)));
                            }
                        }
                    }
                    Err(Miss::NotFound(why)) => {
                        self.mark(i, None);
                        problems.push(format!("{}: {why}", self.label(i)));
                    }
                    Err(Miss::Transient(why)) => {
                        self.mark(i, Some(why.clone()));
                        any_transient = true;
                        all_not_found = false;
                        problems.push(format!("{}: {why}", self.label(i)));
                    }
                }
            }
            if !any_transient {
                return Err(if all_not_found {
                    Error::NotFound { path: path.to_string(), tried: problems.join("; ") }
                } else {
                    Error::NoValidCopy { what: path.to_string(), detail: problems.join("; ") }
                });
            }
            let elapsed = started.elapsed();
            if elapsed >= deadline {
                return Err(Error::Unreachable {
                    path: path.to_string(),
                    deadline_secs: deadline.as_secs(),
                    last: problems.join("; "),
                });
            }
            std::thread::sleep(backoff.min(deadline - elapsed));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn label(&self, i: usize) -> String {
        match &self.bases[i] {
            Base::Http(url) => url.to_string(),
            Base::File(dir) => format!("file://{}", dir.display()),
        }
    }

    fn mark(&self, i: usize, error: Option<String>) {
        self.online.store(error.is_none(), Ordering::Relaxed);
        if let Ok(mut status) = self.status.lock() {
            if let Some(s) = status.get_mut(i) {
                s.reachable = Some(error.is_none());
                s.last_error = error;
            }
        }
    }

    fn get(&self, i: usize, path: &str, max_bytes: u64) -> std::result::Result<Vec<u8>, Miss> {
        match &self.bases[i] {
            Base::File(dir) => {
                let file = dir.join(path);
                match std::fs::File::open(&file) {
                    Ok(f) => read_bounded(f, max_bytes).map_err(Miss::Transient),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Miss::NotFound("not found".into())),
                    Err(e) => Err(Miss::Transient(format!("{}: {e}", file.display()))),
                }
            }
            Base::Http(base) => {
                let url = base.join(path).map_err(|e| Miss::NotFound(format!("bad path {path:?}: {e}")))?;
                let response = self.client.get(url).send().map_err(|e| Miss::Transient(describe_http_error(&e)))?;
                let status = response.status();
                if status.is_success() {
                    read_bounded(response, max_bytes).map_err(Miss::Transient)
                } else if status.is_server_error() || status.as_u16() == 429 {
                    Err(Miss::Transient(format!("server answered {status}")))
                } else {
                    Err(Miss::NotFound(format!("server answered {status}")))
                }
            }
        }
    }
}

/// Reads at most `max_bytes`; a longer answer is an error, not a truncation.
fn read_bounded(reader: impl Read, max_bytes: u64) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    reader.take(max_bytes + 1).read_to_end(&mut out).map_err(|e| format!("transfer failed: {e}"))?;
    if out.len() as u64 > max_bytes {
        return Err(format!("answer is larger than the {max_bytes} bytes allowed"));
    }
    Ok(out)
}

fn describe_http_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn parse_base(text: &str) -> Result<Base> {
    let bad = |reason: &str| Error::BadUrl { url: text.to_string(), reason: reason.to_string() };
    let mut url = url::Url::parse(text)
        .map_err(|e| bad(&format!("{e}; give a full URL such as https://example.org/store/ or file:///srv/store")))?;
    // Url::join replaces the last segment unless the base ends in '/'.
    if !url.path().ends_with('/') {
        url.set_path(&format!("{}/", url.path()));
    }
    match url.scheme() {
        "http" | "https" => {
            if url.host_str().is_none_or(str::is_empty) {
                return Err(bad("the URL has no host"));
            }
            Ok(Base::Http(url))
        }
        "file" => url.to_file_path().map(Base::File).map_err(|()| bad("not a local path")),
        other => Err(bad(&format!("scheme {other:?} is not supported (use https://, http:// or file://)"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert!(Sources::new(&["https://example.org/store".into()], Duration::ZERO).is_ok());
        for bad in ["ftp://example.org/", "example.org/store", "https://", "", "mailto:a@b"] {
            let err = Sources::new(&[bad.into()], Duration::ZERO).err().unwrap();
            assert!(matches!(err, Error::BadUrl { .. }), "{bad}: {err}");
        }
    }

    #[test]
    fn file_sources_fail_over_and_verify() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        std::fs::write(a.path().join("x"), b"bad").unwrap();
        std::fs::write(b.path().join("x"), b"good").unwrap();
        let urls = [a.path(), b.path()].map(|p| format!("file://{}", p.display()));
        let sources = Sources::new(&urls, Duration::from_secs(1)).unwrap();
        let verify = |v: Vec<u8>| {
            if v == b"good" {
                Ok(v)
            } else {
                Err(Error::invalid("x", "bad copy"))
            }
        };
        assert_eq!(sources.fetch("x", 100, verify).unwrap(), b"good");
        assert_eq!(sources.bad_copies(), 1);
        let err = sources.fetch("missing", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = sources.fetch("x", 2, Ok).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    #[test]
    fn unreachable_http_waits_until_the_deadline() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let sources = Sources::new(&["http://127.0.0.1:9/".into()], Duration::from_millis(500)).unwrap();
        let started = Instant::now();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(500));
        assert!(!sources.online());
        assert_eq!(sources.status()[0].reachable, Some(false));
    }
}
