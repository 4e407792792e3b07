//! Sources: the base URLs of a store (`https://`, `http://`, `file://`), tried in
//! order with failover, retried with backoff while the network is gone, up to a
//! deadline. Every copy is checked by the caller's verifier before it is accepted;
//! a bad copy sends the request on to the next source.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
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
#[derive(Debug)]
pub(crate) enum Miss {
    /// The source answered that it does not have the file.
    NotFound(String),
    /// The source could not be reached, or answered with a server error: retry later.
    Transient(String),
    /// The source sent an answer that cannot be right (too large): a bad copy.
    Bad(String),
}

/// The store's sources (mirrors), tried in order with failover, hedging and retries, every
/// wait bounded by the deadline.
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
    /// How hard the fetches had to work: see [`FetchCounts`].
    retries: AtomicU64,
    hedged: AtomicU64,
    failovers: AtomicU64,
    /// Paths whose fetch just ran into the deadline, and when: asked again at
    /// once (the kernel retries a failed read, a read spans two halves of a
    /// block), they fail at once instead of waiting a whole deadline again.
    recent_timeouts: Mutex<std::collections::HashMap<String, (Instant, String)>>,
    /// The proxy `http(s)://` requests go through, named in their errors.
    proxy: Option<String>,
}

/// How hard fetches had to work to get their copies (counts since the mount started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FetchCounts {
    /// Rounds asked again, after a backoff, because no source answered (the
    /// network was down, a server was dead, a source stalled to the deadline of
    /// an attempt).
    pub retries: u64,
    /// Requests sent to the next source while an earlier one of the same round
    /// was still unanswered after the hedge delay (1.5 s).
    pub hedged: u64,
    /// Copies that came from another source than the one a round asked first
    /// (after a miss, a bad copy, or by winning a hedge).
    pub failovers: u64,
}

/// Longest a single HTTP attempt may take; the caller's deadline cuts it shorter.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Grace time of a body before the minimum-progress rule applies. (A body that
/// sends nothing at all is cut by the hedge and the deadline: the caller stops
/// waiting for it.)
const STALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Minimum progress of a body: after the first [`STALL_TIMEOUT`], a transfer
/// slower than this is a drip and is dropped (a healthy mirror is far faster).
const MIN_BYTES_PER_SEC: u64 = 4096;
/// When a source has not answered after this long, the next one is asked too
/// (a hedged request) and the first verified answer wins.
const HEDGE_AFTER: Duration = Duration::from_millis(1500);
/// Most redirects followed for one request (a loop fails at once).
const MAX_REDIRECTS: usize = 5;
/// How long a path that ran into the deadline fails at once when asked again.
const TIMEOUT_MEMORY: Duration = Duration::from_secs(3);
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How the sources are reached, beyond their URLs.
///
/// Without `proxy`, the usual variables are read, as curl and apt read them:
/// `https_proxy`/`HTTPS_PROXY` for `https://` sources, `http_proxy`/`HTTP_PROXY`
/// for `http://` ones, `all_proxy`, and `no_proxy` (hosts to reach directly).
#[derive(Debug, Clone, Default)]
pub struct Network {
    /// Extra CA certificates (PEM bundle) for `https://` sources with a
    /// certificate from a private CA (`--ca`, `circular.ca=`); `$SSL_CERT_FILE`
    /// and `$SSL_CERT_DIR` are read too.
    pub ca_file: Option<PathBuf>,
    /// An HTTP proxy for every `http://` and `https://` source
    /// (`--proxy http://host:port`, `circular.proxy=`), instead of the
    /// variables; `no_proxy` still applies.
    pub proxy: Option<String>,
}

