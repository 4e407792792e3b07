//! Desktop mode: the `circular` program on an ordinary Linux with QEMU and FUSE.
//! It mounts blockfs on a private mount point, shows the menu in this terminal,
//! runs the chosen snapshot in a QEMU window (or on this terminal), and
//! unmounts on every way out: quit, ctrl-c, SIGTERM, SIGHUP and errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use blockfs::mount::{MountConfig, Mounted};

use crate::{run_until, show_problem, Accel, Display, MenuConfig, ProblemChoice};

/// Desktop mode's options (the `circular` program without a subcommand; see [`crate::cli`]).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Store base URL(s), comma-separated, tried in order (http://, https://, file://).
    #[arg(long, value_delimiter = ',', env = "CIRCULAR_SERVER")]
    pub server: Vec<String>,
    /// The publisher's ed25519 public key file.
    #[arg(long, env = "CIRCULAR_PUBLIC", default_value = "/etc/circular/public.key")]
    pub public: PathBuf,
    /// Block cache directory; VM overlays go in its `overlays/`. Default:
    /// $XDG_CACHE_HOME/circular (~/.cache/circular).
    #[arg(long, default_value_os_t = blockfs::cache::default_dir())]
    pub cache: PathBuf,
    /// Cache cap, e.g. 20G or 512M (binary units); default: most of the cache's filesystem.
    #[arg(long, value_parser = blockfs::format::units::parse_size)]
    pub cache_max: Option<u64>,
    /// Use only the cache: no server is asked.
    #[arg(long)]
    pub offline: bool,
    /// Also trust the CA certificate(s) in FILE (PEM) for https:// servers with a private CA.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Reach the servers through this HTTP proxy (http://host:port). Default:
    /// $https_proxy/$http_proxy, and $no_proxy for hosts reached directly.
    #[arg(long, value_name = "URL")]
    pub proxy: Option<String>,
    /// kvm or tcg (default: KVM when it works, else TCG after asking).
    #[arg(long, value_parser = |s: &str| s.parse::<Accel>())]
    pub accel: Option<Accel>,
    /// sdl, gtk, curses or none (serial console on this terminal).
    /// Default: sdl with a graphical session, else curses.
    #[arg(long, value_parser = |s: &str| s.parse::<Display>())]
    pub display: Option<Display>,
}

#[derive(Debug, thiserror::Error)]
pub enum DesktopError {
    #[error("no server: give --server URL[,URL…] (or set CIRCULAR_SERVER), or --offline")]
    NoServer,
    #[error("public key: {0}")]
    Key(#[source] blockfs::Error),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("signal handlers: {0}")]
    Signals(#[source] std::io::Error),
    #[error(transparent)]
    Menu(#[from] crate::MenuError),
}

/// The display to use when none was asked for.
pub fn default_display() -> Display {
    let graphical = ["DISPLAY", "WAYLAND_DISPLAY"].iter().any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()));
    if graphical {
        Display::Sdl
    } else {
        Display::Curses
    }
}

/// A directory only this user can enter, removed when dropped (after the
/// mount on it is gone).
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<PrivateDir, DesktopError> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let path = base.join(format!("circular-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| DesktopError::Io { path: path.clone(), source })?;
        Ok(PrivateDir(path))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs desktop mode to the end; the mount is gone when this returns.
pub fn run(args: Args) -> Result<(), DesktopError> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(DesktopError::Signals)?;
    }
    if args.server.is_empty() && !args.offline {
        return Err(DesktopError::NoServer);
    }
    let keys = blockfs::signing::read_public(&args.public).map_err(|e| DesktopError::Key(e.into()))?;
    std::fs::create_dir_all(&args.cache).map_err(|source| DesktopError::Io { path: args.cache.clone(), source })?;
    let dir = PrivateDir::create()?;
    let mut config = MountConfig::new(args.server.clone(), keys, args.cache.clone());
    config.store.cache_max = args.cache_max;
    config.store.offline = args.offline;
    config.store.network = blockfs::Network { ca_file: args.ca.clone(), proxy: args.proxy.clone() };
    let Some(mounted) = mount(config, &dir.0, &stop)? else {
        return Ok(());
    };
    let menu = MenuConfig {
        mountpoint: mounted.mountpoint().to_path_buf(),
        cache_dir: args.cache.clone(),
        accel: args.accel,
        display: args.display.unwrap_or_else(default_display),
        appliance: false,
        boot_mode: None,
    };
    let result = run_until(menu, &stop);
    // Unmount before the directory goes (PrivateDir drops after this).
    mounted.unmount();
    result.map(|_| ()).map_err(DesktopError::from)
}

/// Mounts, showing a problem screen (with retry) while it fails. `None`: the
/// person quit.
fn mount(config: MountConfig, mountpoint: &Path, stop: &AtomicBool) -> Result<Option<Mounted>, DesktopError> {
    loop {
        // Printed before the menu takes the screen: the catalog fetch can wait
        // for the network for a while.
        if config.store.offline {
            eprintln!("circular: mounting from the cache in {}…", config.store.cache_dir.display());
        } else {
            eprintln!("circular: fetching the catalog from {}…", config.store.sources.join(", "));
        }
        match Mounted::start(config.clone(), mountpoint) {
            Ok(m) => return Ok(Some(m)),
            Err(e) => match show_problem(&e, false, &config.store.cache_dir, stop)? {
                ProblemChoice::Retry => continue,
                ProblemChoice::Exit(_) => return Ok(None),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn arguments() {
        let cli = Cli::try_parse_from([
            "circular",
            "--server",
            "http://a/,http://b/",
            "--public",
            "k.pub",
            "--accel",
            "tcg",
            "--display",
            "none",
        ])
        .unwrap();
        assert!(cli.command.is_none());
        let a = cli.desktop;
        assert_eq!(a.server, ["http://a/", "http://b/"]);
        assert_eq!(a.accel, Some(Accel::Tcg));
        assert_eq!(a.display, Some(Display::None));
        assert_eq!(a.cache, blockfs::cache::default_dir());
        let err = Cli::try_parse_from(["circular", "--display", "vnc"]).unwrap_err();
        assert!(err.to_string().contains("not sdl, gtk, curses, presenter or none"), "{err}");
        let err = Cli::try_parse_from(["circular", "--accel", "hvf"]).unwrap_err();
        assert!(err.to_string().contains("not kvm or tcg"), "{err}");
        // Desktop mode's options belong to desktop mode, not to a subcommand.
        assert!(Cli::try_parse_from(["circular", "--offline", "qemu-command"]).is_err());
    }
}
