//! Debian packages the appliance is made of, fetched with `apt-get download`
//! into a cache directory (never the host's /boot) and unpacked with `dpkg -x`.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Error;

fn run(cmd: &mut Command) -> Result<String, Error> {
    let out = cmd.output().map_err(|e| Error::Tool(format!("{cmd:?}: {e}")))?;
    if !out.status.success() {
        return Err(Error::Tool(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr).trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The versioned kernel package behind the `linux-image-amd64` metapackage.
pub fn kernel_package() -> Result<String, Error> {
    let out = run(Command::new("apt-cache").args(["depends", "linux-image-amd64"]))?;
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends:"))
        .map(|p| p.trim().to_string())
        .find(|p| p.starts_with("linux-image-"))
        .ok_or_else(|| Error::Tool("apt-cache depends linux-image-amd64 names no kernel (run apt-get update)".into()))
}

/// Downloads `package` into `dir` unless a .deb of it is already there.
pub fn download(dir: &Path, package: &str) -> Result<PathBuf, Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
    let find = || -> Result<Option<PathBuf>, Error> {
        let prefix = format!("{package}_");
        let mut hits: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::Io(dir.to_path_buf(), e))?
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
    run(Command::new("apt-get").arg("download").arg(package).current_dir(dir))?;
    find()?.ok_or_else(|| Error::Tool(format!("apt-get download {package} left no .deb in {}", dir.display())))
}

/// Unpacks `deb` into `dest` once (a stamp file records it).
pub fn extract(deb: &Path, dest: &Path) -> Result<(), Error> {
    let stamp = dest.join(".unpacked");
    if stamp.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(dest).map_err(|e| Error::Io(dest.to_path_buf(), e))?;
    run(Command::new("dpkg").arg("-x").arg(deb).arg(dest))?;
    std::fs::write(&stamp, deb.to_string_lossy().as_bytes()).map_err(|e| Error::Io(stamp, e))
}