/// The proxy the environment names (as reqwest reads it), for messages.
fn proxy_from_env() -> Option<String> {
    ["https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

/// A proxy URL fit for a message or a log: its password, if any, is not shown.
fn without_password(proxy: &str) -> String {
    match url::Url::parse(proxy) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        _ => proxy.to_string(),
    }
}

/// `http://[user:password@]host:port`: a proxy that `CONNECT`s to `https://`
/// sources and forwards `http://` requests (squid, a school's filter).
fn parse_proxy(text: &str) -> Result<reqwest::Proxy> {
    // The proxy's own error, not the store URL's: people look at the right setting.
    let bad =
        |reason: String| Error::Invalid { what: format!("the proxy {text:?} (--proxy, circular.proxy=)"), reason };
    let url = url::Url::parse(text).map_err(|e| bad(format!("{e}; give the proxy as http://host:port")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a proxy is given as http://host:port (or https://host:port)".into()));
    }
    let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| bad(format!("not a usable proxy: {e}")))?;
    Ok(proxy.no_proxy(reqwest::NoProxy::from_env()))
}

impl Sources {
    /// Parses base URLs. An empty list is allowed: it means offline.
    pub fn new(urls: &[String], deadline: Duration) -> Result<Sources> {
        Sources::with_network(urls, deadline, &Network::default())
    }

    /// As [`Sources::new`], reaching the sources as `network` says: extra CA
    /// certificates, and a proxy.
    ///
    /// # Errors
    /// [`Error::BadUrl`] for a source URL that cannot be used; [`Error::Invalid`] for a
    /// CA file or a proxy URL that cannot be.
    pub fn with_network(urls: &[String], deadline: Duration, network: &Network) -> Result<Sources> {
        let bases = urls.iter().map(|u| parse_base(u)).collect::<Result<Vec<_>>>()?;
        let bad_client = |reason: String| Error::BadUrl { url: urls.join(","), reason };
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_max_idle_per_host(64)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .user_agent(concat!("circular-blockfs/", env!("CARGO_PKG_VERSION")));
        let bad_ca =
            |reason: String| Error::Invalid { what: "the CA certificates (--ca, circular.ca=)".into(), reason };
        for cert in extra_roots(network.ca_file.as_deref()).map_err(bad_ca)? {
            builder = builder.add_root_certificate(cert);
        }
        if let Some(proxy) = &network.proxy {
            builder = builder.proxy(parse_proxy(proxy)?);
        }
        let client = builder.build().map_err(|e| bad_client(format!("cannot start the HTTP client: {e}")))?;
        let status = urls.iter().map(|u| SourceStatus { url: u.clone(), ..SourceStatus::default() }).collect();
        Ok(Sources {
            bases,
            client,
            deadline,
            preferred: AtomicUsize::new(0),
            online: AtomicBool::new(false),
            status: Mutex::new(status),
            bad_copies: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            hedged: AtomicU64::new(0),
            failovers: AtomicU64::new(0),
            recent_timeouts: Mutex::new(std::collections::HashMap::new()),
            proxy: network.proxy.clone().or_else(proxy_from_env).map(|p| without_password(&p)),
        })
    }

    /// How many sources there are.
    pub fn len(&self) -> usize {
        self.bases.len()
    }

    /// True when no source was given (an offline mount).
    pub fn is_empty(&self) -> bool {
        self.bases.is_empty()
    }

    /// True when the last request to any source got an answer.
    pub fn online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    /// Each source with what it last answered, for `status.json`.
    pub fn status(&self) -> Vec<SourceStatus> {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Answers that failed verification (bad copies) since the start.
    pub fn bad_copies(&self) -> u64 {
        self.bad_copies.load(Ordering::Relaxed)
    }

    /// How hard the fetches since the start had to work, for `status.json`.
    pub fn fetch_counts(&self) -> FetchCounts {
        FetchCounts {
            retries: self.retries.load(Ordering::Relaxed),
            hedged: self.hedged.load(Ordering::Relaxed),
            failovers: self.failovers.load(Ordering::Relaxed),
        }
    }

    /// Fetches `path` (relative to each base) and returns what `verify` makes of
    /// the first copy it accepts. Sources that do not answer are retried with
    /// backoff until the deadline; when every source answered and none had a good
    /// copy, it fails at once. `max_bytes` bounds what is read from a source.
    pub fn fetch<T>(&self, path: &str, max_bytes: u64, verify: impl Fn(Vec<u8>) -> Result<T>) -> Result<T> {
        self.fetch_until(path, max_bytes, self.deadline, verify)
    }

    /// As [`Sources::fetch`], with its own deadline. Every wait is bounded by
    /// `deadline`: each attempt runs on a helper thread and is abandoned when the
    /// deadline comes; a source that has not answered after [`HEDGE_AFTER`] has
    /// the next source asked too, and the first copy `verify` accepts wins.
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
        if let Some(last) = self.recent_timeout(path) {
            return Err(Error::Unreachable { path: path.to_string(), deadline_secs: deadline.as_secs(), last });
        }
        let started = Instant::now();
        let end = started + deadline;
        let mut backoff = FIRST_BACKOFF;
        let n = self.bases.len();
        let mut last_round: Vec<String> = Vec::new();
        loop {
            let mut problems = Vec::new();
            let mut any_transient = false;
            let mut all_not_found = true;
            let first = self.preferred.load(Ordering::Relaxed);
            let (tx, rx) = mpsc::channel();
            let mut started_count = 0;
            let mut answered = 0;
            let mut next_hedge = Instant::now();
            while answered < n {
                let now = Instant::now();
                if started_count < n && (started_count == answered || now >= next_hedge) {
                    let i = (first + started_count) % n;
                    if started_count > answered {
                        self.hedged.fetch_add(1, Ordering::Relaxed);
                    }
                    self.spawn_attempt(i, path, max_bytes, end, tx.clone());
                    started_count += 1;
                    next_hedge = now + HEDGE_AFTER;
                    continue;
                }
                let wake = if started_count < n { next_hedge.min(end) } else { end };
                let Some(left) = wake.checked_duration_since(now).filter(|d| !d.is_zero()) else {
                    if now >= end {
                        break;
                    }
                    continue;
                };
                let (i, got) = match rx.recv_timeout(left) {
                    Ok(got) => got,
                    Err(mpsc::RecvTimeoutError::Timeout) => continue,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                };
                answered += 1;
                match got {
                    Ok(bytes) => {
                        self.mark(i, None);
                        all_not_found = false;
                        match verify(bytes) {
                            Ok(value) => {
                                if i != first {
                                    self.failovers.fetch_add(1, Ordering::Relaxed);
                                }
                                self.preferred.store(i, Ordering::Relaxed);
                                return Ok(value);
                            }
                            Err(e) => {
                                self.bad_copies.fetch_add(1, Ordering::Relaxed);
                                problems.push(format!("{} sent a bad copy: {e}", self.label(i)));
                            }
                        }
                    }
                    Err(Miss::NotFound(why)) => {
                        self.mark(i, None);
                        problems.push(format!("{}: {why}", self.label(i)));
                    }
                    Err(Miss::Bad(why)) => {
                        self.mark(i, None);
                        all_not_found = false;
                        self.bad_copies.fetch_add(1, Ordering::Relaxed);
                        problems.push(format!("{} sent a bad copy: {why}", self.label(i)));
                    }
                    Err(Miss::Transient(why)) => {
                        self.mark(i, Some(why.clone()));
                        any_transient = true;
                        all_not_found = false;
                        problems.push(format!("{}: {why}", self.label(i)));
                    }
                }
            }
            if answered < n {
                // The deadline came with attempts still waiting: they are abandoned.
                let waiting = n - answered;
                problems.push(format!("{waiting} source(s) still had not answered (stalled or too slow)"));
                any_transient = true;
                all_not_found = false;
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
                // A round cut short by the deadline says less than the one before it.
                if answered == 0 && !last_round.is_empty() {
                    problems = std::mem::take(&mut last_round);
                }
                if let Ok(mut recent) = self.recent_timeouts.lock() {
                    recent.retain(|_, (at, _)| at.elapsed() < TIMEOUT_MEMORY);
                    recent.insert(path.to_string(), (Instant::now(), problems.join("; ")));
                }
                return Err(Error::Unreachable {
                    path: path.to_string(),
                    deadline_secs: deadline.as_secs(),
                    last: problems.join("; "),
                });
            }
            last_round = problems;
            self.retries.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(backoff.min(deadline - elapsed));
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// What the last fetch of `path` said, if it ran into the deadline moments ago.
    fn recent_timeout(&self, path: &str) -> Option<String> {
        let recent = self.recent_timeouts.lock().ok()?;
        let (at, last) = recent.get(path)?;
        (at.elapsed() < TIMEOUT_MEMORY)
            .then(|| format!("{last} (it ran into the deadline {} ms ago)", at.elapsed().as_millis()))
    }

    /// One bounded attempt at source `i` only: the bytes of `path`, or why not.
    /// It returns by `end` whatever the source does.
    pub(crate) fn fetch_one(
        &self,
        i: usize,
        path: &str,
        max_bytes: u64,
        end: Instant,
    ) -> std::result::Result<Vec<u8>, Miss> {
        let (tx, rx) = mpsc::channel();
        self.spawn_attempt(i, path, max_bytes, end, tx);
        let left = end.saturating_duration_since(Instant::now());
        let got = match rx.recv_timeout(left) {
            Ok((_, got)) => got,
            Err(_) => Err(Miss::Transient(format!("no whole answer for {path} in time (stalled or too slow)"))),
        };
        match &got {
            Err(Miss::Transient(why)) => self.mark(i, Some(why.clone())),
            _ => self.mark(i, None),
        }
        got
    }

    /// Starts one attempt on a helper thread; its answer goes to `tx` as `(i, result)`.
    /// The thread ends by `end` on its own; a late answer is dropped.
    fn spawn_attempt(
        &self,
        i: usize,
        path: &str,
        max_bytes: u64,
        end: Instant,
        tx: mpsc::Sender<(usize, std::result::Result<Vec<u8>, Miss>)>,
    ) {
        let base = self.bases[i].clone();
        let client = self.client.clone();
        let path = path.to_string();
        let proxy = self.proxy.clone().filter(|_| matches!(base, Base::Http(_)));
        let spawned = std::thread::Builder::new().name("blockfs-get".into()).spawn(move || {
            let got = match (get(&client, &base, &path, max_bytes, end), proxy) {
                (Err(Miss::Transient(why)), Some(proxy)) => {
                    Err(Miss::Transient(format!("{why} (through the proxy {proxy})")))
                }
                (got, _) => got,
            };
            let _ = tx.send((i, got));
        });
        if let Err(e) = spawned {
            tx_send_err(e);
        }
    }

    /// A short name for source `i`, for messages.
    pub(crate) fn label_of(&self, i: usize) -> String {
        self.label(i)
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
}

/// A fetch thread could not start (out of threads): the attempt counts as
/// unanswered, and the deadline ends the wait.
fn tx_send_err(e: std::io::Error) {
    log::warn!("cannot start a fetch thread: {e}");
}

/// One attempt at one source, bounded by `end` (the attempt's request times
/// out then) and by the stall and minimum-progress rules on the body.
fn get(
    client: &reqwest::blocking::Client,
    base: &Base,
    path: &str,
    max_bytes: u64,
    end: Instant,
) -> std::result::Result<Vec<u8>, Miss> {
    match base {
        Base::File(dir) => {
            let file = dir.join(path);
            match std::fs::File::open(&file) {
                Ok(f) => read_bounded(f, max_bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Miss::NotFound("not found".into())),
                Err(e) => Err(Miss::Transient(format!("{}: {e}", file.display()))),
            }
        }
        Base::Http(base) => {
            let url = base.join(path).map_err(|e| Miss::NotFound(format!("bad path {path:?}: {e}")))?;
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Miss::Transient("deadline reached".into()));
            }
            let response = client.get(url).timeout(left.min(REQUEST_TIMEOUT)).send().map_err(|e| {
                if e.is_redirect() {
                    Miss::NotFound(format!("redirects not followed ({}): a redirect loop?", describe_http_error(&e)))
                } else {
                    Miss::Transient(describe_http_error(&e))
                }
            })?;
            let status = response.status();
            if status.is_success() {
                read_progressing(response, max_bytes, end)
            } else if status.as_u16() == 407 {
                Err(Miss::Transient(
                    "the proxy asks for a login (407 Proxy Authentication Required): give it in the proxy URL, \
                     http://user:password@host:port"
                        .into(),
                ))
            } else if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408 {
                Err(Miss::Transient(format!("server answered {status}")))
            } else {
                // 404, 410, and 403 (S3 answers 403 for a missing object without ListBucket).
                Err(Miss::NotFound(format!("server answered {status}")))
            }
        }
    }
}

/// Reads a body of at most `max_bytes`, giving up at `end` or when, after
/// [`STALL_TIMEOUT`], it comes slower than
/// [`MIN_BYTES_PER_SEC`] (a drip).
fn read_progressing(mut reader: impl Read, max_bytes: u64, end: Instant) -> std::result::Result<Vec<u8>, Miss> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = reader.read(&mut buf).map_err(|e| {
            Miss::Transient(if Instant::now() >= end {
                "deadline reached during the transfer".to_string()
            } else {
                format!("transfer failed: {e}")
            })
        })?;
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        if out.len() as u64 > max_bytes {
            return Err(Miss::Bad(format!("answer is larger than the {max_bytes} bytes allowed")));
        }
        let now = Instant::now();
        if now >= end {
            return Err(Miss::Transient(format!("deadline reached after {} bytes", out.len())));
        }
        let secs = now.duration_since(started).as_secs_f64();
        if secs > STALL_TIMEOUT.as_secs_f64() && (out.len() as f64) < secs * MIN_BYTES_PER_SEC as f64 {
            return Err(Miss::Transient(format!(
                "too slow: {} bytes in {secs:.0} s (a stalled or dripping server)",
                out.len()
            )));
        }
    }
}

