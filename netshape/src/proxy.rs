//! The proxy: an accept loop, and per connection two directions, each a reader
//! thread (reads, timestamps, books the link) and a writer thread (waits for
//! each chunk's delivery time, writes).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::fault::{reset, Fault, FaultGate};
use crate::pacer::Pacer;
use crate::queue::{Item, Queue};
use crate::stats::{RequestCounter, Stats, StatsSnapshot};
use crate::Error;

/// Bytes one direction of one connection may hold inside the proxy (the
/// emulated link's window). 4 MiB covers the bandwidth-delay product of every
/// shape the benchmarks use (200 Mbit/s x 100 ms = 2.5 MB).
pub const QUEUE_BYTES: usize = 4 << 20;

/// Largest piece read at once: small enough that pacing is smooth (16 KiB is
/// 2.6 ms at 50 Mbit/s).
const CHUNK: usize = 16 << 10;

/// The link to emulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shape {
    /// Round-trip time; half is added in each direction.
    pub rtt: Duration,
    /// Cap shared by all connections, in bits per second, each way.
    pub total_bits_per_sec: Option<u64>,
    /// Cap for each connection, in bits per second, each way.
    pub per_conn_bits_per_sec: Option<u64>,
    /// Charge one RTT before a connection's first request (TCP's handshake).
    pub handshake: bool,
}

impl Shape {
    /// A link with only a delay.
    pub fn delay(rtt: Duration) -> Shape {
        Shape { rtt, total_bits_per_sec: None, per_conn_bits_per_sec: None, handshake: true }
    }

    fn check(&self) -> Result<(), Error> {
        for (name, v) in [("total rate", self.total_bits_per_sec), ("per-connection rate", self.per_conn_bits_per_sec)]
        {
            if v == Some(0) {
                return Err(Error::Shape(format!("the {name} must be above 0")));
            }
        }
        if self.rtt > Duration::from_secs(60) {
            return Err(Error::Shape(format!("an RTT of {:?} is not a link", self.rtt)));
        }
        Ok(())
    }
}

/// A running proxy. Dropping it (or [`Proxy::stop`]) closes the listener and
/// every connection.
pub struct Proxy {
    addr: SocketAddr,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    stopping: AtomicBool,
    /// Both sockets of each live connection, so that `stop` and the drop fault can close them.
    live: Mutex<HashMap<u64, [TcpStream; 2]>>,
    /// The fault in force; every pump checks it before it moves bytes.
    fault: FaultGate,
}

impl Proxy {
    /// Listens on `listen` (port 0 picks one) and forwards to `target`.
    pub fn start(listen: &str, target: &str, shape: Shape) -> Result<Proxy, Error> {
        shape.check()?;
        let target: SocketAddr = target
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| Error::Shape(format!("cannot resolve the target {target:?}; give HOST:PORT")))?;
        let listener =
            TcpListener::bind(listen).map_err(|source| Error::Listen { addr: listen.to_string(), source })?;
        let addr = listener.local_addr().map_err(|source| Error::Listen { addr: listen.to_string(), source })?;
        let stats = Arc::new(Stats::default());
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            live: Mutex::new(HashMap::new()),
            fault: FaultGate::default(),
        });
        let total = shape.total_bits_per_sec.map(|b| Arc::new([Pacer::new(b), Pacer::new(b)]));
        let acceptor = {
            let (stats, shared) = (stats.clone(), shared.clone());
            std::thread::Builder::new()
                .name("netshape-accept".into())
                .spawn(move || accept_loop(listener, target, shape, total, stats, shared))
                .map_err(Error::Thread)?
        };
        Ok(Proxy { addr, stats, shared, acceptor: Some(acceptor) })
    }

    /// The address the proxy listens on (with the port chosen when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.shared.fault.get()
    }

    /// Switches the link's fault, at once, for open and new connections alike.
    /// [`Fault::Drop`] resets every open connection (an RST to both ends) and
    /// every new one as soon as it is accepted; [`Fault::Stall`] keeps every
    /// connection open but moves no byte until the fault changes again, when
    /// what was held flows on; [`Fault::None`] lets everything flow.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.fault.set(fault);
        if fault == Fault::Drop {
            let live = std::mem::take(&mut *self.shared.live.lock().unwrap_or_else(|e| e.into_inner()));
            for [a, b] in live.values() {
                reset(a);
                reset(b);
                self.stats.reset();
            }
        }
    }

    /// Stops accepting, closes every connection, and returns the final figures.
    pub fn stop(mut self) -> StatsSnapshot {
        self.shutdown();
        self.stats.snapshot()
    }

    fn shutdown(&mut self) {
        let Some(acceptor) = self.acceptor.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Pumps held by a stall wake up and find their sockets closed.
        self.shared.fault.set(Fault::None);
        // The accept loop blocks in accept(): one connection wakes it to see the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        let _ = acceptor.join();
        let live = std::mem::take(&mut *self.shared.live.lock().unwrap_or_else(|e| e.into_inner()));
        for [a, b] in live.values() {
            let _ = a.shutdown(Shutdown::Both);
            let _ = b.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    shape: Shape,
    total: Option<Arc<[Pacer; 2]>>,
    stats: Arc<Stats>,
    shared: Arc<Shared>,
) {
    let ids = AtomicU64::new(0);
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let client = match client {
            Ok(c) => c,
            Err(e) => {
                eprintln!("netshape: accept: {e}");
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if shared.fault.get() == Fault::Drop {
            // A link that is down: the client's connect "succeeds" (the kernel
            // completed it) and the first thing it sees is a reset.
            reset(&client);
            stats.reset();
            continue;
        }
        let accepted = Instant::now();
        let server = match TcpStream::connect(target) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("netshape: cannot reach {target}: {e}; dropping a connection");
                continue;
            }
        };
        stats.connection();
        let id = ids.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = start_connection(id, client, server, accepted, shape, total.clone(), &stats, &shared) {
            eprintln!("netshape: connection {id}: {e}");
            shared.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
        }
    }
}

