//! KVM or TCG. KVM is used only when it really works: the CPU must report
//! VT-x or AMD-V *and* /dev/kvm must open and answer the API version ioctl.
//! Both checks matter: a paravirtual /dev/kvm (as on some cloud machines) opens
//! fine but cannot boot stock kernels, and its CPU reports neither vmx nor svm.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::path::Path;

/// How QEMU runs the guest's CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization: near native speed.
    Kvm,
    /// Software emulation: works everywhere, 10 to 50 times slower.
    Tcg,
}

impl Accel {
    /// The name QEMU's `-accel` option and Circular's `--accel` use: `kvm` or `tcg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::str::FromStr for Accel {
    type Err = String;
    /// Parses `kvm` or `tcg`; the error is a sentence naming both.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            other => Err(format!("accelerator {other:?} is not kvm or tcg")),
        }
    }
}

/// The result of [`detect_accel`]: the accelerator to use, and why not KVM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelCheck {
    /// KVM when it works, else TCG.
    pub accel: Accel,
    /// Set when KVM is not usable: a sentence a person can act on.
    pub no_kvm_reason: Option<String>,
}

/// Checks this machine: KVM when it works, else TCG with the reason. Reads
/// /proc/cpuinfo and opens /dev/kvm; an unreadable /proc/cpuinfo counts as no
/// hardware virtualization.
pub fn detect_accel() -> AccelCheck {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    match kvm_problem(&cpuinfo, Path::new("/dev/kvm")) {
        None => AccelCheck { accel: Accel::Kvm, no_kvm_reason: None },
        Some(reason) => AccelCheck { accel: Accel::Tcg, no_kvm_reason: Some(reason) },
    }
}

/// Why KVM cannot be used, or `None` when it can. `cpuinfo` is the text of
/// /proc/cpuinfo; `dev` is normally /dev/kvm. The reason is a sentence a person
/// can act on (enable VT-x, load the module, join the kvm group).
pub fn kvm_problem(cpuinfo: &str, dev: &Path) -> Option<String> {
    if !cpu_has_virtualization(cpuinfo) && cpu_has_flag(cpuinfo, "hypervisor") {
        // The CPU says it is virtual (the "hypervisor" flag): no firmware setting
        // of this machine helps; the host must pass VT-x/AMD-V through.
        return Some(
            "this machine is itself a virtual machine, and its host gives it no hardware \
             virtualization (VT-x/AMD-V): enable nested virtualization on the host (for a \
             Linux host: the kvm_intel or kvm_amd module's nested=1, and a CPU model that \
             passes vmx or svm through)"
                .to_string(),
        );
    }
    if !cpu_has_virtualization(cpuinfo) {
        return Some(
            "the CPU reports no hardware virtualization (VT-x/AMD-V): enable it in the \
             firmware (BIOS/UEFI) setup, or use a PC that has it"
                .to_string(),
        );
    }
    let file = match OpenOptions::new().read(true).write(true).open(dev) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!("{} does not exist: load the kvm_intel or kvm_amd module", dev.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Some(format!(
                "{} cannot be opened (permission denied): add yourself to the kvm group",
                dev.display()
            ))
        }
        Err(e) => return Some(format!("{} cannot be opened: {e}", dev.display())),
    };
    // KVM_GET_API_VERSION = _IO(KVMIO=0xAE, 0x00); every KVM since Linux 2.6.22 says 12.
    const KVM_GET_API_VERSION: libc::c_ulong = 0xAE00;
    // SAFETY: the fd is open for as long as `file` lives; this ioctl takes no
    // argument and only returns an integer, so no memory is shared with the kernel.
    let version = unsafe { libc::ioctl(file.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version != 12 {
        return Some(format!("{} does not answer as KVM (API version {version}, expected 12)", dev.display()));
    }
    None
}

/// True when a `flags` line of /proc/cpuinfo lists vmx (Intel) or svm (AMD).
fn cpu_has_virtualization(cpuinfo: &str) -> bool {
    cpu_has_flag(cpuinfo, "vmx") || cpu_has_flag(cpuinfo, "svm")
}

/// True when a `flags` line of /proc/cpuinfo lists `flag` as a whole word.
fn cpu_has_flag(cpuinfo: &str, flag: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|l| l.starts_with("flags"))
        .filter_map(|l| l.split_once(':'))
        .any(|(_, flags)| flags.split_whitespace().any(|f| f == flag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_flags_are_read_word_by_word() {
        assert!(cpu_has_virtualization("flags\t\t: fpu vme vmx sse\n"));
        assert!(cpu_has_virtualization("flags : fpu svm\n"));
        assert!(!cpu_has_virtualization("flags : fpu vmxx hypervisor\n"));
        assert!(!cpu_has_virtualization("model name : vmx\n"));
    }

    #[test]
    fn no_flag_or_no_device_means_no_kvm() {
        let reason = kvm_problem("flags : fpu sse\n", Path::new("/dev/kvm")).unwrap();
        assert!(reason.contains("VT-x/AMD-V") && reason.contains("firmware (BIOS/UEFI) setup"), "{reason}");
        // A virtual machine's CPU: the advice is for its host, not a firmware setup.
        let reason = kvm_problem("flags : fpu hypervisor\n", Path::new("/dev/kvm")).unwrap();
        assert!(reason.contains("nested virtualization on the host"), "{reason}");
        assert!(!reason.contains("firmware"), "{reason}");
        let reason = kvm_problem("flags : vmx\n", Path::new("/nonexistent/kvm")).unwrap();
        assert!(reason.contains("does not exist"), "{reason}");
        // A file that opens but is not KVM fails the ioctl.
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("kvm");
        std::fs::write(&fake, b"").unwrap();
        let reason = kvm_problem("flags : vmx\n", &fake).unwrap();
        assert!(reason.contains("does not answer as KVM"), "{reason}");
    }
}