/// Extra trust anchors: `--ca`, then `$SSL_CERT_FILE` and the files in
/// `$SSL_CERT_DIR`, as OpenSSL-based tools read them.
fn extra_roots(ca: Option<&Path>) -> std::result::Result<Vec<reqwest::Certificate>, String> {
    let mut files: Vec<(PathBuf, bool)> = Vec::new();
    if let Some(ca) = ca {
        files.push((ca.to_path_buf(), true));
    }
    if let Some(f) = std::env::var_os("SSL_CERT_FILE") {
        files.push((PathBuf::from(f), false));
    }
    if let Some(d) = std::env::var_os("SSL_CERT_DIR") {
        for dir in std::env::split_paths(&d) {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                let mut names: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                names.sort();
                files.extend(names.into_iter().filter(|p| p.is_file()).map(|p| (p, false)));
            }
        }
    }
    let mut certs = Vec::new();
    for (file, required) in files {
        let pem = match std::fs::read(&file) {
            Ok(pem) => pem,
            Err(e) if required => return Err(format!("cannot read the CA file {}: {e}", file.display())),
            Err(_) => continue,
        };
        match reqwest::Certificate::from_pem_bundle(&pem) {
            Ok(found) if !found.is_empty() => certs.extend(found),
            _ if required => {
                return Err(format!(
                    "{} holds no PEM certificate (give the CA's certificate, BEGIN CERTIFICATE)",
                    file.display()
                ))
            }
            _ => {}
        }
    }
    Ok(certs)
}

