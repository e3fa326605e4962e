//! LEAK-1, churn: rounds of 100,000 spawn + join, in batches of 1,000
//! alive at once, where one greenlet in ten panics, one is killed while it
//! sleeps, one ends by an expired `with_timeout`, one opens and closes a
//! UDP socket (a descriptor and an IO registration), and the rest yield and
//! return. After each round: live heap allocations (a counting global
//! allocator), open descriptors, mappings, live greenlets, timers and IO
//! registrations. gevent's leak rule (`greentest.leakcheck`): fail when the
//! last three deltas of a count are equal and positive; and an absolute
//! bound on each count's growth after the first round (which fills the
//! caches: stacks, buffers).

use std::time::Duration;

use verdant::net::UdpSocket;
use verdant::{killall, sleep, spawn, with_timeout, yield_now, Hub, JoinHandle};

mod common;

#[global_allocator]
static ALLOC: common::counting_alloc::Counting = common::counting_alloc::Counting;

/// What is counted after each round.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Counts {
    allocations: isize,
    fds: isize,
    maps: isize,
    greenlets: isize,
    timers: isize,
    registrations: isize,
}

impl Counts {
    fn now() -> Counts {
        let hub = Hub::current();
        let greenlets = hub.run_info().greenlets().len() as isize;
        let timers = hub.timer_count() as isize;
        let registrations = hub.io_registrations() as isize;
        let fds = std::fs::read_dir("/proc/self/fd").unwrap().count() as isize;
        let maps = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .count() as isize;
        Counts {
            allocations: common::counting_alloc::live(),
            fds,
            maps,
            greenlets,
            timers,
            registrations,
        }
    }

    fn fields(&self) -> [(&'static str, isize); 6] {
        [
            ("allocations", self.allocations),
            ("fds", self.fds),
            ("maps", self.maps),
            ("greenlets", self.greenlets),
            ("timers", self.timers),
            ("registrations", self.registrations),
        ]
    }
}

/// What each greenlet of a round does, by its index.
fn churn(i: usize) -> usize {
    match i % 10 {
        0 => std::panic::panic_any(Churn),
        1 => {
            sleep(Duration::from_secs(3600)); // killed
            unreachable!("killed while asleep")
        }
        2 => {
            let r = with_timeout(Duration::from_micros(200), || {
                sleep(Duration::from_secs(3600))
            });
            assert!(r.is_err(), "the scope expired");
            i
        }
        3 => {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            s.send_to(b"x", s.local_addr().unwrap()).unwrap();
            let mut b = [0u8; 1];
            s.recv_from(&mut b).unwrap();
            i
        }
        _ => {
            yield_now();
            i
        }
    }
}

/// The panic payload of the panicking tenth (silenced in the hook).
struct Churn;

fn round(n: usize) {
    for start in (0..n).step_by(1000) {
        let hs: Vec<JoinHandle<usize>> = (start..start + 1000)
            .map(|i| spawn(move || churn(i)))
            .collect();
        yield_now(); // every greenlet runs to its first wait
        let sleepers: Vec<&JoinHandle<usize>> = hs
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 10 == 1)
            .map(|(_, h)| h)
            .collect();
        killall(sleepers);
        for (k, h) in hs.into_iter().enumerate() {
            match (k % 10, h.join()) {
                (0, Err(e)) => assert!(e.is_panic(), "{e:?}"),
                (1, Err(e)) => assert!(e.is_killed(), "{e:?}"),
                (_, Ok(v)) => assert_eq!(v, start + k),
                (kind, r) => panic!("greenlet {} (kind {kind}): {r:?}", start + k),
            }
        }
    }
}

#[test]
fn churn_leaks_nothing_round_after_round() {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.payload().is::<Churn>() {
            hook(info);
        }
    }));
    const ROUNDS: usize = 5;
    let mut counts = Vec::new();
    for r in 0..ROUNDS {
        round(100_000);
        // Let finished stacks be released and the hub settle.
        sleep(Duration::from_millis(5));
        let c = Counts::now();
        eprintln!("round {r}: {c:?}");
        counts.push(c);
    }
    let first = counts[0];
    for (k, (name, base)) in first.fields().into_iter().enumerate() {
        let series: Vec<isize> = counts.iter().map(|c| c.fields()[k].1).collect();
        let deltas: Vec<isize> = series.windows(2).map(|w| w[1] - w[0]).collect();
        let last3 = &deltas[deltas.len() - 3..];
        assert!(
            !(last3[0] > 0 && last3.iter().all(|&d| d == last3[0])),
            "{name} grows by {} a round: {series:?}",
            last3[0]
        );
        // Absolute bounds on the growth after the first round.
        let bound = match name {
            "allocations" => 256,
            "maps" => 16,
            _ => 0,
        };
        let grown = series[ROUNDS - 1] - base;
        assert!(
            grown <= bound,
            "{name}: {series:?} (grew {grown}, bound {bound})"
        );
    }
    let last = counts[ROUNDS - 1];
    assert_eq!(
        (last.greenlets, last.timers, last.registrations),
        (0, 0, 0),
        "{last:?}"
    );
}
