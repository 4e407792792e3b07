//! Debian packages the appliance is made of, fetched with `apt-get download`
//! into a cache directory (never the host's /boot) and unpacked with `dpkg -x`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::appliance::ApplianceError;
use crate::tool::Runner;

/// The versioned kernel package behind the `linux-image-amd64` metapackage.
pub fn kernel_package(runner: &mut Runner) -> Result<String, ApplianceError> {
    let out = runner.output("apt-cache depends", Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|p| p.trim().to_string())
        .find(|p| p.starts_with("linux-image-"))
        .ok_or(ApplianceError::NoKernelPackage)
}

/// Downloads `package` into `dir` unless a .deb of it is already there.
pub fn download(runner: &mut Runner, dir: &Path, package: &str) -> Result<PathBuf, ApplianceError> {
    std::fs::create_dir_all(dir).map_err(|e| ApplianceError::io(dir, e))?;
    let find = || -> Result<Option<PathBuf>, ApplianceError> {
        let prefix = format!("{package}_");
        let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| ApplianceError::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .collect();
        hits.sort();
        Ok(hits.pop())
    };
    if let Some(p) = find()? {
        return Ok(p);
    }
    eprintln!("initramfs: apt-get download {package}");
    runner.run("apt-get download", Command::new("apt-get").arg("download").arg(package).current_dir(dir))?;
    find()?.ok_or_else(|| ApplianceError::DebNotDownloaded { package: package.to_string(), dir: dir.to_path_buf() })
}

/// Unpacks `deb` into `dest` once (a stamp file records it).
pub fn extract(runner: &mut Runner, deb: &Path, dest: &Path) -> Result<(), ApplianceError> {
    let stamp = dest.join(".unpacked");
    if stamp.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dest).map_err(|e| ApplianceError::io(dest, e))?;
    runner.run("dpkg -x", Command::new("dpkg").arg("-x").arg(deb).arg(dest))?;
    std::fs::write(&stamp, deb.to_string_lossy().as_bytes()).map_err(|e| ApplianceError::io(stamp, e))
}