/// Reads at most `max_bytes`; a longer answer is an error, not a truncation.
fn read_bounded(reader: impl Read, max_bytes: u64) -> std::result::Result<Vec<u8>, Miss> {
    let mut out = Vec::new();
    reader.take(max_bytes + 1).read_to_end(&mut out).map_err(|e| Miss::Transient(format!("transfer failed: {e}")))?;
    if out.len() as u64 > max_bytes {
        return Err(Miss::Bad(format!("answer is larger than the {max_bytes} bytes allowed")));
    }
    Ok(out)
}

/// What went wrong with one request, in words that say what to do. A TLS
/// failure gets its own sentence (unknown CA, expired, wrong name; see
/// [`tls_advice`]), which names no network cable: the network worked.
fn describe_http_error(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    if let Some(tls) = find_tls_error(e) {
        return tls_advice(tls, &time::OffsetDateTime::now_utc());
    }
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Starts every TLS problem's text: [`advice_for_unreachable`] knows by it
/// that the network itself answered.
pub(crate) const TLS_MARK: &str = "TLS: ";

/// The rustls error in a request error's chain. An `io::Error` hides the
/// error it wraps from `source()` (it returns the inner error's source), so
/// each link is also looked into with `get_ref`.
fn find_tls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut link: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(l) = link {
        if let Some(tls) = l.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = l.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
                return Some(tls);
            }
            if let Some(tls) = find_tls_error(inner) {
                return Some(tls);
            }
        }
        link = l.source();
    }
    None
}

