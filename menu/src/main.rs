//! `circular`: desktop mode, or `circular qemu-command`. See `menu::cli`,
//! `menu::desktop` and docs/MENU.md.

use std::process::ExitCode;

use clap::Parser;
use menu::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => exit(menu::desktop::run(cli.desktop)),
        Some(Command::QemuCommand(args)) => exit(menu::qemu_command::run(&args, &mut std::io::stdout().lock())),
    }
}

/// Success, or the error on stderr and a failure status.
fn exit<E: std::fmt::Display>(result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("circular: {e}");
            ExitCode::FAILURE
        }
    }
}
