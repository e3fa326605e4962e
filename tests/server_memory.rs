//! What an idle connection under `StreamServer` costs in heap blocks,
//! against the same echo loop spawned by hand from an accept loop, counted
//! by a global allocator. One test, so that no other test's allocations are
//! counted.

use std::time::Instant;

use verdant::net::{TcpListener, TcpStream};

mod common;
use common::counting_alloc::{live, Counting};
use common::echo;

#[global_allocator]
static ALLOC: Counting = Counting;

/// Connections each case opens.
const CONNS: usize = 200;

/// Live heap blocks one idle connection adds: `serve` starts serving
/// `listener` with [`echo::echo`] and returns what stops it; each
/// connection makes one round trip first, so its handler has run and parked
/// again. Both ends' blocks are counted (the client's `TcpStream` is the
/// same in every case).
fn blocks_per_conn(serve: fn(TcpListener) -> echo::Stop) -> f64 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = serve(listener);
    // One connection first, so that one-off growth (tables, pools) is paid.
    let warm = echo::round_trip(addr, 0);
    let before = live();
    let clients: Vec<TcpStream> = (1..=CONNS)
        .map(|i| echo::round_trip(addr, i as u8))
        .collect();
    let added = live() - before;
    drop((warm, clients));
    stop();
    added as f64 / CONNS as f64
}

/// A `StreamServer` connection keeps about one heap block more than a
/// hand-spawned one (its greenlet's name, `connection`, plus a share of
/// the server's tables), and in particular not the box that carries the
/// connection to its greenlet: kept for the connection's life, as a first
/// version did, it cost 128 bytes of every idle connection's 1.8 KiB.
#[test]
fn an_idle_stream_server_connection_keeps_no_more_heap_than_a_plain_spawn() {
    let t = Instant::now();
    let plain = blocks_per_conn(echo::by_hand);
    let served = blocks_per_conn(echo::by_stream_server);
    println!(
        "live blocks per connection: {plain} spawned by hand, {served} under StreamServer ({:?})",
        t.elapsed()
    );
    assert!(
        served <= plain + 1.5,
        "a StreamServer connection keeps {served} heap blocks, one spawned by hand {plain}"
    );
}