/// A TLS failure as a person can act on it: who is wrong (the server's
/// certificate, this machine's trust, its clock) and what to do. `now` is the
/// system clock, for an expiry check that rustls did without saying its time.
pub(crate) fn tls_advice(e: &rustls::Error, now: &time::OffsetDateTime) -> String {
    use rustls::CertificateError as C;
    let when = |t: &rustls::pki_types::UnixTime| {
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(t.as_secs()).unwrap_or(i64::MAX))
            .map(circular_format::catalog::rfc3339)
            .unwrap_or_else(|_| format!("{} s after 1970", t.as_secs()))
    };
    let clock = circular_format::catalog::rfc3339(*now);
    let text = match e {
        rustls::Error::InvalidCertificate(cert) => match cert {
            C::UnknownIssuer => "the server's certificate is signed by a CA this machine does not trust. If your \
                                 organisation uses its own CA, pass --ca FILE (blockfs, circular) or circular.ca=FILE \
                                 (the appliance) with that CA's certificate"
                .to_string(),
            C::ExpiredContext { time, not_after } => format!(
                "the server's certificate expired at {}, and this machine's clock says {}. If the clock is right, \
                 the server's certificate must be renewed (tell its administrator), else set the clock",
                when(not_after),
                when(time)
            ),
            C::Expired => format!(
                "the server's certificate has expired by this machine's clock ({clock}). If the clock is right, \
                 the server's certificate must be renewed (tell its administrator), else set the clock"
            ),
            C::NotValidYetContext { time, not_before } => format!(
                "the server's certificate is valid only from {}, and this machine's clock says {}: the clock is \
                 probably behind (a flat clock battery?), set it",
                when(not_before),
                when(time)
            ),
            C::NotValidYet => format!(
                "the server's certificate is not valid yet by this machine's clock ({clock}): the clock is probably \
                 behind (a flat clock battery?), set it"
            ),
            C::NotValidForNameContext { expected, presented } => format!(
                "the certificate is for {}, not {}: use the name the certificate is for in the store's URL, or \
                 have the server's certificate made for {}",
                if presented.is_empty() { "no name at all".to_string() } else { presented_names(presented) },
                expected.to_str(),
                expected.to_str()
            ),
            C::NotValidForName => "the server's certificate is not for the name in the store's URL: use the name \
                                   the certificate is for, or have the certificate made for this name"
                .to_string(),
            C::Revoked => "the server's certificate has been revoked: tell the server's administrator".to_string(),
            other => format!("the server's certificate is refused ({other:?}): tell the server's administrator"),
        },
        other => format!(
            "the TLS handshake with the server failed ({other}): is it really an https:// server at that address? \
             (Check the URL's scheme and port, or whether a proxy or firewall is in the way.)"
        ),
    };
    format!("{TLS_MARK}{text}")
}

/// The names a certificate is for, as rustls lists them (`DnsName("a.example")`,
/// `IpAddress(…)`), in plain words: `a.example, 10.0.0.1`.
fn presented_names(presented: &[String]) -> String {
    let plain = |p: &String| {
        let inner = p.split_once('(').map_or(p.as_str(), |(_, rest)| rest.trim_end_matches(')'));
        inner.trim_matches('"').to_string()
    };
    presented.iter().map(plain).collect::<Vec<_>>().join(", ")
}

