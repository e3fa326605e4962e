//! Ordinary crates run on the default greenlet stack, in the debug build
//! that `cargo test` makes: an HTTP client (`ureq`), a WebSocket handshake
//! (`tungstenite`) and a JSON parser (`serde_json` on a 1 MiB document).
//!
//! Unoptimised frames are several times larger than release ones. On the
//! old 64 KiB default the JSON case overflowed, and the overflow aborted the
//! whole test binary; the HTTP and WebSocket cases fit there in this build,
//! with TLS or other versions they need more. Every greenlet here is spawned
//! with no stack size, so the test follows `stack::DEFAULT_STACK_SIZE`.

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use verdant::net::{TcpListener, TcpStream};
use verdant::{spawn, with_timeout};

/// A plain-HTTP server on its own OS thread: `ureq` uses std's blocking
/// sockets, so the greenlet calling it holds the hub while it waits.
fn http_server_thread(body: String) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let t = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(conn.try_clone().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        write!(
            conn,
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    });
    (addr, t)
}

#[test]
fn stack_ureq_get_over_plain_http() {
    let body = "hello from a plain server\n".repeat(100);
    let (addr, server) = http_server_thread(body.clone());
    let got = spawn(move || {
        let mut resp = ureq::get(format!("http://{addr}/x")).call().unwrap();
        assert_eq!(resp.status(), 200);
        resp.body_mut().read_to_string().unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(got, body);
    server.join().unwrap();
}

#[test]
fn stack_tungstenite_handshake_and_message() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        let msg = ws.read().unwrap();
        ws.send(msg).unwrap();
        // Answer the client's close and finish the closing handshake.
        while ws.read().is_ok() {}
    });
    let client = spawn(move || {
        let stream = TcpStream::connect(addr).unwrap();
        let (mut ws, resp) = tungstenite::client(format!("ws://{addr}/echo"), stream).unwrap();
        assert_eq!(resp.status(), 101);
        ws.send(tungstenite::Message::text("ping over a greenlet"))
            .unwrap();
        let echoed = ws.read().unwrap();
        ws.close(None).unwrap();
        while ws.read().is_ok() {}
        echoed.into_text().unwrap().to_string()
    });
    let echoed = with_timeout(Duration::from_secs(20), || client.join().unwrap()).unwrap();
    assert_eq!(echoed, "ping over a greenlet");
    with_timeout(Duration::from_secs(20), || server.join().unwrap()).unwrap();
}

/// About 1 MiB of JSON: records with nested objects and arrays, inside a
/// few levels of wrapping so the parser recurses as real documents make it.
fn big_document() -> String {
    let mut records = Vec::new();
    let mut i = 0u64;
    let mut len = 0;
    while len < 1 << 20 {
        let r = format!(
            r#"{{"id":{i},"name":"user-{i}","tags":["a","b","c{i}"],"geo":{{"lat":{}.5,"lon":-{}.25,"path":[[1,2],[3,[4,[5,[6]]]]]}},"active":{}}}"#,
            i % 90,
            i % 180,
            i.is_multiple_of(2)
        );
        len += r.len() + 1;
        records.push(r);
        i += 1;
    }
    let mut doc = format!("[{}]", records.join(","));
    for depth in 0..32 {
        doc = format!(r#"{{"level":{depth},"inner":{doc}}}"#);
    }
    doc
}

#[test]
fn stack_serde_json_parses_a_mebibyte() {
    let doc = big_document();
    assert!(doc.len() >= 1 << 20);
    let len = doc.len();
    let (records, reencoded) = spawn(move || {
        let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
        let mut inner = &v;
        for depth in (0..32).rev() {
            assert_eq!(inner["level"], depth);
            inner = &inner["inner"];
        }
        let records = inner.as_array().unwrap().len();
        (records, serde_json::to_string(&v).unwrap().len())
    })
    .join()
    .unwrap();
    assert!(records > 5_000, "{records} records");
    assert_eq!(reencoded, len);
}
