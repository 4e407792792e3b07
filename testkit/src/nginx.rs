//! nginx on loopback for tests that fetch over HTTP.
// Dev-only fixture: a failure to set up is the test's failure, said with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// nginx serving a directory on a free loopback port; stopped on drop.
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    run: tempfile::TempDir,
    root: PathBuf,
    /// Extra directives for the server block (for example a rate limit).
    extra: String,
    /// HTTPS with this certificate chain and key (PEM files), else plain HTTP.
    tls: Option<(PathBuf, PathBuf)>,
}

impl Nginx {
    pub fn start(root: &Path) -> Nginx {
        Nginx::start_with(root, "")
    }

    /// nginx with extra directives in its server block.
    pub fn start_with(root: &Path, extra: &str) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut nginx = Nginx {
            child: None,
            port,
            run: tempfile::tempdir().unwrap(),
            root: root.to_path_buf(),
            extra: extra.to_string(),
            tls: None,
        };
        nginx.restart();
        nginx
    }

    /// nginx over HTTPS only, with the server certificate `cert` (PEM, the
    /// chain as it is sent) and its key; [`Nginx::url`] is then `https://`.
    pub fn start_tls(root: &Path, cert: &Path, key: &Path) -> Nginx {
        let mut nginx = Nginx::start_with_tls(root, cert, key);
        nginx.restart();
        nginx
    }

    fn start_with_tls(root: &Path, cert: &Path, key: &Path) -> Nginx {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Nginx {
            child: None,
            port,
            run: tempfile::tempdir().unwrap(),
            root: root.to_path_buf(),
            extra: String::new(),
            tls: Some((cert.to_path_buf(), key.to_path_buf())),
        }
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Starts nginx (again) on the same port.
    pub fn restart(&mut self) {
        let run = self.run.path();
        let conf = format!(
            "daemon off; master_process off; worker_processes 1; pid {run}/nginx.pid; error_log {run}/error.log warn;
events {{ worker_connections 256; }}
http {{ access_log {run}/access.log; client_body_temp_path {run}/b; proxy_temp_path {run}/p;
fastcgi_temp_path {run}/f; uwsgi_temp_path {run}/u; scgi_temp_path {run}/s; default_type application/octet-stream;
server {{ listen 127.0.0.1:{port}{tls}; root {root}; {extra} }} }}",
            run = run.display(),
            port = self.port,
            root = self.root.display(),
            extra = self.extra,
            tls = match &self.tls {
                Some((cert, key)) =>
                    format!(" ssl; ssl_certificate {}; ssl_certificate_key {}", cert.display(), key.display()),
                None => String::new(),
            }
        );
        std::fs::write(run.join("nginx.conf"), conf).unwrap();
        let child = Command::new("nginx")
            .arg("-c")
            .arg(run.join("nginx.conf"))
            .arg("-p")
            .arg(run)
            .spawn()
            .expect("nginx is installed (make deps)");
        self.child = Some(child);
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nginx did not start: {}", std::fs::read_to_string(run.join("error.log")).unwrap_or_default());
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Paths nginx was asked for, in order.
    pub fn requested_paths(&self) -> Vec<String> {
        std::fs::read_to_string(self.run.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split('"').nth(1)?.split(' ').nth(1).map(str::to_string))
            .collect()
    }

    /// Requests nginx answered for paths containing `needle`.
    pub fn requests_for(&self, needle: &str) -> usize {
        std::fs::read_to_string(self.run.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}
