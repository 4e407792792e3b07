//! The `circular` program's command line: desktop mode when no subcommand is
//! given (see [`crate::desktop`]), or `qemu-command` ([`crate::qemu_command`]).

use clap::{Parser, Subcommand};

use crate::{desktop, qemu_command};

/// `circular [OPTIONS]` or `circular qemu-command …`.
#[derive(Debug, Parser)]
#[command(
    name = "circular",
    version,
    about = "Boot operating system snapshots from a Circular store, in QEMU, on this desktop",
    after_help = "Keys: arrows or j/k move, Enter opens or boots, Esc or Backspace goes back, q quits.",
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// A tool instead of desktop mode.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Desktop mode's options.
    #[command(flatten)]
    pub desktop: desktop::Args,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the QEMU command line Circular runs for a disk image, one argument
    /// per line, and run nothing (for benchmarks, and to see what circular starts).
    QemuCommand(qemu_command::Args),
}
