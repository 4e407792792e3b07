//! Which kernel modules go into the initramfs: the classes a PC needs to reach
//! a network, read a USB stick, show a screen and run KVM. The list is by path
//! under `lib/modules/<ver>/`, so a reader can see at a glance what is in and
//! why; the dependency closure comes from the kernel's own `modules.dep`.

use std::collections::{BTreeMap, BTreeSet};

/// The class of the GPU drivers, which `image-build initramfs` counts in the display stack's share.
pub const GPU_CLASS: &str = "gpu";

/// (class, path prefix). A prefix ending in `/` or `-` takes every module
/// under it; anything else is a single module file without its `.ko*` suffix.
pub const CLASSES: &[(&str, &str)] = &[
    // Network: the wired NICs found in desktops and laptops, USB Ethernet
    // adapters (common on laptops without a port), and the virtual ones.
    ("network", "kernel/drivers/net/ethernet/intel/e1000/"),
    ("network", "kernel/drivers/net/ethernet/intel/e1000e/"),
    ("network", "kernel/drivers/net/ethernet/intel/igb/"),
    ("network", "kernel/drivers/net/ethernet/intel/igc/"),
    ("network", "kernel/drivers/net/ethernet/intel/e100"),
    ("network", "kernel/drivers/net/ethernet/realtek/"),
    ("network", "kernel/drivers/net/ethernet/broadcom/tg3"),
    ("network", "kernel/drivers/net/ethernet/broadcom/b44"),
    ("network", "kernel/drivers/net/ethernet/atheros/"),
    ("network", "kernel/drivers/net/ethernet/marvell/sky2"),
    ("network", "kernel/drivers/net/ethernet/nvidia/"),
    ("network", "kernel/drivers/net/ethernet/amd/pcnet32"),
    ("network", "kernel/drivers/net/ethernet/via/"),
    ("network", "kernel/drivers/net/usb/"),
    ("network", "kernel/drivers/net/virtio_net"),
    ("network", "kernel/drivers/net/phy/realtek"),
    // Wi-Fi: the 802.11 stack, the chip families of most laptops (Intel, Atheros/Qualcomm,
    // Realtek, MediaTek) and mac80211_hwsim for the e2e test; the crypto WPA2/WPA3 asks
    // for (PID 1 loads it: no module helper). Their firmware is not in the initramfs.
    ("wireless", "kernel/net/wireless/"),
    ("wireless", "kernel/net/mac80211/"),
    ("wireless", "kernel/drivers/net/wireless/intel/iwlwifi/"),
    ("wireless", "kernel/drivers/net/wireless/ath/"),
    ("wireless", "kernel/drivers/net/wireless/realtek/"),
    ("wireless", "kernel/drivers/net/wireless/mediatek/mt76/"),
    ("wireless", "kernel/drivers/net/wireless/mac80211_hwsim"),
    ("wireless", "kernel/crypto/ccm"),
    ("wireless", "kernel/crypto/ctr"),
    ("wireless", "kernel/crypto/cmac"),
    ("wireless", "kernel/crypto/gcm"),
    ("wireless", "kernel/crypto/ghash-generic"),
    // USB host controllers, HID and mass storage.
    ("usb", "kernel/drivers/usb/host/xhci-"),
    ("usb", "kernel/drivers/usb/host/ehci-"),
    ("usb", "kernel/drivers/usb/host/ohci-"),
    ("usb", "kernel/drivers/usb/host/uhci-"),
    ("usb", "kernel/drivers/usb/core/"),
    ("usb", "kernel/drivers/usb/common/"),
    ("usb", "kernel/drivers/usb/storage/"),
    // Storage: SATA/AHCI, NVMe (also behind Intel VMD), SD readers, virtio.
    ("storage", "kernel/drivers/ata/ahci"),
    ("storage", "kernel/drivers/ata/libahci"),
    ("storage", "kernel/drivers/ata/ata_piix"),
    ("storage", "kernel/drivers/ata/ata_generic"),
    ("storage", "kernel/drivers/scsi/sd_mod"),
    ("storage", "kernel/drivers/scsi/sr_mod"),
    ("storage", "kernel/drivers/scsi/virtio_scsi"),
    ("storage", "kernel/drivers/nvme/host/nvme"),
    ("storage", "kernel/drivers/nvme/host/nvme-core"),
    ("storage", "kernel/drivers/pci/controller/vmd"),
    ("storage", "kernel/drivers/mmc/core/"),
    ("storage", "kernel/drivers/mmc/host/sdhci"),
    ("storage", "kernel/drivers/block/virtio_blk"),
    ("storage", "kernel/drivers/virtio/"),
    // Filesystems: the cache (ext4), the ESP (vfat + code pages), FUSE.
    ("filesystems", "kernel/fs/ext4/"),
    ("filesystems", "kernel/fs/fat/"),
    ("filesystems", "kernel/fs/nls/nls_cp437"),
    ("filesystems", "kernel/fs/nls/nls_iso8859-1"),
    ("filesystems", "kernel/fs/nls/nls_ascii"),
    ("filesystems", "kernel/fs/nls/nls_utf8"),
    ("filesystems", "kernel/fs/fuse/fuse"),
    // UEFI variables: PID 1 reads SecureBoot-8be4df61-… to report the boot mode.
    ("filesystems", "kernel/fs/efivarfs/efivarfs"),
    // ext4 asks for crc32c (a softdep, not in modules.dep).
    ("filesystems", "kernel/crypto/crc32c_generic"),
    ("filesystems", "kernel/arch/x86/crypto/crc32c-intel"),
    // GPUs with KMS: bochs/virtio for VMs, i915 for Intel graphics. Without a DRM
    // driver (or its firmware) the presenter draws on the firmware's framebuffer (efifb/vesafb).
    (GPU_CLASS, "kernel/drivers/gpu/drm/tiny/bochs"),
    (GPU_CLASS, "kernel/drivers/gpu/drm/virtio/"),
    (GPU_CLASS, "kernel/drivers/gpu/drm/i915/"),
    // AMD and NVIDIA: their firmware goes on the stick's cache partition (see `firmware.rs`).
    (GPU_CLASS, "kernel/drivers/gpu/drm/amd/amdgpu/amdgpu"),
    (GPU_CLASS, "kernel/drivers/gpu/drm/radeon/radeon"),
    (GPU_CLASS, "kernel/drivers/gpu/drm/nouveau/nouveau"),
    // Input: the presenter reads every keyboard and mouse through evdev.
    ("input", "kernel/drivers/input/evdev"),
    ("input", "kernel/drivers/input/mouse/psmouse"),
    ("input", "kernel/drivers/hid/hid"),
    ("input", "kernel/drivers/hid/hid-"),
    ("input", "kernel/drivers/hid/usbhid/"),
    // KVM, the reason the appliance exists.
    ("kvm", "kernel/arch/x86/kvm/"),
];

