//! FUZZ-2: `hello_http`'s request handling (the example's `requests.rs`,
//! the very file the server runs) given arbitrary client bytes, delivered
//! in reads of arbitrary lengths. After every read it checks what a client
//! of the server would see:
//!
//! * no panic, and every call returns (libFuzzer's `-timeout` catches a
//!   hang);
//! * the output is a sequence of whole responses, each one of those the
//!   server knows (no partial or corrupt response);
//! * the connection is closed exactly when the last response says
//!   `Connection: close`, and nothing is answered after that;
//! * input is consumed: the server asks for more only while it has room,
//!   or says the head is too large.
//!
//! The first input byte seeds the read lengths (1 to 2,048 bytes); the rest
//! is what the client sends. Build and run: fuzz/README.md.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The server's timeouts (TIMED_OUT, head_under_way…) are not fuzzed here.
#[allow(dead_code)]
#[path = "../../examples/hello_http/requests.rs"]
mod requests;

use requests::{Next, Requests, RESPONSES};

/// Whether `piece` is one whole response the server can write: one of
/// [`RESPONSES`], or a `200` one without its 13-byte body (`HEAD`).
fn known(piece: &[u8]) -> bool {
    RESPONSES.iter().any(|r| {
        *r == piece
            || (r.starts_with(b"HTTP/1.1 200") && r.len() > 13 && &r[..r.len() - 13] == piece)
    })
}

/// Splits `out` into responses (each starts with the status line's
/// `HTTP/1.1 `, which no body contains) and checks each; returns how many
/// there were and whether the last one closes the connection.
fn check(out: &[u8]) -> (usize, bool) {
    const START: &[u8] = b"HTTP/1.1 ";
    if out.is_empty() {
        return (0, false);
    }
    assert!(out.starts_with(START), "output starts mid-response");
    let mut starts: Vec<usize> = (0..=out.len() - START.len())
        .filter(|&i| out[i..].starts_with(START))
        .collect();
    starts.push(out.len());
    let mut last_closes = false;
    for (i, w) in starts.windows(2).enumerate() {
        let piece = &out[w[0]..w[1]];
        assert!(
            known(piece),
            "unknown response: {:?}",
            String::from_utf8_lossy(piece)
        );
        let closes = piece.windows(17).any(|x| x == b"Connection: close");
        assert!(
            !closes || i == starts.len() - 2,
            "a response after one that closed the connection"
        );
        last_closes = closes;
    }
    (starts.len() - 1, last_closes)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };
    let mut state = u64::from(seed) | 1;
    let mut requests = Requests::default();
    let mut out = Vec::new();
    let mut fed = 0;
    loop {
        // Answer what is buffered, as the server does before each read.
        let closed = loop {
            let before = requests.answered();
            let next = requests.next(&mut out);
            let (n, last_closes) = check(&out);
            assert_eq!(
                requests.answered() - before,
                n as u64,
                "answers counted and written differ"
            );
            assert_eq!(
                next == Next::Close,
                last_closes,
                "closed without saying so, or the reverse"
            );
            out.clear();
            match next {
                Next::Flush => assert!(n > 0, "a flush with nothing to write"),
                Next::Close => break true,
                Next::Read => break false,
            }
        };
        if closed || fed == input.len() {
            return;
        }
        let Some(space) = requests.space() else {
            return; // 431: the head filled the buffer
        };
        assert!(!space.is_empty());
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let want = 1 + (state >> 33) as usize % 2048;
        let n = want.min(space.len()).min(input.len() - fed);
        space[..n].copy_from_slice(&input[fed..fed + n]);
        requests.filled(n);
        fed += n;
    }
});
