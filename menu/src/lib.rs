//! menu: Circular's boot menu, VM launcher and desktop mode.
pub mod format;
pub mod vm;