/// True when every problem in an [`Error::Unreachable`]'s `last` is a TLS
/// refusal ([`tls_advice`]): each source was reached and refused its certificate,
/// so the kind is [`crate::ErrorKind::Tls`], not "no network".
pub(crate) fn only_tls_refusals(last: &str) -> bool {
    !last.is_empty() && last.split("; ").all(|p| p.contains(TLS_MARK))
}

/// What [`Error::Unreachable`] tells a person to do after the reasons: the
/// network cable only when some source failed to connect at all (no route,
/// refused, DNS, timed out). When every source answered something (a TLS
/// refusal, a proxy's or a server's status), the reasons already say what to do.
/// (Problems are joined with "; ", so the sentences of [`tls_advice`] use none.)
pub(crate) fn advice_for_unreachable(last: &str) -> &'static str {
    let answered = |p: &str| p.contains(TLS_MARK) || p.contains("server answered") || p.contains("the proxy ");
    if !last.is_empty() && last.split("; ").all(answered) {
        ""
    } else {
        ". Check the network cable and the server"
    }
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
        "file" => url.to_file_path().map(Base::File).map_err(|()| match url.host_str() {
            // `file://tmp/store` names the host "tmp", not the directory /tmp/store.
            Some(host) if !host.is_empty() => bad(&format!(
                "a file:// URL names a local directory and takes three slashes: file:///{host}{}",
                url.path().trim_end_matches('/')
            )),
            _ => bad("not a local path"),
        }),
        other => Err(bad(&format!("scheme {other:?} is not supported (use https://, http:// or file://)"))),
    }
}

/// A real TCP server on loopback whose every answer `answer` writes (for tests
/// that need a source to misbehave for real: stall, drip, redirect, HTML).
#[cfg(test)]
pub(crate) mod test_server {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};

    /// Starts the server; returns its base URL. It lives until the test process ends.
    pub fn serve(answer: fn(&str, &mut TcpStream)) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut stream = stream;
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
                        loop {
                            let mut h = String::new();
                            if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                                break;
                            }
                        }
                        answer(&path, &mut stream);
                        let _ = stream.flush();
                    }
                });
            }
        });
        url
    }

    /// Writes a whole answer.
    pub fn reply(stream: &mut TcpStream, status: &str, extra: &str, body: &[u8]) {
        let head = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n{extra}\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    }
}

#[cfg(test)]
mod tests {
    use super::test_server::{reply, serve};
    use super::*;
    use std::io::Write;

