//! Boot profiles end to end: prefetch in profile order, demand reads jumping
//! the queue, the cache cap stopping prefetch, and the read trace profiles are
//! made from. nginx's own log tells what was fetched and in which order.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::FileExt;

use blockfs::status::Status;
use blockfs::trace::Trace;
use circular_format::layout::block_path;
use common::{random_bytes, wait_for, Client, Nginx, TestStore};

const BS: u32 = 65536;
/// A boot order that is not the image's order.
const PROFILE: [u32; 12] = [30, 5, 17, 2, 39, 11, 23, 8, 35, 0, 14, 27];

fn store_with_profile(tmp: &std::path::Path) -> (TestStore, circular_format::index::Index) {
    let mut store = TestStore::new(&tmp.join("store"));
    let index = store.add("deb", "2026-11-22", &random_bytes(40 * BS as usize, 7), BS);
    store.add_profile("deb", "2026-11-22", PROFILE.to_vec());
    (store, index)
}

fn block_requests(nginx: &Nginx) -> Vec<String> {
    nginx.requested_paths().into_iter().filter(|p| p.starts_with("/blocks/")).collect()
}

fn prefetch_done(client: &Client) -> bool {
    let status = Status::read(&client.mountpoint()).unwrap();
    status.prefetch.is_some_and(|p| p.done_blocks == p.total_blocks)
}

#[test]
fn opening_an_image_prefetches_its_profile_in_order() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, index) = store_with_profile(tmp.path());
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.fetchers = 3; // two stay free for readers: prefetch fetches one at a time, in order
    let _m = client.mount(config).unwrap();
    let _file = fs::File::open(client.image("deb/latest")).unwrap();
    wait_for("the profile prefetch", || prefetch_done(&client));
    let expected: Vec<String> =
        PROFILE.iter().map(|&n| format!("/{}", block_path(&index.blocks[n as usize].unwrap()))).collect();
    assert_eq!(block_requests(&nginx), expected, "fetched exactly the profile, in its order");
    let status = Status::read(&client.mountpoint()).unwrap();
    let prefetch = status.prefetch.unwrap();
    assert_eq!((prefetch.done_blocks, prefetch.total_blocks), (12, 12));
    assert_eq!(prefetch.stopped, None);
}

#[test]
fn demand_reads_overtake_prefetch() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, index) = store_with_profile(tmp.path());
    // A slow server: each 64 KiB block takes about half a second.
    let nginx = Nginx::start_with(&store.dir, "limit_rate 128k;");
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.fetchers = 3;
    config.readahead_blocks = 0;
    let _m = client.mount(config).unwrap();
    let file = fs::File::open(client.image("deb/latest")).unwrap();
    // Block 27 is last in the profile; a reader wants it now.
    let mut buf = vec![0; 100];
    file.read_at(&mut buf, 27 * u64::from(BS) + 10).unwrap();
    let status = Status::read(&client.mountpoint()).unwrap();
    let prefetch = status.prefetch.unwrap();
    assert!(
        prefetch.done_blocks < 6,
        "the demand read waited for the prefetch queue: {} of 12 prefetched first",
        prefetch.done_blocks
    );
    let demanded = format!("/{}", block_path(&index.blocks[27].unwrap()));
    let position = block_requests(&nginx).iter().position(|p| *p == demanded).unwrap();
    assert!(position < 6, "block 27 was request {position}, not last");
    wait_for("the profile prefetch", || prefetch_done(&client));
}

#[test]
fn the_cache_cap_stops_prefetch_before_it_evicts_the_profile() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, index) = store_with_profile(tmp.path());
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.fetchers = 3;
    let block_file = fs::metadata(store.block_file(&index.blocks[0].unwrap())).unwrap().len();
    config.store.cache_max = Some(5 * block_file + block_file / 2); // room for five blocks
    let _m = client.mount(config).unwrap();
    let _file = fs::File::open(client.image("deb/latest")).unwrap();
    wait_for("prefetch to stop", || {
        Status::read(&client.mountpoint()).unwrap().prefetch.is_some_and(|p| p.stopped.is_some())
    });
    let status = Status::read(&client.mountpoint()).unwrap();
    assert!(status.cache_bytes <= 5 * block_file + block_file / 2);
    assert_eq!(status.evicted_blocks, 0, "no profile block was evicted for another");
    let prefetch = status.prefetch.unwrap();
    assert!(prefetch.stopped.unwrap().contains("cache is full"));
    for &n in &PROFILE[..5] {
        let id = index.blocks[n as usize].unwrap();
        assert!(client.cache().join(block_path(&id)).exists(), "profile block {n} is cached");
    }
}

#[test]
fn without_prefetch_opening_fetches_nothing() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_profile(tmp.path());
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let mut config = client.config(vec![nginx.url()], &store);
    config.prefetch = false;
    let _m = client.mount(config).unwrap();
    let _file = fs::File::open(client.image("deb/latest")).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert!(block_requests(&nginx).is_empty());
    assert!(Status::read(&client.mountpoint()).unwrap().prefetch.is_none());
}

#[test]
fn the_trace_records_what_readers_touched_in_order() {
    if !testkit::need(&["nginx", "fusermount3"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = store_with_profile(tmp.path());
    let nginx = Nginx::start(&store.dir);
    let client = Client::new();
    let trace = std::sync::Arc::new(Trace::new());
    let mut config = client.config(vec![nginx.url()], &store);
    config.prefetch = false;
    config.trace = Some(trace.clone());
    let _m = client.mount(config).unwrap();
    let file = fs::File::open(client.image("deb/latest")).unwrap();
    let mut buf = vec![0; 10];
    for block in [7u64, 2, 7, 20] {
        file.read_at(&mut buf, block * u64::from(BS) + 100).unwrap();
    }
    // A read across a block edge touches both blocks.
    let mut two = vec![0; 200];
    file.read_at(&mut two, 12 * u64::from(BS) - 100).unwrap();
    let index = store.catalog.distributions[0].snapshots[0].index;
    assert_eq!(trace.first_reads(&index), vec![7, 2, 20, 11, 12]);
}
