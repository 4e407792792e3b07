//! Command-line arguments of `image-build os` and their validation (pure logic, unit tested).
//! It does not touch the system; `mod.rs` acts on the validated [`Plan`].

use std::path::PathBuf;

// The workspace's one size parser: `--size 2G` reads as `--cache-max 2G` does.
use circular_format::units::parse_size;

use super::error::{OsError, Result};

pub const DEFAULT_SUITE: &str = "bookworm";
pub const DEFAULT_MIRROR: &str = "http://deb.debian.org/debian";
pub const DEFAULT_SIZE: u64 = 2 << 30;
/// Below this the kernel, its modules and systemd do not fit.
pub const MIN_SIZE: u64 = 768 << 20;

/// Build a bootable Debian raw disk image, or next week's snapshot of one.
#[derive(Debug, Clone, clap::Args)]
pub struct OsArgs {
    /// Debian suite (bookworm, trixie, …). With --update-from: defaults to the image's own.
    #[arg(long)]
    pub suite: Option<String>,

    /// The raw disk image to write.
    #[arg(long)]
    pub out: PathBuf,

    /// Disk size, e.g. 2G, 1536M (binary units). Not with --update-from.
    #[arg(long, value_parser = parse_size)]
    pub size: Option<u64>,

    /// Extra Debian packages, comma separated (e.g. openssh-server,curl).
    #[arg(long, value_delimiter = ',')]
    pub packages: Vec<String>,

    /// Debian mirror for the image's sources.list and the build.
    #[arg(long)]
    pub mirror: Option<String>,

    /// Make next week's snapshot: upgrade a copy of this image in place.
    #[arg(long, value_name = "PREVIOUS.img")]
    pub update_from: Option<PathBuf>,

    /// With --update-from: keep these packages at their version this week (apt-mark hold).
    #[arg(long, value_delimiter = ',')]
    pub hold: Vec<String>,

    /// With --update-from: let apt write straight into the image instead of through an
    /// overlay whose changes are then applied in place (for comparison; moves more blocks).
    #[arg(long, hide = true)]
    pub direct: bool,

    /// Keep downloaded .deb files here, so a rebuild downloads nothing.
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,

    /// Leave out kernel modules for hardware that QEMU does not have (Wi-Fi, Bluetooth,
    /// GPUs, TV capture, ASoC, staging): about a third of the kernel. Sticks to the image.
    #[arg(long)]
    pub slim_kernel: bool,

    /// Leave <suite>-updates and <suite>-security out of sources.list (point release only).
    #[arg(long)]
    pub no_updates: bool,

    /// Timestamp for every file and for the filesystem (default: $SOURCE_DATE_EPOCH,
    /// else the Date of the suite's Release file).
    #[arg(long, value_name = "SECONDS")]
    pub source_date_epoch: Option<i64>,

    /// Replace --out if it exists.
    #[arg(long)]
    pub force: bool,

    /// Keep the work directory (root tree, logs) for inspection.
    #[arg(long, hide = true)]
    pub keep_work: bool,
}

/// What to do, after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Build { size: u64 },
    Update { previous: PathBuf },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    /// None with --update-from and no --suite: read from the image.
    pub suite: Option<String>,
    pub mirror: String,
    pub packages: Vec<String>,
    pub updates: bool,
    pub epoch: Option<i64>,
    pub hold: Vec<String>,
}

/// Debian package names (policy 5.6.1), optionally with `=version` or `/release`.
pub fn valid_package(p: &str) -> bool {
    let (name, rest) = match p.find(['=', '/']) {
        Some(i) => (&p[..i], Some(&p[i + 1..])),
        None => (p, None),
    };
    let name_ok = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    let rest_ok = match rest {
        None => true,
        Some(r) => !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || "+-.~:".contains(c)),
    };
    name_ok && rest_ok
}

pub fn valid_suite(s: &str) -> bool {
    !s.is_empty() && s.len() <= 40 && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Splits, validates and de-duplicates a comma-separated package list.
fn package_list(flag: &str, items: &[String]) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for p in items {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        if !valid_package(p) {
            return Err(OsError::Usage(format!("{flag}: `{p}` is not a Debian package name")));
        }
        if !out.iter().any(|q| q == p) {
            out.push(p.to_string());
        }
    }
    Ok(out)
}