    #[test]
    fn urls_are_checked() {
        assert!(Sources::new(&["https://example.org/store".into()], Duration::ZERO).is_ok());
        for bad in ["ftp://example.org/", "example.org/store", "https://", "", "mailto:a@b"] {
            let err = Sources::new(&[bad.into()], Duration::ZERO).err().unwrap();
            assert!(matches!(err, Error::BadUrl { .. }), "{bad}: {err}");
        }
        // A bad CA file or proxy is named as such, not as a bad store URL.
        let url = ["http://127.0.0.1:9/".to_string()];
        let missing_ca = Network { ca_file: Some("/nonexistent/ca.pem".into()), proxy: None };
        let err = Sources::with_network(&url, Duration::ZERO, &missing_ca).err().unwrap().to_string();
        assert!(err.contains("--ca") && err.contains("/nonexistent/ca.pem") && !err.contains("source URL"), "{err}");
        let bad_proxy = Network { ca_file: None, proxy: Some("squid:3128".into()) };
        let err = Sources::with_network(&url, Duration::ZERO, &bad_proxy).err().unwrap().to_string();
        assert!(err.contains("the proxy \"squid:3128\"") && err.contains("http://host:port"), "{err}");
        assert!(!err.contains("source URL"), "{err}");
        // Two slashes make "srv" a host: the error gives the URL meant.
        let err = Sources::new(&["file://srv/store/".into()], Duration::ZERO).err().unwrap().to_string();
        assert!(err.contains("file:///srv/store"), "{err}");
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
        assert_eq!(sources.fetch_counts(), FetchCounts { retries: 0, hedged: 0, failovers: 1 });
        // A good answer means online; status.json names each source by the URL it was given.
        assert!(sources.online());
        let status = sources.status();
        assert_eq!(status.iter().map(|s| s.url.as_str()).collect::<Vec<_>>(), urls);
        assert_eq!(status[1].reachable, Some(true));
        // Every source sends a bad copy: each one counts, and the fetch fails at once.
        std::fs::write(a.path().join("z"), b"bad").unwrap();
        std::fs::write(b.path().join("z"), b"bad").unwrap();
        assert!(sources.fetch("z", 100, verify).is_err());
        assert_eq!(sources.bad_copies(), 3);
        let err = sources.fetch("missing", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        let err = sources.fetch("x", 2, Ok).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
    }

    /// A source that says "not here" after twice the hedge delay, counting its requests,
    /// and one that has the file but answers later still.
    static SLOW_MISSING_ASKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn slow_missing(_path: &str, stream: &mut std::net::TcpStream) {
        SLOW_MISSING_ASKED.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(HEDGE_AFTER * 2);
        reply(stream, "404 Not Found", "", b"");
    }
    fn slower_good(_path: &str, stream: &mut std::net::TcpStream) {
        std::thread::sleep(HEDGE_AFTER * 3);
        reply(stream, "200 OK", "", b"ok");
    }

    #[test]
    fn each_source_is_asked_once_per_round_however_slow() {
        // The first source is slow, so the second is asked too (a hedge); the first then
        // says "not here" while the second is still on its way. Nobody is asked again:
        // the second's answer is waited for.
        let sources = Sources::new(&[serve(slow_missing), serve(slower_good)], Duration::from_secs(20)).unwrap();
        assert_eq!(sources.fetch("x", 100, Ok).unwrap(), b"ok");
        assert_eq!(SLOW_MISSING_ASKED.load(Ordering::SeqCst), 1, "the slow source was asked again");
        assert_eq!(sources.fetch_counts().hedged, 1);
    }

    #[test]
    fn unreachable_http_waits_until_the_deadline() {
        // Port 9 on loopback: nothing listens, the connection is refused at once.
        let sources = Sources::new(&["http://127.0.0.1:9/".into()], Duration::from_millis(500)).unwrap();
        let started = Instant::now();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::Unreachable { .. }), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(500));
        // Refused at once, asked again after 100, 200 ms...: at least two more rounds.
        assert!(sources.fetch_counts().retries >= 2, "{:?}", sources.fetch_counts());
        assert!(!sources.online());
        assert_eq!(sources.status()[0].reachable, Some(false));
    }

    /// Sends the headers of a 1000-byte body, then one byte every 2 s.
    fn drip(_path: &str, stream: &mut std::net::TcpStream) {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        for _ in 0..1000 {
            if stream.write_all(b"x").and_then(|()| stream.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    /// Sends headers and half the body, then nothing for a long time.
    fn stall(_path: &str, stream: &mut std::net::TcpStream) {
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
        let _ = stream.write_all(&[b'x'; 500]);
        let _ = stream.flush();
        std::thread::sleep(Duration::from_secs(120));
    }

    fn good_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("x"), b"good").unwrap();
        let url = format!("file://{}", dir.path().display());
        (dir, url)
    }

    #[test]
    fn a_dripping_or_stalled_source_loses_to_the_next_mirror() {
        for bad in [serve(drip), serve(stall)] {
            let (_dir, good) = good_dir();
            let sources = Sources::new(&[bad, good], Duration::from_secs(30)).unwrap();
            let started = Instant::now();
            assert_eq!(sources.fetch("x", 5000, Ok).unwrap(), b"good");
            // The hedge: the next mirror is asked once the first has kept silent for
            // 1.5 s (FORMAT.md), not before (that would double every request) and not
            // only at the deadline. A slow machine can only make the read later, so the
            // lower bound never fails falsely.
            let took = started.elapsed();
            assert!(took >= Duration::from_millis(1500), "the next mirror was asked before the hedge delay: {took:?}");
            assert!(took < Duration::from_secs(5), "took {took:?}");
            // The good mirror was asked by the hedge, and won.
            assert_eq!(sources.fetch_counts(), FetchCounts { retries: 0, hedged: 1, failovers: 1 });
        }
    }

    #[test]
    fn a_lone_dripping_or_stalled_source_fails_by_the_deadline() {
        for bad in [serve(drip), serve(stall)] {
            let sources = Sources::new(&[bad], Duration::from_secs(2)).unwrap();
            let started = Instant::now();
            let err = sources.fetch("x", 5000, Ok).unwrap_err();
            assert!(started.elapsed() < Duration::from_secs(4), "took {:?}: {err}", started.elapsed());
            assert!(matches!(err, Error::Unreachable { .. }), "{err}");
            // Asked again at once (the kernel's retry), it fails at once.
            let again = Instant::now();
            assert!(sources.fetch("x", 5000, Ok).is_err());
            assert!(again.elapsed() < Duration::from_millis(500), "took {:?}", again.elapsed());
        }
    }

    #[test]
    fn redirects_are_followed_a_loop_fails_at_once_and_403_means_missing() {
        fn to_self(path: &str, stream: &mut std::net::TcpStream) {
            // Relative Location: the same path again, for ever.
            reply(stream, "302 Found", &format!("Location: {path}\r\n"), b"");
        }
        fn forbidden(_path: &str, stream: &mut std::net::TcpStream) {
            reply(
                stream,
                "403 Forbidden",
                "Content-Type: application/xml\r\n",
                b"<Error><Code>AccessDenied</Code></Error>",
            );
        }
        let started = Instant::now();
        let sources = Sources::new(&[serve(to_self)], Duration::from_secs(20)).unwrap();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("redirect"), "{err}");
        let sources = Sources::new(&[serve(forbidden)], Duration::from_secs(20)).unwrap();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }) && err.to_string().contains("403"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
        // 403 on the first mirror, the file on the second.
        let (_dir, good) = good_dir();
        let sources = Sources::new(&[serve(forbidden), good], Duration::from_secs(20)).unwrap();
        assert_eq!(sources.fetch("x", 100, Ok).unwrap(), b"good");
    }

    /// The host a test's first server redirects to (fn pointers cannot capture it).
    static REDIRECT_TARGET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

    #[test]
    fn redirects_to_another_host_are_followed_five_at_most_and_410_means_missing() {
        // The second host: /hopN/x sends on to /hopN-1/x, and /hop0/x is the file.
        fn hops(path: &str, stream: &mut std::net::TcpStream) {
            let n: u32 = path.trim_start_matches("/hop").split('/').next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if n == 0 {
                reply(stream, "200 OK", "", b"good");
            } else {
                reply(stream, "302 Found", &format!("Location: /hop{}/x\r\n", n - 1), b"");
            }
        }
        // The first host: one redirect to the second, then 4 hops there (5 in all) under
        // /five/, 5 hops (6 in all) under /six/.
        fn to_other_host(path: &str, stream: &mut std::net::TcpStream) {
            let hops = if path.starts_with("/five/") { 4 } else { 5 };
            let target = REDIRECT_TARGET.get().map(String::as_str).unwrap_or("");
            reply(stream, "301 Moved Permanently", &format!("Location: {target}hop{hops}/x\r\n"), b"");
        }
        fn gone(_path: &str, stream: &mut std::net::TcpStream) {
            reply(stream, "410 Gone", "", b"");
        }
        REDIRECT_TARGET.get_or_init(|| serve(hops));
        let first = serve(to_other_host);
        let sources = Sources::new(&[format!("{first}five/")], Duration::from_secs(20)).unwrap();
        assert_eq!(sources.fetch("x", 100, Ok).unwrap(), b"good", "5 redirects, the first to another host");
        let sources = Sources::new(&[format!("{first}six/")], Duration::from_secs(20)).unwrap();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }) && err.to_string().contains("redirect"), "{err}");
        // 410 means "not on this source": the next mirror is asked at once.
        let started = Instant::now();
        let sources = Sources::new(&[serve(gone)], Duration::from_secs(20)).unwrap();
        let err = sources.fetch("x", 100, Ok).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }) && err.to_string().contains("410"), "{err}");
        let (_dir, good) = good_dir();
        let sources = Sources::new(&[serve(gone), good], Duration::from_secs(20)).unwrap();
        assert_eq!(sources.fetch("x", 100, Ok).unwrap(), b"good");
        assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    }

    #[test]
    fn only_a_failure_to_connect_sends_people_to_the_network_cable() {
        let now = time::macros::datetime!(2026-11-30 0:00 UTC);
        let unknown = tls_advice(&rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer), &now);
        let expired = tls_advice(&rustls::Error::InvalidCertificate(rustls::CertificateError::Expired), &now);
        assert!(expired.contains("2026-11-30T00:00:00Z") && expired.contains("clock"), "{expired}");
        let tls = format!("https://a.example/: {unknown}; https://b.example/: {expired}");
        assert_eq!(advice_for_unreachable(&tls), "", "{tls}");
        assert_eq!(advice_for_unreachable("http://a/: server answered 503 Service Unavailable"), "");
        let mixed = format!("https://a.example/: {unknown}; http://b.example/: tcp connect error: Connection refused");
        assert!(advice_for_unreachable(&mixed).contains("network cable"));
        assert!(advice_for_unreachable("2 source(s) still had not answered (stalled or too slow)").contains("cable"));
        assert!(advice_for_unreachable("").contains("cable"));
        let names = vec!["DnsName(\"store.example\")".to_string(), "plain".to_string()];
        assert_eq!(presented_names(&names), "store.example, plain");
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        let network = Network { ca_file: Some(bad), proxy: None };
        let err = Sources::with_network(&["https://example.org/".into()], Duration::ZERO, &network).err().unwrap();
        assert!(err.to_string().contains("no PEM certificate"), "{err}");
    }

    #[test]
    fn a_proxy_password_never_reaches_a_message() {
        assert_eq!(without_password("http://ann:secret@proxy:3128/"), "http://ann:***@proxy:3128/");
        assert_eq!(without_password("http://proxy:3128"), "http://proxy:3128");
        let network = Network { ca_file: None, proxy: Some("ftp://proxy:21".into()) };
        let err = Sources::with_network(&["http://example.org/".into()], Duration::ZERO, &network).err().unwrap();
        assert!(err.to_string().contains("http://host:port"), "{err}");
    }
}
