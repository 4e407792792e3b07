//! Circular's presenter: shows a running QEMU guest's screen on the PC's own screen and sends
//! the PC's keyboard and mouse to the guest, through QEMU's D-Bus display
//! (`-display dbus,p2p=yes,gl=off`).
//!
//! It connects over QMP (`getfd` + `add_client` with protocol `@dbus-display`: a private
//! socket, no D-Bus daemon), registers a listener on the first console, keeps a copy of the
//! guest's framebuffer from `Scanout` and `Update`, and draws it on an [`Output`]: the Linux
//! framebuffer device ([`FbdevOutput`], `/dev/fb0`) or memory ([`MemoryOutput`], for tests).
//! The picture is scaled to fill the screen, keeping its aspect, nearest-neighbour, and
//! follows mode changes. Input comes from evdev ([`evdev_input`]) and goes to QEMU's
//! `Keyboard` and absolute `Mouse` (the guest has a USB tablet); Ctrl+Alt+Esc leaves the guest.
//!
//! What it is not: no GPU acceleration (`gl=off`: `ScanoutDMABUF` is refused), no KMS/DRM
//! output yet (the firmware framebuffer and the KMS drivers' fbdev emulation are the outputs),
//! no cursor sprite (the guest draws its own pointer on VGA), no QEMU launching (`circular-vm`
//! does that) and no menu.
//!
//! Why not the `qemu-display` crate: 0.2.1 depends unconditionally on `usbredirhost`, whose
//! `-sys` crate links the C library libusbredirhost (build-time `-dev` package and a run-time
//! library on the stick) for USB redirection the stick does not use, and it needs zbus 5.13+
//! (Rust 1.85+) above the workspace's 1.82. The few `org.qemu.Display1` calls are declared
//! here with zbus directly.

pub mod display;
pub mod error;
pub mod evdev_input;
pub mod fbdev;
pub mod frame;
pub mod input;
pub mod output;
pub mod qmp;

pub use display::{Event, Pumped, Session};
pub use error::{Error, Result};
pub use fbdev::FbdevOutput;
pub use frame::{Frame, Rect};
pub use input::{Input, KeyOutcome, CHORD};
pub use output::{MemoryOutput, Output, Placement};
pub use qmp::Qmp;
