//! The accept side shared by the core's TCP servers other than the broker (discovery, stream
//! manager, Lambda IPC): accept errors (EMFILE and friends) are logged and backed off instead
//! of spinning, and a connection over the server's bound is closed at accept, counted and
//! logged.

use std::cell::Cell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use async_io::{Async, Timer};

/// One server's bound on open connections, and how it names itself in log lines.
pub struct Bound<'a> {
    /// The server's name, first in each log line ("discovery", "stream manager", ...).
    pub what: &'a str,
    /// The `log` target of those lines (a system component's name routes them to its file).
    pub target: &'a str,
    /// Connections open now. [`accept`] adds the one it returns; the caller takes it off when
    /// that connection ends.
    pub open: &'a Cell<usize>,
    /// At most this many open (a constant in `limits`).
    pub max: usize,
    /// Connections closed at accept because `max` were open.
    pub refused: &'a Cell<u64>,
}

/// The next connection on `listener` that fits under `b.max`, counted in `b.open`.
pub async fn accept(
    listener: &Async<TcpListener>,
    b: &Bound<'_>,
) -> (Async<TcpStream>, SocketAddr) {
    loop {
        let (sock, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                log::warn!(target: b.target, "{}: accepting a connection failed: {e}", b.what);
                Timer::after(Duration::from_millis(100)).await;
                continue;
            }
        };
        let open = b.open.get();
        if open >= b.max {
            b.refused.set(b.refused.get() + 1);
            log::warn!(target: b.target,
                "{}: {peer} refused: {open} connections open, sprig's limit is {}",
                b.what, b.max
            );
            continue; // `sock` dropped: closed
        }
        b.open.set(open + 1);
        return (sock, peer);
    }
}
