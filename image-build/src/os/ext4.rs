//! Makes the inode times of an ext4 filesystem image deterministic.
//!
//! `mke2fs -d DIR` (e2fsprogs 1.47.0, Debian 12) copies each file's atime and ctime
//! from the build tree. ctime cannot be set from user space, so two builds of the
//! same tree differ in every inode. This pass sets atime, ctime and crtime to the
//! (already clamped) mtime in every in-use inode and recomputes the inode checksum
//! (metadata_csum). It touches nothing else; `e2fsck -fn` checks the result in the
//! tests. It is not a general ext4 library: it reads only the superblock, the group
//! descriptors, the inode bitmaps and the inode tables.

use std::fs::File;
use std::os::unix::fs::FileExt;

use super::error::{OsError, Result};

const INCOMPAT_64BIT: u32 = 0x80;
const INCOMPAT_CSUM_SEED: u32 = 0x2000;
const RO_COMPAT_METADATA_CSUM: u32 = 0x400;
const BG_INODE_UNINIT: u16 = 0x1;

// Inode field offsets (struct ext4_inode).
const I_ATIME: usize = 0x08;
const I_CTIME: usize = 0x0c;
const I_MTIME: usize = 0x10;
const I_GENERATION: usize = 0x64;
const I_CHECKSUM_LO: usize = 0x7c;
const I_EXTRA_ISIZE: usize = 0x80;
const I_CHECKSUM_HI: usize = 0x82;
const I_CTIME_EXTRA: usize = 0x84;
const I_MTIME_EXTRA: usize = 0x88;
const I_ATIME_EXTRA: usize = 0x8c;
const I_CRTIME: usize = 0x90;
const I_CRTIME_EXTRA: usize = 0x94;
const GOOD_OLD_INODE_SIZE: usize = 128;

