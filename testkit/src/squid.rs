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
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let run = tempfile::tempdir().unwrap();
        // squid started as root drops to its own user, which must write here.
        std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let dir = run.path().display();
        let conf = format!(
            "http_port 127.0.0.1:{port}
pid_filename {dir}/squid.pid
cache_log {dir}/cache.log
access_log stdio:{dir}/access.log squid
cache_mem 64 MB
maximum_object_size_in_memory 1 MB
acl client src 127.0.0.1
http_access allow client
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
