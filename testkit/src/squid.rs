//! squid on loopback, a caching HTTP proxy, for tests of proxied stores.
// Dev-only fixture: a failure to set up is the test's failure, said with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command};

/// squid listening on a free port of 127.0.0.1, caching in memory, and reaching
/// origins from 127.0.0.2: a server that allows only 127.0.0.2 can be reached
/// through this proxy and by nothing else. Stopped on drop.
pub struct Squid {
    child: Option<Child>,
    /// The port squid listens on.
    pub port: u16,
    run: tempfile::TempDir,
}

/// The address squid's requests to origins come from.
pub const SQUID_OUTGOING: &str = "127.0.0.2";

impl Squid {
    /// Starts squid and waits until it accepts connections.
    pub fn start() -> Squid {
        Squid::start_conf(|_| "http_access allow client".to_string())
    }

    /// Starts squid asking for a login (Basic, squid's `basic_ncsa_auth` and an
    /// `htpasswd`-style file made with `openssl passwd -apr1`): only `user` with
    /// `password` gets through; anyone else is answered 407.
    pub fn start_with_login(user: &str, password: &str) -> Squid {
        let hash = Command::new("openssl")
            .args(["passwd", "-apr1", password])
            .output()
            .expect("openssl is installed (make deps)");
        assert!(hash.status.success(), "openssl passwd: {}", String::from_utf8_lossy(&hash.stderr));
        let line = format!("{user}:{}", String::from_utf8_lossy(&hash.stdout).trim());
        Squid::start_conf(move |dir| {
            let passwd = dir.join("passwd");
            std::fs::write(&passwd, format!("{line}\n")).unwrap();
            std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o644)).unwrap();
            format!(
                "auth_param basic program /usr/lib/squid/basic_ncsa_auth {}
auth_param basic realm circular-test
acl login proxy_auth REQUIRED
http_access allow client login",
                passwd.display()
            )
        })
    }

    /// squid with the access rules `access` returns (given the run directory).
    fn start_conf(access: impl FnOnce(&std::path::Path) -> String) -> Squid {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let run = tempfile::tempdir().unwrap();
        // squid started as root drops to its own user, which must write here.
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let access = access(run.path());
        let dir = run.path().display();
        let conf = format!(
            "http_port 127.0.0.1:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log squid
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
acl client src 127.0.0.1
{access}
http_access deny all
tcp_outgoing_address {SQUID_OUTGOING}
coredump_dir {dir}
shutdown_lifetime 0 seconds
netdb_filename none
"
        );
        std::fs::write(run.path().join("squid.conf"), conf).unwrap();
        let child = Command::new("squid")
            .args(["-N", "-f"])
            .arg(run.path().join("squid.conf"))
            .spawn()
            .expect("squid is installed (make deps)");
        let squid = Squid { child: Some(child), port, run };
        crate::wait_for("squid to listen", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        squid
    }

    /// The proxy URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Lines of squid's access log (squid's native format: the result code, such as
    /// `TCP_MISS/200` or `TCP_MEM_HIT/200`, is the fourth field).
    pub fn access_log(&self) -> Vec<String> {
        self.log("access.log").lines().map(str::to_string).collect()
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.run.path().join(name)).unwrap_or_default()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
