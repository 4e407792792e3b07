//! netshape: a loopback TCP proxy that makes a link slow and far away, for
//! Circular's tests and benchmarks (the machines they run on have no `netem`).
//!
//! It listens on one address and forwards every connection to one target. Each
//! direction of each connection is modelled as a link:
//!
//! - **Bandwidth**: bytes are serialised at the configured rate, per connection
//!   and/or shared by all connections (one FIFO bottleneck, like a router's
//!   queue). A chunk is handed on when its last byte would have left the link.
//! - **Delay**: half the round-trip time is added to every chunk, from the time
//!   it left the link. Chunks carry their own timestamps, so a stream is
//!   *delayed* by the RTT, never *throttled* by it: many chunks are in flight.
//! - **Handshake**: the client's first bytes are held until one RTT after the
//!   connection was accepted, because a real TCP connect costs a round trip
//!   before the first request can be sent (the proxy's own accept is instant).
//! - **Window**: at most [`QUEUE_BYTES`] per direction wait inside the proxy;
//!   beyond that the proxy stops reading and TCP back-pressure reaches the sender.
//!
//! It counts what it moved ([`Stats`]): connections, bytes each way, and HTTP
//! requests (client-to-server header blocks, i.e. `\r\n\r\n`, which is exact for
//! the GET and HEAD requests that block stores see).
//!
//! It can also break the link while it runs ([`Fault`], [`Proxy::set_fault`];
//! the command line's `--fault-file`): `drop` resets every connection and
//! refuses new ones, `stall` keeps them open and moves nothing, `none` restores
//! the link, and what a stall held flows on.
//!
//! What it is not: a packet-level emulator. There is no loss, no jitter and no
//! congestion control; TCP on loopback underneath never sees the delay.

mod fault;
mod pacer;
mod proxy;
mod queue;
mod stats;

pub use fault::Fault;
pub use proxy::{Proxy, Shape, QUEUE_BYTES};
pub use stats::{RequestCounter, Stats, StatsSnapshot};

/// What can go wrong starting the proxy. Once it runs, a failed connection is
/// logged to stderr and dropped; it never stops the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid shape: {0}")]
    Shape(String),
    #[error("invalid fault: {0}")]
    Fault(String),
    #[error("cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
}
