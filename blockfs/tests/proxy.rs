//! A store reached only through an HTTP proxy: a real squid on loopback, and nginx
//! that refuses every client but squid. The second client's cold reads are answered
//! from squid's cache, because block files are immutable and say so (the
//! `Cache-Control` headers docs/FORMAT.md recommends).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::{random_bytes, Client, Nginx, TestStore};
use testkit::{Squid, SQUID_OUTGOING};

/// The server block docs/FORMAT.md recommends (content-addressed files are immutable;
/// the catalog is revalidated), plus: only squid may ask.
fn nginx_behind_squid() -> String {
    format!(
        "allow {SQUID_OUTGOING}; deny all;
         location /blocks/ {{ add_header Cache-Control \"public, max-age=31536000, immutable\"; }}
         location /indexes/ {{ add_header Cache-Control \"public, max-age=31536000, immutable\"; }}
         location /profiles/ {{ add_header Cache-Control \"public, max-age=31536000, immutable\"; }}
         location / {{ add_header Cache-Control \"no-cache\"; }}"
    )
}

#[test]
fn a_store_behind_a_caching_proxy_serves_a_classroom_from_one_copy() {
    if !testkit::need(&["nginx", "squid", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(2 << 20, 31);
    store.add("deb", "2026-11-22", &image, 65536);
    let nginx = Nginx::start_with(&store.dir, &nginx_behind_squid());
    let squid = Squid::start();

    // Direct, the server refuses: the proxy is the only way in.
    let direct = Client::new();
    let err = direct.mount(direct.config(vec![nginx.url()], &store)).err().expect("nginx must refuse a direct client");
    assert!(err.to_string().contains("403"), "{err}");

    // The first client, through squid: the bytes are the image's.
    let first = Client::new();
    let mut config = first.config(vec![nginx.url()], &store);
    config.store.network.proxy = Some(squid.url());
    {
        let _m = first.mount(config).unwrap();
        assert_eq!(fs::read(first.image("deb/latest")).unwrap(), image);
    }
    let blocks_from_nginx = nginx.requests_for("/blocks/");
    assert!(blocks_from_nginx > 0, "the first client's blocks came through nginx");

    // A second client with a cold cache: every block from squid's cache, none from nginx.
    let second = Client::new();
    let mut config = second.config(vec![nginx.url()], &store);
    config.store.network.proxy = Some(squid.url());
    {
        let _m = second.mount(config).unwrap();
        assert_eq!(fs::read(second.image("deb/latest")).unwrap(), image);
    }
    assert_eq!(nginx.requests_for("/blocks/"), blocks_from_nginx, "the second client's blocks reached nginx");
    let log = squid.access_log();
    let block_hits = log.iter().filter(|l| l.contains("/blocks/") && l.contains("HIT/200")).count();
    assert!(block_hits > 0, "no block was a HIT in squid's log:\n{}", log.join("\n"));
}

#[test]
fn a_proxy_that_is_down_or_malformed_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let store = TestStore::new(&tmp.path().join("store"));
    let client = Client::new();
    let mut config = client.config(vec!["http://store.invalid/".into()], &store);
    config.store.network.proxy = Some("squid:3128".into());
    let err = client.mount(config).err().unwrap().to_string();
    assert!(err.contains("http://host:port"), "{err}");
    // Nothing listens there: the error is about the connection, after the deadline.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut config = client.config(vec!["http://store.invalid/".into()], &store);
    config.store.network.proxy = Some(format!("http://127.0.0.1:{port}"));
    config.store.deadline = std::time::Duration::from_secs(3);
    let err = client.mount(config).err().unwrap().to_string();
    assert!(err.contains("could not fetch") && err.to_lowercase().contains("proxy"), "{err}");
}

/// A school's proxy that wants a login: without one, or with a wrong one, the message says
/// how to give it (in the proxy URL) and never prints the password it was given; with the
/// right one the store is read through the proxy.
#[test]
fn a_proxy_that_asks_for_a_login_says_how_to_give_it_and_never_shows_the_password() {
    if !testkit::need(&["nginx", "squid", "fusermount3", "openssl"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(1 << 20, 32);
    store.add("deb", "2026-11-22", &image, 65536);
    let nginx = Nginx::start_with(&store.dir, &nginx_behind_squid());
    let squid = Squid::start_with_login("pupil", "s3cret-Pw");
    let with_login = |login: &str| format!("http://{login}@127.0.0.1:{}", squid.port);
    let refused = |proxy: String| {
        let client = Client::new();
        let mut config = client.config(vec![nginx.url()], &store);
        config.store.network.proxy = Some(proxy);
        config.store.deadline = std::time::Duration::from_secs(3);
        client.mount(config).err().expect("squid must refuse this login").to_string()
    };

    let err = refused(squid.url());
    assert!(err.contains("407") && err.contains("http://user:password@host:port"), "{err}");
    let err = refused(with_login("pupil:wrong-Pw"));
    assert!(err.contains("407") && err.contains("http://user:password@host:port"), "{err}");
    assert!(!err.contains("wrong-Pw"), "the password is shown: {err}");
    assert!(err.contains("pupil:***@127.0.0.1"), "the proxy is not named: {err}");

    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.store.network.proxy = Some(with_login("pupil:s3cret-Pw"));
    let _m = client.mount(config).unwrap();
    assert_eq!(fs::read(client.image("deb/latest")).unwrap(), image);
    let status = fs::read_to_string(client.mountpoint().join("status.json")).unwrap();
    assert!(!status.contains("s3cret-Pw"), "status.json shows the password: {status}");
    assert!(
        squid.access_log().iter().any(|l| l.contains("/blocks/") && l.contains(" pupil ")),
        "{:?}",
        squid.access_log()
    );
}

/// Without --proxy, `http_proxy` is used as curl and apt use it (here it is the only way to
/// the store), and a refusal names that proxy without its password. The variable is given
/// to a `blockfs` process of its own: the tests of this file run in parallel threads.
#[test]
fn the_environments_proxy_is_used_and_named_without_its_password() {
    if !testkit::need(&["nginx", "squid", "fusermount3", "openssl"]) {
        return;
    }
    use std::process::Command;
    let tmp = tempfile::tempdir().unwrap();
    let mut store = TestStore::new(&tmp.path().join("store"));
    let image = random_bytes(1 << 20, 33);
    store.add("deb", "2026-11-22", &image, 65536);
    let public = tmp.path().join("test.pub");
    circular_format::signing::write_keypair(&store.key, &tmp.path().join("test.key"), &public).unwrap();
    let nginx = Nginx::start_with(&store.dir, &nginx_behind_squid());
    let squid = Squid::start_with_login("pupil", "s3cret-Pw");
    let mountpoint = tmp.path().join("mnt");
    fs::create_dir(&mountpoint).unwrap();
    let blockfs = |proxy: String, cache: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_blockfs"));
        command
            .args(["mount", "--deadline", "3", "--cache"])
            .arg(tmp.path().join(cache))
            .arg("--public")
            .arg(&public)
            .arg(nginx.url())
            .arg(&mountpoint);
        for name in ["https_proxy", "HTTPS_PROXY", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"] {
            command.env_remove(name);
        }
        command.env("http_proxy", proxy);
        command
    };

    let out = blockfs(format!("http://pupil:wrong-Pw@127.0.0.1:{}", squid.port), "c1").output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("407") && stderr.contains(&format!("pupil:***@127.0.0.1:{}", squid.port)), "{stderr}");
    assert!(!stderr.contains("wrong-Pw"), "the password is shown: {stderr}");

    let mut child = blockfs(format!("http://pupil:s3cret-Pw@127.0.0.1:{}", squid.port), "c2").spawn().unwrap();
    let image_path = mountpoint.join("deb/latest.img");
    common::wait_for("the mount through the environment's proxy", || {
        assert!(child.try_wait().unwrap().is_none(), "blockfs ended before it mounted");
        image_path.exists()
    });
    let read = fs::read(&image_path);
    Command::new("kill").arg(child.id().to_string()).status().unwrap();
    let ended = child.wait().unwrap();
    assert_eq!(read.unwrap(), image);
    assert!(ended.success(), "blockfs did not unmount cleanly on SIGTERM: {ended}");
    assert!(nginx.requests_for("/blocks/") > 0);
}
