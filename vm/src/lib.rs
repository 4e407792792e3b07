//! circular-vm: Circular's one QEMU launcher.
//!
//! What it is: the only place that builds a QEMU command line for a snapshot
//! ([`qemu_args`]), finds the UEFI firmware ([`OVMF`], [`find_ovmf`]), makes the
//! guest's qcow2 overlay ([`prepare_overlay`]), chooses KVM or TCG
//! ([`detect_accel`]), and starts, watches and stops QEMU ([`Vm`]). The menu and
//! desktop mode, the appliance's PID 1 (through the menu), `image-build profile`
//! and the benchmarks (through `circular qemu-command`) all boot with it, so a
//! profile is recorded, and a boot is timed, on the very machine a person boots.
//!
//! The guest's disk is a qcow2 overlay whose read-only backing file is the
//! snapshot's *dated* image on the blockfs mount. The overlay and its backing are
//! wired with `-blockdev`, so the backing path recorded inside a kept overlay
//! never matters: a desktop's private mount point can change between runs, and a
//! kept overlay can never drift onto a newer week.
//!
//! What it is not: it does not fetch, verify or cache blocks (blockfs does; to
//! this crate the image is a read-only file), it draws no menu and asks nobody
//! anything (the menu does, and says why KVM is missing with what
//! [`detect_accel`] returns), and it has no command-line interface of its own.
//!
//! Typical use:
//! ```no_run
//! # fn demo() -> Result<(), circular_vm::VmError> {
//! # use circular_format::catalog::Firmware;
//! use circular_vm::{self as vm, Accel, Display, VmSettings, VmSpec};
//! let image = vm::resolve_image("/mnt/lbcas".as_ref(), "bookworm", "latest")?;
//! let spec = VmSpec::new("bookworm", &image.date, image.path, 2 << 30,
//!     Firmware::Bios, VmSettings::default(),
//!     Accel::Tcg, Display::None, "/var/tmp/blocks".into());
//! let mut running = vm::Vm::start(&spec, vm::Stdio::Terminal)?;
//! let outcome = running.wait()?;
//! println!("powered off: {}", outcome.powered_off);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use circular_format::catalog;

mod accel;
mod command;
mod error;
mod firmware;
mod overlay;
mod process;

pub use accel::{detect_accel, kvm_problem, Accel, AccelCheck};
pub use command::{presenter_qmp, qemu_args, BaseImage, DiskChanges, Display, VmSettings, VmSpec, DEFAULT_SCRATCH_GIB};
pub use error::VmError;
pub use firmware::{find_ovmf, FirmwareFiles, Ovmf, OVMF};
pub use overlay::{
    kept_overlay, overlay_dir, overlay_path, prepare_overlay, remove_kept_overlay, resolve_image, KeptOverlay,
    PreparedDisk, ResolvedImage,
};
pub use process::{Stdio, Vm, VmOutcome};
