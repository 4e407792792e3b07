//! The Circular appliance's PID 1, as a library for its two binaries.
//!
//! `circular-init` (src/main.rs) is PID 1: kernel filesystems, modules, network, the cache
//! partition, and the two long-running children, blockfs and the menu. `circular-menu`
//! (src/bin/circular-menu.rs) is the menu as the appliance runs it. They share
//! [`protocol`]: paths, exit codes, "is the store mounted". The library also lets the fuzz
//! targets and tests reach the parsers fed from outside (the DHCP client, the kernel command
//! line).
//!
//! It is not a general init system: no service files, no runlevels, no getty.

pub mod bootmode;
pub mod cache;
pub mod cmdline;
pub mod console;
pub mod firmware;
pub mod kmod;
pub mod log;
pub mod mounts;
pub mod net;
pub mod procs;
pub mod protocol;
pub mod services;