impl OsArgs {
    pub fn plan(&self) -> Result<Plan> {
        let usage = |m: String| Err(OsError::Usage(m));
        if let Some(s) = &self.suite {
            if !valid_suite(s) {
                return usage(format!("--suite `{s}` is not a Debian suite name (e.g. bookworm)"));
            }
        }
        let packages = package_list("--packages", &self.packages)?;
        let hold = package_list("--hold", &self.hold)?;
        if !hold.is_empty() && self.update_from.is_none() {
            return usage("--hold only applies to --update-from".into());
        }
        let mirror = self.mirror.clone().unwrap_or_else(|| DEFAULT_MIRROR.to_string());
        let mirror = mirror.trim_end_matches('/').to_string();
        let scheme_ok = ["http://", "https://", "file:///"].iter().any(|s| mirror.starts_with(s));
        if !scheme_ok || mirror.contains(char::is_whitespace) {
            return usage(format!("--mirror `{mirror}` must be an http://, https:// or file:/// URL"));
        }
        if self.out.as_os_str().is_empty() || self.out.file_name().is_none() {
            return usage("--out must name a file".to_string());
        }
        let mode = match &self.update_from {
            Some(prev) => {
                if self.size.is_some() {
                    return usage("--size cannot be used with --update-from: the image keeps its size".into());
                }
                if prev == &self.out {
                    return usage(
                        "--update-from and --out must be different files: the previous week stays as it is".into(),
                    );
                }
                Mode::Update { previous: prev.clone() }
            }
            None => {
                let size = self.size.unwrap_or(DEFAULT_SIZE);
                if size < MIN_SIZE {
                    return usage(format!("--size must be at least {} MiB", MIN_SIZE >> 20));
                }
                Mode::Build { size: size & !((1 << 20) - 1) }
            }
        };
        let suite = match (&mode, &self.suite) {
            (_, Some(s)) => Some(s.clone()),
            (Mode::Build { .. }, None) => Some(DEFAULT_SUITE.to_string()),
            (Mode::Update { .. }, None) => None,
        };
        let epoch = match self.source_date_epoch {
            Some(e) => Some(e),
            None => match std::env::var("SOURCE_DATE_EPOCH") {
                Ok(v) if !v.is_empty() => Some(
                    v.trim()
                        .parse::<i64>()
                        .map_err(|_| OsError::Usage(format!("SOURCE_DATE_EPOCH=`{v}` is not a number of seconds")))?,
                ),
                _ => None,
            },
        };
        if epoch.is_some_and(|e| !(0..=u32::MAX as i64).contains(&e)) {
            return usage("the source date epoch must fit in 32 bits (1970..2106)".into());
        }
        Ok(Plan { mode, suite, mirror, packages, updates: !self.no_updates, epoch, hold })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: OsArgs,
    }

    fn args(v: &[&str]) -> OsArgs {
        let mut all = vec!["t"];
        all.extend_from_slice(v);
        T::try_parse_from(all).map(|t| t.a).unwrap()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1536M"), Ok(1536 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert!(parse_size("G").is_err());
        assert!(parse_size("2X").is_err());
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("99999999999999T").is_err());
    }

    #[test]
    fn packages() {
        assert!(valid_package("openssh-server"));
        assert!(valid_package("g++"));
        assert!(valid_package("libc6=2.36-9+deb12u4"));
        assert!(valid_package("curl/bookworm-backports"));
        assert!(!valid_package("a"));
        assert!(!valid_package("Foo"));
        assert!(!valid_package("rm -rf"));
        assert!(!valid_package("x;reboot"));
        assert!(!valid_package("curl="));
    }

    #[test]
    fn build_defaults() {
        std::env::remove_var("SOURCE_DATE_EPOCH");
        let p = args(&["--out", "x.img"]).plan().unwrap();
        assert_eq!(p.mode, Mode::Build { size: DEFAULT_SIZE });
        assert_eq!(p.suite.as_deref(), Some("bookworm"));
        assert_eq!(p.mirror, DEFAULT_MIRROR);
        assert!(p.updates);
    }

    #[test]
    fn packages_are_split_and_deduplicated() {
        let p = args(&["--out", "x.img", "--packages", "curl,less,curl", "--packages", "vim-tiny"]).plan().unwrap();
        assert_eq!(p.packages, vec!["curl", "less", "vim-tiny"]);
    }

    #[test]
    fn rejects_bad_input() {
        assert!(args(&["--out", "x.img", "--size", "100M"]).plan().is_err());
        assert!(args(&["--out", "x.img", "--mirror", "ftp://x"]).plan().is_err());
        assert!(args(&["--out", "x.img", "--suite", "Bookworm"]).plan().is_err());
        assert!(args(&["--out", "x.img", "--packages", "a b"]).plan().is_err());
        assert!(args(&["--out", "x.img", "--update-from", "x.img"]).plan().is_err());
        assert!(args(&["--out", "y.img", "--update-from", "x.img", "--size", "2G"]).plan().is_err());
        assert!(args(&["--out", "y.img", "--hold", "linux-image-amd64"]).plan().is_err());
    }

    #[test]
    fn update_takes_suite_from_image() {
        let p = args(&["--out", "w2.img", "--update-from", "w1.img"]).plan().unwrap();
        assert_eq!(p.mode, Mode::Update { previous: "w1.img".into() });
        assert_eq!(p.suite, None);
    }

    #[test]
    fn size_rounds_down_to_mib() {
        let p = args(&["--out", "x.img", "--size", "1073741825"]).plan().unwrap();
        assert_eq!(p.mode, Mode::Build { size: 1 << 30 });
    }
}
