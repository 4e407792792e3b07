//! An `https://` store served by a real nginx over TLS, with certificates made by
//! `openssl` for each case: a private CA (refused without `--ca`, accepted with it),
//! an expired certificate, one not valid yet, and one for another name. Each refusal
//! must say what is wrong and what to do, and none may send the person to the
//! network cable: the network worked, the certificate did not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{random_bytes, Client, Nginx, TestStore};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (make deps)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA of our own, and server certificates it signs for any name and any
/// validity period (`openssl ca` takes explicit start and end dates, so a
/// certificate can be made already expired, or valid only from next year).
struct Ca {
    dir: PathBuf,
}

impl Ca {
    fn new(dir: &Path) -> Ca {
        std::fs::create_dir_all(dir.join("new")).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = own\n[own]\ndir = .\ndatabase = index.txt\nnew_certs_dir = new\nserial = serial\n\
             certificate = ca.pem\nprivate_key = ca.key\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             copy_extensions = copy\n[any]\ncommonName = supplied\n[server]\nbasicConstraints = CA:FALSE\n\
             extendedKeyUsage = serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                "/CN=Circular Test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Ca { dir: dir.to_path_buf() }
    }

    fn pem(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A server certificate for `san` (`IP:127.0.0.1`, `DNS:store.example`),
    /// valid from `start` to `end` (`YYYYMMDDHHMMSSZ`): (certificate, key).
    fn server(&self, name: &str, san: &str, start: &str, end: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem) = (format!("{name}.key"), format!("{name}.csr"), format!("{name}.pem"));
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
                "-addext",
                &format!("subjectAltName={san}"),
            ],
        );
        openssl(
            &self.dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-extensions",
                "server",
                "-startdate",
                start,
                "-enddate",
                end,
                "-in",
                &csr,
                "-out",
                &pem,
                "-notext",
            ],
        );
        (self.dir.join(pem), self.dir.join(key))
    }
}

const PAST: &str = "20200101000000Z";
const LAST_YEAR_END: &str = "20200201000000Z";
const FAR: &str = "20991231000000Z";

/// What a client with a fresh cache says when it opens the store at `url`. A
/// certificate refusal must also be of the `tls` kind (the menu's certificate
/// screen, not its no-network one); anything else must not be.
fn refusal(client: &Client, store: &TestStore, url: String, ca: Option<&Path>) -> String {
    let mut config = client.config(vec![url], store);
    config.store.deadline = Duration::from_secs(3);
    config.store.network.ca_file = ca.map(Path::to_path_buf);
    match blockfs::store::VerifiedStore::open(config.store) {
        Ok(_) => panic!("the store was accepted"),
        Err(e) => {
            let text = e.to_string();
            let tls = text.contains("certificate");
            assert_eq!(e.kind() == blockfs::ErrorKind::Tls, tls, "kind {} for: {text}", e.kind());
            text
        }
    }
}

fn no_cable(message: &str) {
    assert!(!message.contains("network cable"), "a TLS refusal must not blame the cable: {message}");
}

#[test]
fn tls_refusals_say_what_is_wrong_and_what_to_do() {
    if !testkit::need(&["nginx", "openssl", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = {
        let mut s = TestStore::new(&tmp.path().join("store"));
        s.add("deb", "2026-11-22", &random_bytes(1 << 20, 7), 65536);
        s
    };
    let ca = Ca::new(&tmp.path().join("ca"));
    let client = Client::new();

    // A private CA: refused by default, with the option to name; accepted with --ca.
    let (cert, key) = ca.server("good", "IP:127.0.0.1", PAST, FAR);
    let nginx = Nginx::start_tls(&store.dir, &cert, &key);
    let msg = refusal(&client, &store, nginx.url(), None);
    assert!(msg.contains("signed by a CA this machine does not trust"), "{msg}");
    assert!(msg.contains("--ca FILE") && msg.contains("circular.ca=FILE"), "{msg}");
    no_cable(&msg);
    {
        let mut config = client.config(vec![nginx.url()], &store);
        config.store.network.ca_file = Some(ca.pem());
        let _m = client.mount(config).unwrap();
        let bytes = std::fs::read(client.image("deb/2026-11-22")).unwrap();
        assert_eq!(bytes, random_bytes(1 << 20, 7), "with --ca the image reads right");
    }
    drop(nginx);

    // Expired: the date it ended and the clock that judged it.
    let (cert, key) = ca.server("expired", "IP:127.0.0.1", PAST, LAST_YEAR_END);
    let nginx = Nginx::start_tls(&store.dir, &cert, &key);
    let msg = refusal(&Client::new(), &store, nginx.url(), Some(&ca.pem()));
    assert!(msg.contains("expired at 2020-02-01T00:00:00Z"), "{msg}");
    assert!(msg.contains("clock"), "{msg}");
    no_cable(&msg);
    drop(nginx);

    // Not valid yet: the clock is the likely culprit.
    let (cert, key) = ca.server("future", "IP:127.0.0.1", "20990101000000Z", FAR);
    let nginx = Nginx::start_tls(&store.dir, &cert, &key);
    let msg = refusal(&Client::new(), &store, nginx.url(), Some(&ca.pem()));
    assert!(msg.contains("valid only from 2099-01-01T00:00:00Z") && msg.contains("set it"), "{msg}");
    no_cable(&msg);
    drop(nginx);

    // The wrong name: which name it is for, and which was asked.
    let (cert, key) = ca.server("other", "DNS:store.example", PAST, FAR);
    let nginx = Nginx::start_tls(&store.dir, &cert, &key);
    let msg = refusal(&Client::new(), &store, nginx.url(), Some(&ca.pem()));
    assert!(msg.contains("the certificate is for store.example, not 127.0.0.1"), "{msg}");
    no_cable(&msg);
    drop(nginx);

    // And a store that is really not there still points at the network.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let msg = refusal(&Client::new(), &store, format!("https://127.0.0.1:{port}/"), None);
    assert!(msg.contains("Check the network cable"), "{msg}");
}
