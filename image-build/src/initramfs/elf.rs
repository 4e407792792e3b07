//! Shared-library closure of host binaries, from `ldd`. The appliance runs
//! Debian's own QEMU and e2fsprogs, so it needs exactly the libraries they
//! were linked against, at the paths the dynamic loader searches.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::appliance::ApplianceError;
use crate::tool::Runner;

/// Parses `ldd` output into the library paths it names.
/// Lines look like `libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)`,
/// `/lib64/ld-linux-x86-64.so.2 (0x...)` or `linux-vdso.so.1 (0x...)`.
pub fn parse_ldd(out: &str) -> Result<Vec<PathBuf>, String> {
    let mut libs = Vec::new();
    for line in out.lines().map(str::trim) {
        if line.is_empty() || line.contains("not a dynamic executable") || line.contains("statically linked") {
            continue;
        }
        if line.contains("=> not found") {
            return Err(line.to_string());
        }
        let path = match line.split_once("=>") {
            Some((_, rhs)) => rhs.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            libs.push(PathBuf::from(p));
        }
    }
    Ok(libs)
}

/// Libraries needed by `bins` (transitively: ldd already resolves the closure).
pub fn closure(runner: &mut Runner, bins: &[PathBuf]) -> Result<BTreeSet<PathBuf>, ApplianceError> {
    let mut all = BTreeSet::new();
    for b in bins {
        // ldd exits 1 for static binaries; its output is still meaningful, so the exit
        // status is not a verdict here.
        let out = runner.capture(Command::new("ldd").arg(b))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        let libs = parse_ldd(&text).map_err(|line| ApplianceError::MissingLibrary { program: b.clone(), line })?;
        all.extend(libs);
    }
    Ok(all)
}

/// Where a host file goes in the image: its directory with symlinks resolved
/// (Debian's merged /usr: /lib → /usr/lib), keeping the file's own name
/// (libfoo.so.1, not the libfoo.so.1.2.3 it points to), because the loader
/// looks the name up.
pub fn dest_for(host: &Path) -> PathBuf {
    let name = host.file_name().map(PathBuf::from).unwrap_or_default();
    match host.parent().map(std::fs::canonicalize) {
        Some(Ok(dir)) => dir.join(name),
        _ => host.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_lines() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        let libs = parse_ldd(out).unwrap();
        assert_eq!(
            libs,
            [PathBuf::from("/lib/x86_64-linux-gnu/libz.so.1"), PathBuf::from("/lib64/ld-linux-x86-64.so.2")]
        );
        assert!(parse_ldd("\tnot a dynamic executable\n").unwrap().is_empty());
        assert!(parse_ldd("\tlibfoo.so => not found\n").is_err());
    }
}
