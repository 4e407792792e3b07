//! `image-build`: the publisher's tool. It turns disk images into a Circular
//! store (content-addressed blocks, one index per snapshot, a signed catalog),
//! checks stores, and collects their garbage. It also builds the appliance:
//! the kernel + initramfs pair (`initramfs`) and the USB stick image (`usb`).
//!
//! It is not the client: nothing here mounts or boots (that is `blockfs` and
//! `circular`).

use image_build::{add, disk, feed, gc, initramfs, list, os, profile, signing_key_pair, store_dir, usb, verify};

use std::path::PathBuf;
use std::process::ExitCode;

use circular_format::block::DEFAULT_BLOCK_SIZE;
use circular_format::catalog::{Firmware, Media};
use circular_format::layout::profile_path;
use circular_format::signing;
use circular_format::units::parse_size;
use clap::{Parser, Subcommand, ValueEnum};

use image_build::error::{BuildError, Result};

/// How long a freshly signed catalog stays valid, unless told otherwise.
const DEFAULT_VALID_DAYS: u32 = 30;

/// `--valid-days`: a catalog must outlive its signing, or clients refuse it at once.
fn valid_days(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(0) => Err("0 days would make a catalog that has already expired; give 1 or more (the default is 30)".into()),
        Ok(days) => Ok(days),
        Err(e) => Err(format!("{e}: give a whole number of days, such as 30")),
    }
}

