//! The VM launcher: builds the QEMU command for a snapshot, starts it, waits for
//! it, and says why it failed. Shared by desktop mode and the appliance's PID 1
//! (through [`crate::run`]), and usable on its own.
//!
//! The guest's disk is a qcow2 overlay in the cache directory whose read-only
//! backing file is the snapshot's *dated* image on the blockfs mount. The
//! overlay and its backing are wired with `-blockdev`, so the backing path
//! recorded inside a kept overlay never matters: a desktop's private mount point
//! can change between runs, and a kept overlay can never drift onto a newer week.
//!
//! Typical use:
//! ```no_run
//! # fn demo() -> Result<(), circular_vm::VmError> {
//! use circular_vm::{self as vm, Accel, Display, VmSettings, VmSpec, DiskChanges};
//! let image = vm::resolve_image("/mnt/lbcas".as_ref(), "bookworm", "latest")?;
//! let spec = VmSpec::new("bookworm", &image.date, image.path, 2 << 30,
//!     blockfs::catalog::Firmware::Bios, VmSettings::default(),
//!     Accel::Tcg, Display::None, "/var/tmp/blocks".into());
//! let mut running = vm::Vm::start(&spec, vm::Stdio::Terminal)?;
//! let outcome = running.wait()?;
//! println!("powered off: {}", outcome.powered_off);
//! # Ok(()) }
//! ```

// format: moves to circular_format::catalog
use blockfs::catalog;

mod accel;
mod command;
mod error;
mod overlay;
mod process;

pub use accel::{detect_accel, kvm_problem, Accel, AccelCheck};
pub use command::{qemu_args, DiskChanges, Display, FirmwareFiles, VmSettings, VmSpec};
pub use error::VmError;
pub use overlay::{
    kept_overlay, overlay_dir, overlay_path, prepare_overlay, remove_kept_overlay, resolve_image, KeptOverlay,
    PreparedDisk, ResolvedImage,
};
pub use process::{Stdio, Vm, VmOutcome};
