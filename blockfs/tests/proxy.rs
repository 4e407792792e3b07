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