/// Modules a class prefix would take but a PC booting Circular never needs
/// (they pull in InfiniBand, Hyper-V and GPU virtualization).
pub const DENY: &[&str] = &["kernel/drivers/hid/hid-hyperv", "kernel/drivers/gpu/drm/i915/kvmgt"];

/// Strips `.ko`, `.ko.xz`, `.ko.zst`, `.ko.gz`.
pub fn stem(path: &str) -> &str {
    for ext in [".ko.xz", ".ko.zst", ".ko.gz", ".ko"] {
        if let Some(s) = path.strip_suffix(ext) {
            return s;
        }
    }
    path
}

/// The class of a module path, if any class selects it.
pub fn class_of(path: &str) -> Option<&'static str> {
    let s = stem(path);
    if DENY.contains(&s) {
        return None;
    }
    CLASSES.iter().find_map(|(class, pat)| {
        let hit = if pat.ends_with('/') || pat.ends_with('-') { s.starts_with(pat) } else { s == *pat };
        hit.then_some(*class)
    })
}

/// Parses `modules.dep`: "a.ko: b.ko c.ko" → a → [b, c].
pub fn parse_dep(text: &str) -> BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| {
            let (m, deps) = l.split_once(':')?;
            Some((m.trim().to_string(), deps.split_whitespace().map(str::to_string).collect()))
        })
        .collect()
}

/// Selected modules plus everything they depend on, each with its class
/// ("dependency" for modules pulled in only by others).
pub fn select(dep: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, &'static str> {
    let mut out: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut todo: Vec<String> = Vec::new();
    for m in dep.keys() {
        if let Some(c) = class_of(m) {
            out.insert(m.clone(), c);
            todo.push(m.clone());
        }
    }
    let mut seen: BTreeSet<String> = todo.iter().cloned().collect();
    while let Some(m) = todo.pop() {
        for d in dep.get(&m).into_iter().flatten() {
            if seen.insert(d.clone()) {
                out.entry(d.clone()).or_insert("dependency");
                todo.push(d.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_match_by_dir_and_by_file() {
        assert_eq!(class_of("kernel/fs/ext4/ext4.ko"), Some("filesystems"));
        assert_eq!(class_of("kernel/drivers/usb/host/xhci-pci.ko"), Some("usb"));
        assert_eq!(class_of("kernel/drivers/net/wireless/mac80211_hwsim.ko"), Some("wireless"));
        assert_eq!(class_of("kernel/drivers/net/wireless/intel/iwlwifi/mvm/iwlmvm.ko"), Some("wireless"));
        assert_eq!(class_of("kernel/crypto/ccm.ko"), Some("wireless"));
        assert_eq!(class_of("kernel/drivers/net/virtio_net.ko.xz"), Some("network"));
        assert_eq!(class_of("kernel/drivers/net/virtio_netx.ko"), None);
        assert_eq!(class_of("kernel/drivers/hid/hid.ko"), Some("input"));
        assert_eq!(class_of("kernel/drivers/hid/hid-apple.ko"), Some("input"));
        assert_eq!(class_of("kernel/drivers/scsi/hpsa.ko"), None);
        assert_eq!(class_of("kernel/drivers/hid/hid-hyperv.ko"), None);
        assert_eq!(class_of("kernel/drivers/nvme/host/nvme-rdma.ko"), None);
        assert_eq!(class_of("kernel/drivers/gpu/drm/amd/amdgpu/amdgpu.ko"), Some(GPU_CLASS));
        assert_eq!(class_of("kernel/drivers/gpu/drm/amd/amdxcp/amdxcp.ko"), None);
    }

    #[test]
    fn closure_pulls_dependencies() {
        let dep = parse_dep(
            "kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko kernel/fs/mbcache.ko\n\
             kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\n\
             kernel/lib/crc16.ko:\n\
             kernel/fs/mbcache.ko:\n\
             kernel/sound/snd.ko:\n",
        );
        let sel = select(&dep);
        assert_eq!(sel.get("kernel/fs/ext4/ext4.ko"), Some(&"filesystems"));
        assert_eq!(sel.get("kernel/lib/crc16.ko"), Some(&"dependency"));
        assert!(sel.contains_key("kernel/fs/mbcache.ko"));
        assert!(!sel.contains_key("kernel/sound/snd.ko"));
    }
}
