//! `netshape --listen 127.0.0.1:P --to 127.0.0.1:Q --rtt-ms 50 --rate-mbit 50`:
//! run the shaping proxy until SIGTERM or SIGINT, then print what it moved as
//! one JSON line on stdout. SIGUSR1 prints the line without stopping;
//! `--stats FILE` keeps the same line in a file, rewritten four times a second.
//! `--fault-file FILE` breaks the link while it runs: the file holds one word,
//! `none`, `drop` or `stall` (see [`netshape::Fault`]), read ten times a second;
//! a missing file means `none`. Each change is logged on stderr.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use netshape::{Fault, Proxy, Shape, StatsSnapshot};
use signal_hook::consts::{SIGINT, SIGTERM, SIGUSR1};

#[derive(Parser)]
#[command(name = "netshape", version, about = "A TCP proxy that adds round-trip delay and bandwidth caps")]
struct Cli {
    /// Address to listen on (port 0 picks a free one; the chosen one is printed).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: String,
    /// Where to forward each connection.
    #[arg(long, value_name = "ADDR:PORT")]
    to: String,
    /// Round-trip time added (half each way), in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 0.0)]
    rtt_ms: f64,
    /// Bandwidth shared by all connections, in Mbit/s, each way.
    #[arg(long, value_name = "MBIT")]
    rate_mbit: Option<f64>,
    /// Bandwidth of each connection, in Mbit/s, each way.
    #[arg(long, value_name = "MBIT")]
    per_conn_mbit: Option<f64>,
    /// Do not charge a round trip for each new connection's handshake.
    #[arg(long)]
    no_handshake: bool,
    /// Keep the figures (one JSON line) in this file while running.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Read the link's fault from this file ten times a second: `none`, `drop`
    /// (reset every connection, refuse new ones) or `stall` (move no bytes).
    /// A missing file means none; replace it atomically (write, then rename).
    #[arg(long, value_name = "FILE")]
    fault_file: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netshape: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bits(mbit: Option<f64>, what: &str) -> Result<Option<u64>, String> {
    match mbit {
        None => Ok(None),
        Some(m) if m.is_finite() && m > 0.0 => Ok(Some((m * 1e6) as u64)),
        Some(m) => Err(format!("{what} must be a positive number of Mbit/s, not {m}")),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    if !cli.rtt_ms.is_finite() || cli.rtt_ms < 0.0 {
        return Err(format!("--rtt-ms must be 0 or more, not {}", cli.rtt_ms));
    }
    let shape = Shape {
        rtt: Duration::from_secs_f64(cli.rtt_ms / 1000.0),
        total_bits_per_sec: bits(cli.rate_mbit, "--rate-mbit")?,
        per_conn_bits_per_sec: bits(cli.per_conn_mbit, "--per-conn-mbit")?,
        handshake: !cli.no_handshake,
    };
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGUSR1])
        .map_err(|e| format!("cannot handle signals: {e}"))?;
    let proxy = Proxy::start(&cli.listen, &cli.to, shape).map_err(|e| e.to_string())?;
    if let Some(path) = &cli.fault_file {
        let mut complained = String::new();
        poll_fault(path, &proxy, &mut complained);
    }
    eprintln!(
        "netshape: {} -> {}, rtt {} ms, total {}, per connection {}{}",
        proxy.local_addr(),
        cli.to,
        cli.rtt_ms,
        cli.rate_mbit.map_or("unlimited".into(), |m| format!("{m} Mbit/s")),
        cli.per_conn_mbit.map_or("unlimited".into(), |m| format!("{m} Mbit/s")),
        if cli.no_handshake { ", no handshake cost" } else { "" }
    );
    let writer = cli.stats.clone().map(|path| StatsWriter { path });
    let handle = signals.handle();
    // Scoped: the helpers read and steer the proxy while main waits for signals.
    std::thread::scope(|scope| {
        if let Some(w) = &writer {
            let (proxy, handle) = (&proxy, &handle);
            scope.spawn(move || loop {
                w.write(proxy.stats());
                if handle.is_closed() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(250));
            });
        }
        if let Some(path) = &cli.fault_file {
            let (proxy, handle) = (&proxy, &handle);
            scope.spawn(move || {
                let mut complained = String::new();
                while !handle.is_closed() {
                    poll_fault(path, proxy, &mut complained);
                    std::thread::sleep(FAULT_POLL);
                }
            });
        }
        let result = wait_for_stop(&mut signals, &proxy, writer.as_ref());
        handle.close();
        result
    })
}

/// How often `--fault-file` is read: a tenth of a second is far below any
/// deadline the tests measure, and costs nothing.
const FAULT_POLL: Duration = Duration::from_millis(100);

/// Reads the fault file once and applies a change. A bad word (or an
/// unreadable file) is said once per distinct problem and leaves the fault as it was.
fn poll_fault(path: &Path, proxy: &Proxy, complained: &mut String) {
    let wanted = match std::fs::read_to_string(path) {
        Ok(text) => text.parse::<Fault>().map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Fault::None),
        Err(e) => Err(format!("cannot read the fault file {}: {e}", path.display())),
    };
    match wanted {
        Ok(fault) => {
            complained.clear();
            if fault != proxy.fault() {
                eprintln!("netshape: fault {} (was {})", fault, proxy.fault());
                proxy.set_fault(fault);
            }
        }
        Err(problem) if problem != *complained => {
            eprintln!("netshape: {problem}; the fault stays {}", proxy.fault());
            *complained = problem;
        }
        Err(_) => {}
    }
}

struct StatsWriter {
    path: PathBuf,
}

impl StatsWriter {
    fn write(&self, s: StatsSnapshot) {
        let tmp = tmp_path(&self.path);
        let line = format!("{}\n", s.to_json());
        if std::fs::write(&tmp, line).and_then(|()| std::fs::rename(&tmp, &self.path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    path.with_file_name(name)
}

fn wait_for_stop(
    signals: &mut signal_hook::iterator::Signals,
    proxy: &Proxy,
    writer: Option<&StatsWriter>,
) -> Result<(), String> {
    for signal in signals.forever() {
        let s = proxy.stats();
        println!("{}", s.to_json());
        if let Some(w) = writer {
            w.write(s);
        }
        if signal != SIGUSR1 {
            return Ok(());
        }
    }
    Ok(())
}