/// One direction of one connection.
struct Direction {
    up: bool,
    from: TcpStream,
    to: TcpStream,
    /// Client to server: held until the emulated handshake is done.
    hold_until: Option<Instant>,
    half_rtt: Duration,
    per_conn: Option<Pacer>,
    total: Option<Arc<[Pacer; 2]>>,
}

#[allow(clippy::too_many_arguments)]
fn start_connection(
    id: u64,
    client: TcpStream,
    server: TcpStream,
    accepted: Instant,
    shape: Shape,
    total: Option<Arc<[Pacer; 2]>>,
    stats: &Arc<Stats>,
    shared: &Arc<Shared>,
) -> std::io::Result<()> {
    // Chunks are already paced; Nagle plus delayed ACKs would add 40 ms stalls.
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    {
        let mut live = shared.live.lock().unwrap_or_else(|e| e.into_inner());
        // `set_fault` sets the fault before it takes this lock: a connection
        // accepted as the link went down is either in the map it empties or cut here.
        if shared.fault.get() == Fault::Drop {
            reset(&client);
            reset(&server);
            stats.reset();
            return Ok(());
        }
        live.insert(id, [client.try_clone()?, server.try_clone()?]);
    }
    let pending = Arc::new(AtomicUsize::new(2));
    let half_rtt = shape.rtt / 2;
    for up in [true, false] {
        let (from, to) =
            if up { (client.try_clone()?, server.try_clone()?) } else { (server.try_clone()?, client.try_clone()?) };
        let dir = Direction {
            up,
            from,
            to,
            hold_until: (up && shape.handshake).then(|| accepted + shape.rtt),
            half_rtt,
            per_conn: shape.per_conn_bits_per_sec.map(Pacer::new),
            total: total.clone(),
        };
        let queue = Arc::new(Queue::new(QUEUE_BYTES));
        let to = dir.to.try_clone()?;
        let from = dir.from.try_clone()?;
        let (wq, wstats, wshared, wpending) = (queue.clone(), stats.clone(), shared.clone(), pending.clone());
        let (rstats, rshared) = (stats.clone(), shared.clone());
        let name = if up { "up" } else { "down" };
        std::thread::Builder::new()
            .name(format!("netshape-{id}-{name}-r"))
            .spawn(move || read_side(dir, &queue, &rstats, &rshared))?;
        std::thread::Builder::new().name(format!("netshape-{id}-{name}-w")).spawn(move || {
            write_side(up, to, from, &wq, &wstats, &wshared);
            // The last direction to finish forgets the connection.
            if wpending.fetch_sub(1, Ordering::SeqCst) == 1 {
                wshared.live.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            }
        })?;
    }
    Ok(())
}

fn read_side(mut dir: Direction, queue: &Queue, stats: &Stats, shared: &Shared) {
    let mut buf = vec![0u8; CHUNK];
    let mut counter = RequestCounter::default();
    let mut last = Instant::now();
    loop {
        if !queue.wait_for_room(CHUNK) {
            return;
        }
        // A stalled link reads nothing: the sender's bytes wait in its socket.
        shared.fault.wait_while_stalled(&shared.stopping);
        match dir.from.read(&mut buf) {
            Ok(0) => {
                // The sender's FIN travels the link like data.
                let now = Instant::now();
                queue.push(Item::Eof { deliver_at: last.max(now + dir.half_rtt) });
                return;
            }
            Ok(n) => {
                let now = Instant::now();
                let ready = dir.hold_until.map_or(now, |h| h.max(now));
                // The slower of the connection's link and the shared one decides.
                let mut left_link = ready;
                if let Some(p) = &dir.per_conn {
                    left_link = p.book(n, ready);
                }
                if let Some(t) = &dir.total {
                    left_link = left_link.max(t[usize::from(dir.up)].book(n, ready));
                }
                let deliver_at = left_link + dir.half_rtt;
                last = deliver_at;
                if dir.up {
                    stats.requests(counter.feed(&buf[..n]));
                }
                queue.push(Item::Data { deliver_at, bytes: buf[..n].to_vec() });
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                queue.push(Item::Abort);
                return;
            }
        }
    }
}

fn write_side(up: bool, mut to: TcpStream, from: TcpStream, queue: &Queue, stats: &Stats, shared: &Shared) {
    loop {
        match queue.pop() {
            Item::Data { deliver_at, bytes } => {
                sleep_until(deliver_at);
                // Nor does it deliver what it already holds; that flows once the stall ends.
                shared.fault.wait_while_stalled(&shared.stopping);
                if to.write_all(&bytes).is_err() {
                    // The receiver is gone: tear the whole connection down.
                    queue.close();
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                stats.moved(up, bytes.len());
            }
            Item::Eof { deliver_at } => {
                sleep_until(deliver_at);
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Item::Abort => {
                queue.close();
                let _ = to.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}