/// CRC-32C (Castagnoli) without the final inversion, as ext4 chains it.
pub fn crc32c_raw(mut crc: u32, data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, slot) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            }
            *slot = c;
        }
        t
    });
    for &b in data {
        crc = table[((crc ^ b as u32) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// The superblock fields this pass needs.
#[derive(Debug)]
struct Super {
    block_size: u64,
    first_data_block: u64,
    inodes_per_group: u32,
    inode_size: usize,
    groups: u64,
    desc_size: usize,
    csum_seed: Option<u32>,
}

fn read_super(dev: &File, offset: u64) -> Result<Super> {
    let mut sb = [0u8; 1024];
    dev.read_exact_at(&mut sb, offset + 1024).map_err(|e| OsError::io("reading the ext4 superblock", e))?;
    if le16(&sb, 0x38) != 0xef53 {
        return Err(OsError::Ext4("no ext4 superblock at the partition's start".into()));
    }
    let log = le32(&sb, 0x18);
    if log > 6 {
        return Err(OsError::Ext4(format!("unsupported block size 2^{}", 10 + log)));
    }
    let block_size = 1024u64 << log;
    let inodes_count = le32(&sb, 0x00);
    let inodes_per_group = le32(&sb, 0x28);
    let inode_size = if le32(&sb, 0x4c) == 0 { 128 } else { le16(&sb, 0x58) as usize };
    let incompat = le32(&sb, 0x60);
    let ro_compat = le32(&sb, 0x64);
    if inodes_per_group == 0 || !(128..=block_size as usize).contains(&inode_size) {
        return Err(OsError::Ext4("inconsistent superblock (inodes per group, inode size)".into()));
    }
    let desc_size = if incompat & INCOMPAT_64BIT != 0 { le16(&sb, 0xfe) as usize } else { 32 };
    if desc_size < 32 {
        return Err(OsError::Ext4(format!("group descriptor size {desc_size} is too small")));
    }
    let csum_seed = if ro_compat & RO_COMPAT_METADATA_CSUM == 0 {
        None
    } else if incompat & INCOMPAT_CSUM_SEED != 0 {
        Some(le32(&sb, 0x270))
    } else {
        Some(crc32c_raw(!0, &sb[0x68..0x78]))
    };
    Ok(Super {
        block_size,
        first_data_block: le32(&sb, 0x14) as u64,
        inodes_per_group,
        inode_size,
        groups: (inodes_count as u64).div_ceil(inodes_per_group as u64),
        desc_size,
        csum_seed,
    })
}

/// Sets atime, ctime and crtime to mtime in one raw inode; recomputes its checksum.
/// Returns whether the inode changed.
fn normalize_inode(raw: &mut [u8], ino: u32, csum_seed: Option<u32>) -> bool {
    let before = raw.to_vec();
    let mtime = le32(raw, I_MTIME).to_le_bytes();
    raw[I_ATIME..I_ATIME + 4].copy_from_slice(&mtime);
    raw[I_CTIME..I_CTIME + 4].copy_from_slice(&mtime);
    let extra = if raw.len() > GOOD_OLD_INODE_SIZE { le16(raw, I_EXTRA_ISIZE) as usize } else { 0 };
    let len = raw.len();
    let fits = |end: usize| len > GOOD_OLD_INODE_SIZE && GOOD_OLD_INODE_SIZE + extra >= end && end <= len;
    if fits(I_ATIME_EXTRA + 4) {
        let mx = le32(raw, I_MTIME_EXTRA).to_le_bytes();
        raw[I_CTIME_EXTRA..I_CTIME_EXTRA + 4].copy_from_slice(&mx);
        raw[I_ATIME_EXTRA..I_ATIME_EXTRA + 4].copy_from_slice(&mx);
        if fits(I_CRTIME_EXTRA + 4) {
            raw[I_CRTIME..I_CRTIME + 4].copy_from_slice(&mtime);
            raw[I_CRTIME_EXTRA..I_CRTIME_EXTRA + 4].copy_from_slice(&mx);
        }
    }
    if raw == before.as_slice() {
        return false;
    }
    if let Some(seed) = csum_seed {
        let has_hi = fits(I_CHECKSUM_HI + 2);
        raw[I_CHECKSUM_LO..I_CHECKSUM_LO + 2].fill(0);
        if has_hi {
            raw[I_CHECKSUM_HI..I_CHECKSUM_HI + 2].fill(0);
        }
        let gen = le32(raw, I_GENERATION);
        let mut c = crc32c_raw(seed, &ino.to_le_bytes());
        c = crc32c_raw(c, &gen.to_le_bytes());
        c = crc32c_raw(c, raw);
        raw[I_CHECKSUM_LO..I_CHECKSUM_LO + 2].copy_from_slice(&((c & 0xffff) as u16).to_le_bytes());
        if has_hi {
            raw[I_CHECKSUM_HI..I_CHECKSUM_HI + 2].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
        }
    }
    true
}

/// Normalizes the inode times of the ext4 filesystem that starts at `offset` in `dev`.
/// Returns the number of inodes rewritten.
pub fn normalize_times(dev: &File, offset: u64) -> Result<u64> {
    let sb = read_super(dev, offset)?;
    let bs = sb.block_size;
    let gdt = offset + (sb.first_data_block + 1) * bs;
    let mut descs = vec![0u8; sb.groups as usize * sb.desc_size];
    dev.read_exact_at(&mut descs, gdt).map_err(|e| OsError::io("reading the ext4 group descriptors", e))?;
    let ipg = sb.inodes_per_group as usize;
    let mut bitmap = vec![0u8; bs as usize];
    let mut table = vec![0u8; ipg * sb.inode_size];
    let mut changed = 0u64;
    for g in 0..sb.groups as usize {
        let d = &descs[g * sb.desc_size..(g + 1) * sb.desc_size];
        if le16(d, 0x12) & BG_INODE_UNINIT != 0 {
            continue;
        }
        let hi = |o: usize| if sb.desc_size >= 64 { (le32(d, o) as u64) << 32 } else { 0 };
        let bitmap_block = le32(d, 0x04) as u64 | hi(0x24);
        let table_block = le32(d, 0x08) as u64 | hi(0x28);
        dev.read_exact_at(&mut bitmap, offset + bitmap_block * bs)
            .map_err(|e| OsError::io(format!("reading the inode bitmap of group {g}"), e))?;
        dev.read_exact_at(&mut table, offset + table_block * bs)
            .map_err(|e| OsError::io(format!("reading the inode table of group {g}"), e))?;
        let mut dirty = false;
        for i in 0..ipg {
            if bitmap[i / 8] & (1 << (i % 8)) == 0 {
                continue;
            }
            let ino = (g * ipg + i + 1) as u32;
            let raw = &mut table[i * sb.inode_size..(i + 1) * sb.inode_size];
            if normalize_inode(raw, ino, sb.csum_seed) {
                changed += 1;
                dirty = true;
            }
        }
        if dirty {
            dev.write_all_at(&table, offset + table_block * bs)
                .map_err(|e| OsError::io(format!("writing the inode table of group {g}"), e))?;
        }
    }
    dev.sync_data().map_err(|e| OsError::io("syncing the image", e))?;
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard check value of CRC-32C is over "123456789" with init and final inversion.
        assert_eq!(!crc32c_raw(!0, b"123456789"), 0xE306_9283);
    }

    #[test]
    fn inode_times_follow_mtime() {
        let mut raw = vec![0u8; 256];
        raw[I_EXTRA_ISIZE..I_EXTRA_ISIZE + 2].copy_from_slice(&32u16.to_le_bytes());
        raw[I_ATIME..I_ATIME + 4].copy_from_slice(&5u32.to_le_bytes());
        raw[I_CTIME..I_CTIME + 4].copy_from_slice(&6u32.to_le_bytes());
        raw[I_MTIME..I_MTIME + 4].copy_from_slice(&7u32.to_le_bytes());
        raw[I_CTIME_EXTRA..I_CTIME_EXTRA + 4].copy_from_slice(&99u32.to_le_bytes());
        assert!(normalize_inode(&mut raw, 12, Some(0x1234)));
        assert_eq!(le32(&raw, I_ATIME), 7);
        assert_eq!(le32(&raw, I_CTIME), 7);
        assert_eq!(le32(&raw, I_CRTIME), 7);
        assert_eq!(le32(&raw, I_CTIME_EXTRA), 0);
        assert!(le16(&raw, I_CHECKSUM_LO) != 0 || le16(&raw, I_CHECKSUM_HI) != 0);
        // A second pass changes nothing, checksum included.
        let again = raw.clone();
        assert!(!normalize_inode(&mut raw, 12, Some(0x1234)));
        assert_eq!(raw, again);
    }
}
