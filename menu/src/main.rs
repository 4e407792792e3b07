//! `circular`: desktop mode. See `menu::desktop` and docs/MENU.md.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = menu::desktop::Args::parse();
    match menu::desktop::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("circular: {e}");
            ExitCode::FAILURE
        }
    }
}
