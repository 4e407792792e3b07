//! The fuzz targets: one function per decoder that reads bytes from outside (a server, a
//! mirror, a LAN, the boot loader). Each must return for every input, never panic, and keep
//! its own invariants, which the functions here assert. `src/bin/<target>.rs` feeds a function
//! from AFL++; `tests/regressions.rs` replays the seeds and every crash ever found.

use std::net::Ipv4Addr;

use circular_format::block;
use circular_format::catalog::Catalog;
use circular_format::index::Index;
use circular_format::profile::Profile;
use circular_format::signing;
use circular_format::Sha1Name;

/// Every target, by name (the names of `src/bin/` and `seeds/`).
pub const TARGETS: [(&str, fn(&[u8])); 8] = [
    ("index", index),
    ("catalog", catalog),
    ("signature", signature),
    ("profile", profile),
    ("block", block_frame),
    ("dhcp", dhcp),
    ("cmdline", cmdline),
    ("http_counter", http_counter),
];

/// An index (the mapping table): accepted ones are self-consistent and survive a round trip.
pub fn index(data: &[u8]) {
    if let Ok(ix) = Index::parse(data, "fuzz") {
        let blocks = ix.blocks.len();
        let block_size = ix.block_size as usize;
        assert_eq!(blocks as u64, ix.image_size.div_ceil(u64::from(ix.block_size)));
        for n in 0..blocks {
            assert!(ix.block_len(n) <= block_size);
        }
        let again = Index::parse(&ix.to_bytes(), "fuzz").expect("an index we wrote parses");
        assert_eq!(again.blocks, ix.blocks);
    }
}

/// A catalog's bytes, as a mirror or a captive portal might send them.
pub fn catalog(data: &[u8]) {
    if let Ok(c) = Catalog::parse(data) {
        let _ = c.validate();
        let again = Catalog::parse(&c.to_bytes()).expect("a catalog we wrote parses");
        assert_eq!(again.distributions.len(), c.distributions.len());
        let _ = c.snapshots().count();
    }
}

/// A detached signature over a catalog: the first line is the signature file, the rest the
/// catalog. No input may verify under a key nobody holds the secret of.
pub fn signature(data: &[u8]) {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (sig, catalog) = data.split_at(split);
    let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]).verifying_key();
    let now = time::OffsetDateTime::UNIX_EPOCH;
    let verified = signing::verify_catalog(catalog, Some(sig), &[key], now);
    assert!(verified.is_err(), "a forged signature verified");
}

/// A boot profile.
pub fn profile(data: &[u8]) {
    if let Ok(p) = Profile::parse(data, "fuzz") {
        let _ = Profile::parse(&p.to_bytes(), "fuzz").expect("a profile we wrote parses");
    }
}

/// A block file (one zstd frame) checked against a name: the first 20 bytes are the name, the
/// rest the file. Decoding is bounded, and what passes has the name's SHA-1.
pub fn block_frame(data: &[u8]) {
    if data.len() < 20 {
        return;
    }
    let (name, file) = data.split_at(20);
    let hex: String = name.iter().map(|b| format!("{b:02x}")).collect();
    let Ok(id) = hex.parse::<Sha1Name>() else { return };
    const MAX: usize = 64 * 1024;
    if let Ok(bytes) = block::decode(&id, file, MAX) {
        assert!(bytes.len() <= MAX);
    }
}

/// A DHCP reply from anyone on the link, for our transaction id and MAC.
pub fn dhcp(data: &[u8]) {
    let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let _ = init::net::dhcp::parse_reply(data, 7, &mac, Ipv4Addr::UNSPECIFIED);
}

/// The kernel command line (GRUB's, editable by whoever sits at the boot menu).
pub fn cmdline(data: &[u8]) {
    let _ = init::cmdline::parse(&String::from_utf8_lossy(data));
}

/// netshape's HTTP request counter: the count never depends on how the stream was split.
pub fn http_counter(data: &[u8]) {
    let whole = netshape::RequestCounter::default().feed(data);
    let cut = usize::from(data.first().copied().unwrap_or(1).max(1));
    let mut pieces = netshape::RequestCounter::default();
    let split: u64 = data.chunks(cut).map(|c| pieces.feed(c)).sum();
    assert_eq!(whole, split);
}