#[derive(Parser)]
#[command(name = "image-build", version, about = "Publish disk images as a Circular store")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Make an ed25519 key pair for signing a store's catalog.
    Keygen {
        /// Where to write the secret key (PEM, mode 0600; never overwritten).
        #[arg(long, value_name = "FILE")]
        secret: PathBuf,
        /// Where to write the public key (PEM), which clients carry.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Add a disk image (raw, qcow2, vmdk, vdi or vhdx) or an ISO (a CD-ROM) as a dated snapshot.
    Add(AddArgs),
    /// Check every index and block the catalog names; exit non-zero on any problem.
    Verify {
        /// The store's directory (a local copy of what the web server serves).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The public key the catalog must verify against.
        #[arg(long, value_name = "FILE")]
        public: PathBuf,
    },
    /// Keep the newest N snapshots of each distribution and delete what nothing kept uses.
    Gc {
        /// The store's directory (a local copy of what the web server serves).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// How many of each distribution's newest snapshots to keep.
        #[arg(long, value_name = "N")]
        keep: usize,
        /// The store's secret key (from `image-build keygen`).
        #[arg(long, value_name = "SECRETFILE")]
        key: PathBuf,
        /// How many days the signed catalog stays valid: clients refuse it after that,
        /// so re-sign (`sign`) or publish before then.
        #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_VALID_DAYS, value_parser = valid_days)]
        valid_days: u32,
    },
    /// Build the appliance kernel + initramfs from Debian's packages.
    Initramfs(initramfs::Args),
    /// Build the USB stick image (GRUB for BIOS and UEFI, kernel, initramfs, cache partition).
    Usb(usb::Args),
    /// Build a bootable Debian raw disk image, or next week's snapshot of one.
    Os(os::OsArgs),
    /// Make a raw disk image bootable by a BIOS: an MBR with one bootable Linux partition
    /// from 1 MiB to the end, GRUB's boot.img and a core.img before it (for test images;
    /// the filesystem at offset 1 MiB is the caller's).
    #[command(hide = true)]
    Disk(disk::Args),
    /// Boot a snapshot headless from the store and publish the order its boot reads blocks in.
    Profile(ProfileArgs),
    /// Re-sign the catalog with a new expiry, changing nothing else.
    Sign {
        /// The store's directory (a local copy of what the web server serves).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// The store's secret key (from `image-build keygen`).
        #[arg(long, value_name = "SECRETFILE")]
        key: PathBuf,
        /// How many days the signed catalog stays valid: clients refuse it after that,
        /// so re-sign (`sign`) or publish before then.
        #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_VALID_DAYS, value_parser = valid_days)]
        valid_days: u32,
    },
    /// Print the catalog as a table, newest snapshot first.
    List {
        /// The store's directory (a local copy of what the web server serves).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Print JSON for scripts (shape: `image_build::list::render_json`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write an RSS 2.0 feed of the snapshots (newest first; the index hash as checksum).
    Feed {
        /// The store's directory (a local copy of what the web server serves).
        #[arg(long, value_name = "DIR")]
        store: PathBuf,
        /// Where the store is published, for the feed's links (default: file://DIR/).
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// Write the feed here instead of to stdout.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(clap::Args)]
struct AddArgs {
    /// The store's directory (a local copy of what the web server serves).
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Distribution name: a-z, 0-9, '.', '_', '-' (it becomes a directory on the mount).
    #[arg(long, value_name = "NAME")]
    distro: String,
    /// Snapshot date, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: String,
    /// Distribution title shown in the menu (kept from earlier snapshots if omitted).
    #[arg(long, value_name = "TEXT")]
    title: Option<String>,
    /// Block size: a power of two from 4K to 16M.
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value_t = u64::from(DEFAULT_BLOCK_SIZE))]
    block_size: u64,
    /// zstd level, 1 (fastest) to 19 (smallest); clients decompress all levels equally fast.
    #[arg(long, value_name = "N", default_value_t = circular_format::block::DEFAULT_LEVEL)]
    level: i32,
    /// Guest memory the menu proposes, in MiB, at least 32 (default: 1024 for a disk; for a
    /// CD, 1024 plus half its size).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(32..))]
    memory_mib: Option<u32>,
    /// Guest CPUs the menu proposes, 1 to 255.
    #[arg(long, value_name = "N", default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=255))]
    cpus: u32,
    /// The firmware the VM boots the image with: bios (SeaBIOS) or uefi (OVMF).
    #[arg(long, value_enum, default_value_t = FirmwareArg::Bios)]
    firmware: FirmwareArg,
    /// A line about this snapshot for the menu.
    #[arg(long, value_name = "TEXT", default_value = "")]
    notes: String,
    /// How the VM attaches the image (default: cdrom for an ISO 9660 image, else disk).
    #[arg(long, value_enum)]
    media: Option<MediaArg>,
    /// How to log in, shown in the menu, e.g. "root, no password" (default: IMAGE.login if present).
    #[arg(long, value_name = "TEXT")]
    login: Option<String>,
    /// Publish over an existing snapshot of the same distribution and date (refused without
    /// it). The new entry replaces the old one whole: give its notes, login and source again.
    #[arg(long)]
    replace: bool,
    /// Where the distribution publishes the image, recorded in the catalog (needs --source-sha256).
    #[arg(long, value_name = "URL", requires = "source_sha256")]
    source_url: Option<String>,
    /// The SHA-256 the distribution publishes for the image: a different file is refused
    /// before the store is touched; the right one is recorded in the catalog.
    #[arg(long, value_name = "HEX")]
    source_sha256: Option<String>,
    /// The store's secret key (from `image-build keygen`).
    #[arg(long, value_name = "SECRETFILE")]
    key: PathBuf,
    /// How many days the signed catalog stays valid: clients refuse it after that,
    /// so re-sign (`sign`) or publish before then.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_VALID_DAYS, value_parser = valid_days)]
    valid_days: u32,
    /// The disk image to publish.
    image: PathBuf,
}

#[derive(clap::Args)]
struct ProfileArgs {
    /// The store's directory (a local copy of what the web server serves).
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Distribution name, as in the catalog.
    #[arg(long, value_name = "NAME")]
    distro: String,
    /// Snapshot date, YYYY-MM-DD.
    #[arg(long, value_name = "YYYY-MM-DD")]
    date: String,
    /// Give up waiting for the login prompt after this long; what was read is published.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// The store's secret key: the catalog is re-signed with the profile in it.
    #[arg(long, value_name = "SECRETFILE")]
    key: PathBuf,
    /// Verify the catalog with this public key (default: the secret key's own).
    #[arg(long, value_name = "FILE")]
    public: Option<PathBuf>,
    /// tcg works everywhere; kvm is faster where /dev/kvm works.
    #[arg(long, value_enum, default_value_t = AccelArg::Tcg)]
    accel: AccelArg,
    /// Keep the guest's serial console output in this file.
    #[arg(long, value_name = "FILE")]
    serial_log: Option<PathBuf>,
    /// The serial console text that means the boot is done.
    #[arg(long, value_name = "TEXT", default_value = profile::LOGIN_PROMPT)]
    prompt: String,
    /// How many days the signed catalog stays valid: clients refuse it after that,
    /// so re-sign (`sign`) or publish before then.
    #[arg(long, value_name = "DAYS", default_value_t = DEFAULT_VALID_DAYS, value_parser = valid_days)]
    valid_days: u32,
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Tcg,
    Kvm,
}

#[derive(Clone, Copy, ValueEnum)]
enum MediaArg {
    Disk,
    Cdrom,
}

#[derive(Clone, Copy, ValueEnum)]
enum FirmwareArg {
    Bios,
    Uefi,
}

fn main() -> ExitCode {
    match run(Cli::parse().command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("image-build: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Keygen { secret, public } => {
            signing_key_pair(&secret, &public)?;
            println!("secret key: {} (keep it private)", secret.display());
            println!("public key: {} (give it to clients: --public)", public.display());
        }
        Command::Add(a) => {
            let opts = add::AddOptions {
                store: a.store,
                distro: a.distro,
                date: a.date,
                title: a.title,
                block_size: a.block_size,
                level: a.level,
                memory_mib: a.memory_mib,
                cpus: a.cpus,
                firmware: match a.firmware {
                    FirmwareArg::Bios => Firmware::Bios,
                    FirmwareArg::Uefi => Firmware::Uefi,
                },
                notes: a.notes,
                media: a.media.map(|m| match m {
                    MediaArg::Disk => Media::Disk,
                    MediaArg::Cdrom => Media::Cdrom,
                }),
                login: a.login,
                replace: a.replace,
                source_url: a.source_url,
                source_sha256: a.source_sha256,
                key: a.key,
                valid_days: a.valid_days,
                image: a.image,
            };
            add::add(&opts)?;
        }
        Command::Verify { store, public } => {
            let problems = verify::verify(&store, &public)?;
            if !problems.is_empty() {
                for p in &problems {
                    println!("{p}");
                }
                println!("verify: {} problems in {}", problems.len(), store.display());
                return Ok(ExitCode::FAILURE);
            }
            println!("verify: {} is sound", store.display());
        }
        Command::Gc { store, keep, key, valid_days } => {
            gc::gc(&store, keep, &key, valid_days)?;
        }
        Command::Initramfs(a) => initramfs::run(&a)?,
        Command::Usb(a) => usb::run_usb(&a)?,
        Command::Os(a) => os::run(&a)?,
        Command::Disk(a) => disk::run(&a)?,
        Command::Profile(a) => {
            let opts = profile::ProfileOptions {
                store: a.store,
                distro: a.distro,
                date: a.date,
                timeout: std::time::Duration::from_secs(a.timeout),
                key: a.key,
                public: a.public,
                accel: match a.accel {
                    AccelArg::Tcg => profile::Accel::Tcg,
                    AccelArg::Kvm => profile::Accel::Kvm,
                },
                valid_days: a.valid_days,
                serial_log: a.serial_log,
                prompt: a.prompt,
            };
            let r = profile::profile(&opts)?;
            println!(
                "profile {}: {} blocks first read in {:.1} s{}; catalog re-signed",
                profile_path(&r.profile_id),
                r.blocks,
                r.boot_time.as_secs_f64(),
                if r.reached_login { " to the login prompt" } else { " (timeout: no login prompt)" }
            );
        }
        Command::Sign { store, key, valid_days } => {
            let key = signing::read_secret(&key)?;
            let dir = store_dir::StoreDir::open_for_writing(&store)?;
            let mut catalog = dir.read_catalog(&key)?;
            if catalog.distributions.is_empty() {
                return Err(BuildError::Usage(format!("{} has no snapshots to sign", store.display())));
            }
            dir.write_catalog(&mut catalog, &key, valid_days)?;
            println!("signed {}; expires {}", store.display(), circular_format::catalog::rfc3339(catalog.expires));
        }
        Command::List { store, json } => list::run(&store, json, &mut std::io::stdout().lock())?,
        Command::Feed { store, base_url, out } => feed::run(&feed::FeedOptions { store, base_url, out })?,
    }
    Ok(ExitCode::SUCCESS)
}
