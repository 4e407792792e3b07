//! The stick's MBR: GRUB's boot.img code (first 440 bytes), a disk signature
//! and four partition entries. Written by hand because the image is a plain
//! file (no loop device, and grub-bios-setup refuses plain files).

pub const SECTOR: u64 = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub bootable: bool,
    pub kind: u8,
    pub start: u32,
    pub sectors: u32,
}

/// Builds sector 0. CHS fields are set to the "use LBA" maximum, as modern
/// partitioners do for anything past the first 8 GB; BIOSes boot by LBA.
pub fn build(boot_code: &[u8], disk_signature: u32, parts: &[Part]) -> [u8; 512] {
    let mut s = [0u8; 512];
    let n = boot_code.len().min(440);
    s[..n].copy_from_slice(&boot_code[..n]);
    s[440..444].copy_from_slice(&disk_signature.to_le_bytes());
    for (i, p) in parts.iter().take(4).enumerate() {
        let e = &mut s[446 + 16 * i..446 + 16 * (i + 1)];
        e[0] = if p.bootable { 0x80 } else { 0 };
        e[1..4].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[4] = p.kind;
        e[5..8].copy_from_slice(&[0xfe, 0xff, 0xff]);
        e[8..12].copy_from_slice(&p.start.to_le_bytes());
        e[12..16].copy_from_slice(&p.sectors.to_le_bytes());
    }
    s[510] = 0x55;
    s[511] = 0xaa;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        let s = build(
            &[0xeb; 512],
            0x1234_5678,
            &[
                Part { bootable: true, kind: 0xef, start: 2048, sectors: 4096 },
                Part { bootable: false, kind: 0x83, start: 6144, sectors: 100 },
            ],
        );
        assert_eq!(s[439], 0xeb);
        assert_eq!(&s[440..444], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(s[446], 0x80);
        assert_eq!(s[446 + 4], 0xef);
        assert_eq!(&s[446 + 8..446 + 12], &2048u32.to_le_bytes());
        assert_eq!(s[462], 0);
        assert_eq!(s[462 + 4], 0x83);
        assert_eq!(&s[510..], &[0x55, 0xaa]);
    }
}
