//! Embeds the build time, a lower bound on the clock (docs/FORMAT.md,
//! "Freshness"): `SOURCE_DATE_EPOCH` when set (reproducible builds), else the
//! date of the git commit being built, else 0 (no bound). Never the wall clock,
//! so the same source builds the same binary.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or_else(|| {
            let out = Command::new("git").args(["log", "-1", "--format=%ct"]).output().ok()?;
            String::from_utf8(out.stdout).ok()?.trim().parse::<i64>().ok()
        })
        .unwrap_or(0);
    println!("cargo:rustc-env=CIRCULAR_BUILD_TIME={epoch}");
}
