//! `blockfs`: mounts a Circular store as one read-only image file per snapshot.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use blockfs::status::Status;
use blockfs::{signing, ErrorKind, ErrorReport, MountConfig, Mounted};
use circular_format::units::{format_size, parse_size};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "blockfs",
    version,
    about = "Circular's virtual disk: a store's snapshots as read-only image files on a FUSE mount"
)]
struct Cli {
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mount a store and serve it until unmounted or signalled (SIGINT, SIGTERM).
    Mount(MountArgs),
    /// Print what a running mount is doing.
    Status {
        /// Where the store is mounted.
        mountpoint: PathBuf,
        /// Print the mount's status as JSON (the `status.json` it serves, shaped as
        /// `blockfs::status::Status`) instead of as text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct MountArgs {
    /// The publisher's public key(s), PEM (from `image-build keygen`).
    #[arg(long, value_name = "FILE")]
    public: PathBuf,
    /// Block cache directory (kept across mounts; works offline when full).
    /// Default: $XDG_CACHE_HOME/circular (~/.cache/circular).
    #[arg(long, value_name = "DIR", default_value_os_t = blockfs::cache::default_dir())]
    cache: PathBuf,
    /// Cache size cap, e.g. 2G (default: the free space of the cache's filesystem, less a tenth).
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    cache_max: Option<u64>,
    /// Use only the cache: no network at all.
    #[arg(long)]
    offline: bool,
    /// Seconds any wait on the network may take (a read, a failover) before failing with EIO.
    /// At start the catalog is waited for at most 20 s (10 s when a verified one is cached,
    /// which is then used), or this deadline if it is shorter.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    deadline: u64,
    /// Also trust the CA certificate(s) in FILE (PEM) for https:// sources, e.g. a
    /// private campus or company CA ($SSL_CERT_FILE and $SSL_CERT_DIR are read too).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Reach http:// and https:// sources through this HTTP proxy (http://host:port, with
    /// user:password@ if it asks for a login). Default: $https_proxy/$http_proxy, and
    /// $no_proxy for hosts reached directly.
    #[arg(long, value_name = "URL")]
    proxy: Option<String>,
    /// Fetches in flight at once.
    #[arg(long, value_name = "N", default_value_t = 16)]
    fetchers: usize,
    /// The most blocks read ahead of a sequential reader: the window starts at
    /// one block and doubles while what it fetched is read.
    #[arg(long, value_name = "BLOCKS", default_value_t = 32)]
    readahead: usize,
    /// Do not prefetch a snapshot's boot profile when its image is opened.
    #[arg(long)]
    no_prefetch: bool,
    /// Do not fill the rest of an opened snapshot into the cache once reads are
    /// quiet (then a boot caches only the blocks it read, and the snapshot may
    /// not boot offline).
    #[arg(long)]
    no_fill: bool,
    /// On unmount, write the blocks readers touched, per index, in first-touch order (JSON).
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// When the mount fails, also write why to FILE for programs, atomically, as JSON
    /// `{"kind": …, "message": …}` (kinds: docs/FORMAT.md); removed once a mount starts.
    #[arg(long, value_name = "FILE")]
    error_file: Option<PathBuf>,
    /// `URL[,URL…] MOUNTPOINT`, or only `MOUNTPOINT` with --offline. URLs are
    /// https://, http:// or file:// base URLs of the same store, tried in order.
    #[arg(value_name = "URL[,URL…] MOUNTPOINT", num_args = 1..=2, required = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_log(cli.verbose);
    let result = match cli.command {
        Command::Mount(args) => mount_reporting(args),
        Command::Status { mountpoint, json } => status(&mountpoint, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("blockfs: {message}");
            ExitCode::FAILURE
        }
    }
}

/// [`mount`], and its failure written to `--error-file` when given.
fn mount_reporting(args: MountArgs) -> Result<(), String> {
    let error_file = args.error_file.clone();
    let result = mount(args, error_file.as_deref());
    match (result, &error_file) {
        (Ok(()), _) => Ok(()),
        (Err(report), Some(path)) => {
            if let Err(e) = report.write(path) {
                eprintln!("blockfs: {e}");
            }
            Err(report.message)
        }
        (Err(report), None) => Err(report.message),
    }
}

fn usage(message: &str) -> ErrorReport {
    ErrorReport { kind: ErrorKind::Usage, message: message.to_string() }
}

fn mount(args: MountArgs, error_file: Option<&Path>) -> Result<(), ErrorReport> {
    let (urls, mountpoint) = match args.args.as_slice() {
        [mountpoint] if args.offline => (Vec::new(), PathBuf::from(mountpoint)),
        [_] => return Err(usage("give the store's URL(s) and the mount point (or --offline and the mount point)")),
        [first, last] if last.contains("://") && !first.contains("://") => {
            return Err(usage(&format!(
                "`{last}` looks like the store's URL, and it came last: the URL comes first, then the mount \
                 point (blockfs mount --public KEY {last} {first})"
            )))
        }
        [urls, mountpoint] => {
            (urls.split(',').filter(|u| !u.is_empty()).map(str::to_string).collect(), PathBuf::from(mountpoint))
        }
        _ => return Err(usage("too many arguments")),
    };
    let keys = signing::read_public(&args.public).map_err(|e| blockfs::Error::from(e).report())?;
    let mut config = MountConfig::new(urls, keys, args.cache);
    config.store.cache_max = args.cache_max;
    config.store.offline = args.offline;
    config.store.deadline = Duration::from_secs(args.deadline);
    config.store.network = blockfs::Network { ca_file: args.ca, proxy: args.proxy };
    config.fetchers = args.fetchers.max(1);
    config.readahead_blocks = args.readahead;
    config.prefetch = !args.no_prefetch;
    config.fill = !args.no_fill;
    let trace = args.trace.as_ref().map(|_| Arc::new(blockfs::trace::Trace::new()));
    config.trace = trace.clone();

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(signal, stop.clone())
            .map_err(|e| blockfs::Error::io("signal handlers", e).report())?;
    }
    let mounted = Mounted::start(config, &mountpoint).map_err(|e| e.report())?;
    // The last failure is over.
    if let Some(path) = error_file {
        let _ = std::fs::remove_file(path);
    }
    let catalog = mounted.loader().store().catalog();
    eprintln!(
        "blockfs: {} mounted: {} distributions, {} snapshots{}",
        mountpoint.display(),
        catalog.distributions.len(),
        catalog.snapshots().count(),
        if mounted.loader().store().catalog_from_cache() { " (catalog from the cache: offline)" } else { "" }
    );
    while !stop.load(Ordering::Relaxed) && !mounted.is_gone() {
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("blockfs: unmounting {}", mountpoint.display());
    mounted.unmount();
    if let (Some(path), Some(trace)) = (&args.trace, &trace) {
        std::fs::write(path, trace.to_json()).map_err(|e| blockfs::Error::io(path, e).report())?;
    }
    Ok(())
}

fn status(mountpoint: &Path, json: bool) -> Result<(), String> {
    let status = Status::read(mountpoint).map_err(|e| format!("{e} (is a blockfs mounted there?)"))?;
    if json {
        use std::io::Write;
        return std::io::stdout().write_all(&status.to_json()).map_err(|e| format!("stdout: {e}"));
    }
    let online = if status.offline_mode {
        "offline mode"
    } else if status.online {
        "online"
    } else {
        "no source reachable"
    };
    println!("network:   {online}");
    for s in &status.sources {
        let state = match (s.reachable, &s.last_error) {
            (None, _) => "not asked yet".to_string(),
            (Some(true), _) => "reachable".to_string(),
            (Some(false), Some(e)) => format!("unreachable: {e}"),
            (Some(false), None) => "unreachable".to_string(),
        };
        println!("  {}  {state}", s.url);
    }
    if let Some(e) = &status.last_error {
        // The reason the last failed read got EIO: what a user asks `status` for.
        println!("last error: {}", e.message);
    }
    println!(
        "catalog:   generated {}, expires {}{}",
        status.catalog_generated,
        status.catalog_expires,
        if status.catalog_from_cache { " (from the cache)" } else { "" }
    );
    println!(
        "fetched:   {} in {} blocks; {} in flight",
        format_size(status.fetched_bytes),
        status.fetched_blocks,
        status.in_flight
    );
    println!(
        "reads:     {} from the disk cache, {} from memory, {} from the network; {} corrupt copies refetched",
        status.cache_hits, status.memory_hits, status.cache_misses, status.corrupt_blocks
    );
    println!(
        "cache:     {} of {} used; {} blocks evicted",
        format_size(status.cache_bytes),
        format_size(status.cache_max_bytes),
        status.evicted_blocks
    );
    for s in &status.snapshots {
        let cached = match s.cached_fraction() {
            None => "index not fetched yet".to_string(),
            Some(f) if s.fully_cached() => format!("{:.0}% cached: boots offline", f * 100.0),
            Some(f) => format!("{:.0}% cached ({} of {} blocks)", f * 100.0, s.cached_blocks, s.total_blocks),
        };
        println!("  {}/{}  {cached}", s.distribution, s.date);
    }
    if let Some(p) = &status.prefetch {
        println!(
            "prefetch:  {}/{} {} of {} blocks{}",
            p.distribution,
            p.date,
            p.done_blocks,
            p.total_blocks,
            p.stopped.as_ref().map(|s| format!(" (stopped: {s})")).unwrap_or_default()
        );
    }
    for f in &status.fill {
        println!(
            "fill:      {}/{} {} of {} blocks cached, {}{}",
            f.distribution,
            f.date,
            f.done_blocks,
            f.total_blocks,
            f.state,
            f.stopped.as_ref().map(|s| format!(": {s}")).unwrap_or_default()
        );
    }
    if status.fill_blocks > 0 {
        println!(
            "           the fill fetched {} blocks, {} (not read by a guest)",
            status.fill_blocks,
            format_size(status.fill_bytes)
        );
    }
    Ok(())
}

/// Log lines to stderr: errors and warnings always, more with -v.
fn init_log(verbose: u8) {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) && r.target().starts_with("blockfs") {
                eprintln!("blockfs: {}: {}", r.level().as_str().to_lowercase(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(match verbose {
        0 => log::LevelFilter::Warn,
        1 => log::LevelFilter::Info,
        _ => log::LevelFilter::Debug,
    });
}
