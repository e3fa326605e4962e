//! `hello_http`'s requests, apart from its sockets: bytes in, responses
//! out. The server reads into [`Requests::space`], and [`Requests::next`]
//! answers every complete request buffered; the fuzz target
//! (`fuzz/fuzz_targets/hello_http_requests.rs`) drives the same code with
//! arbitrary bytes.
//!
//! Each connection owns one 8 KiB buffer for its whole life, and the
//! responses are constant byte strings, so a request costs no allocation.

/// The largest request head (request line and headers) accepted.
const MAX_HEAD: usize = 8 * 1024;
/// The most header lines accepted.
const MAX_HEADERS: usize = 64;
/// Flush the output buffer once this much is queued (a long pipeline).
const FLUSH_AT: usize = 32 * 1024;

const HELLO_KEEP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";
const HELLO_KEEP_10: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: keep-alive\r\n\r\nHello, world!";
const HELLO_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, world!";
const NOT_FOUND_KEEP: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nNot Found\n";
const NOT_FOUND_KEEP_10: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: keep-alive\r\n\r\nNot Found\n";
const NOT_FOUND_CLOSE: &[u8] = b"HTTP/1.1 404 Not Found\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 10\r\nConnection: close\r\n\r\nNot Found\n";
const NOT_ALLOWED_KEEP: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\n\r\n";
const NOT_ALLOWED_KEEP_10: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n";
const NOT_ALLOWED_CLOSE: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nServer: verdant\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// The answer to a request head that took too long (then closed).
pub const TIMED_OUT: &[u8] = b"HTTP/1.1 408 Request Timeout\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const BAD_REQUEST: &[u8] = b"HTTP/1.1 400 Bad Request\r\nServer: verdant\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nBad Request\n";
/// The answer to a request head too large (then closed).
pub const TOO_LARGE: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const NOT_IMPLEMENTED: &[u8] = b"HTTP/1.1 501 Not Implemented\r\nServer: verdant\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// Picks the keep-alive, HTTP/1.0 keep-alive or closing variant.
fn pick(
    keep: bool,
    http10: bool,
    variants: (&'static [u8], &'static [u8], &'static [u8]),
) -> &'static [u8] {
    match (keep, http10) {
        (true, false) => variants.0,
        (true, true) => variants.1,
        (false, _) => variants.2,
    }
}

/// Whether a `Connection` header value lists `token` (case-insensitive,
/// comma-separated).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// What one parsed request asks of the connection.
struct Answer {
    response: &'static [u8],
    /// Request body bytes to read and ignore before the next request.
    body: usize,
    /// Close the connection after this response.
    close: bool,
}

impl Answer {
    fn fatal(response: &'static [u8]) -> Answer {
        Answer {
            response,
            body: 0,
            close: true,
        }
    }
}

/// Answers a complete request head.
fn answer(req: &httparse::Request<'_, '_>) -> Answer {
    let http10 = req.version == Some(0);
    let mut keep = !http10;
    let mut body: Option<usize> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            if has_token(h.value, "close") {
                keep = false;
            } else if http10 && has_token(h.value, "keep-alive") {
                keep = true;
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (len, body) {
                (None, _) => return Answer::fatal(BAD_REQUEST),
                // Two different lengths: the framing is ambiguous.
                (Some(l), Some(prev)) if l != prev => return Answer::fatal(BAD_REQUEST),
                (Some(l), _) => body = Some(l),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Answer::fatal(NOT_IMPLEMENTED);
        }
    }
    let path = req.path.unwrap_or("");
    // Ignore a query string; accept the absolute form's path only.
    let path = path.split_once('?').map_or(path, |(p, _)| p);
    let response = if path == "/" {
        match req.method {
            Some("GET") => pick(keep, http10, (HELLO_KEEP, HELLO_KEEP_10, HELLO_CLOSE)),
            Some("HEAD") => {
                // Same head, no body (the body is the last 13 bytes).
                let r = pick(keep, http10, (HELLO_KEEP, HELLO_KEEP_10, HELLO_CLOSE));
                &r[..r.len() - 13]
            }
            _ => pick(
                keep,
                http10,
                (NOT_ALLOWED_KEEP, NOT_ALLOWED_KEEP_10, NOT_ALLOWED_CLOSE),
            ),
        }
    } else {
        pick(
            keep,
            http10,
            (NOT_FOUND_KEEP, NOT_FOUND_KEEP_10, NOT_FOUND_CLOSE),
        )
    };
    Answer {
        response,
        body: body.unwrap_or(0),
        close: !keep,
    }
}

/// What [`Requests::next`] asks of the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Every complete request is answered: write what is in the output
    /// buffer, then read more.
    Read,
    /// The output buffer is long (a pipeline): write it, then call again.
    Flush,
    /// The last response says the connection ends: write the output
    /// buffer, then close.
    Close,
}

/// One connection's unparsed input and the request body it is skipping.
pub struct Requests {
    buf: Box<[u8]>,
    /// Unparsed bytes: `buf[start..end]`.
    start: usize,
    end: usize,
    /// Request body bytes still to discard.
    skip: usize,
    /// Requests answered so far.
    answered: u64,
}

impl Default for Requests {
    fn default() -> Self {
        Requests {
            buf: vec![0u8; MAX_HEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            skip: 0,
            answered: 0,
        }
    }
}

impl Requests {
    /// Answers the complete requests buffered, appending their responses
    /// to `out` (see [`Next`]).
    pub fn next(&mut self, out: &mut Vec<u8>) -> Next {
        loop {
            if self.skip > 0 {
                let n = self.skip.min(self.end - self.start);
                self.skip -= n;
                self.start += n;
                if self.skip > 0 {
                    return Next::Read; // the body goes on in the next read
                }
            }
            if self.start == self.end {
                return Next::Read;
            }
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            let a = match req.parse(&self.buf[self.start..self.end]) {
                Ok(httparse::Status::Complete(n)) => {
                    self.start += n;
                    answer(&req)
                }
                Ok(httparse::Status::Partial) => return Next::Read,
                Err(httparse::Error::TooManyHeaders) => Answer::fatal(TOO_LARGE),
                Err(_) => Answer::fatal(BAD_REQUEST),
            };
            self.answered += 1;
            out.extend_from_slice(a.response);
            if a.close {
                return Next::Close;
            }
            self.skip = a.body;
            if out.len() >= FLUSH_AT {
                return Next::Flush;
            }
        }
    }

    /// Where the next read goes, after moving the unparsed tail to the
    /// front; `None` when a request head fills the whole buffer and is not
    /// done (the client gets `431`, then the connection is closed).
    pub fn space(&mut self) -> Option<&mut [u8]> {
        if self.start == self.end {
            (self.start, self.end) = (0, 0);
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            (self.start, self.end) = (0, self.end - self.start);
        }
        (self.end < self.buf.len()).then(|| &mut self.buf[self.end..])
    }

    /// Takes the `n` bytes just read into [`space`](Self::space).
    pub fn filled(&mut self, n: usize) {
        assert!(self.end + n <= self.buf.len(), "filled past the space");
        self.end += n;
    }

    /// Whether a request head has begun and is not complete yet (its
    /// header timeout runs).
    pub fn head_under_way(&self) -> bool {
        self.start < self.end && self.skip == 0
    }

    /// Whether nothing is buffered or being skipped: the next byte read
    /// begins a request head.
    pub fn between_requests(&self) -> bool {
        self.start == self.end && self.skip == 0
    }

    /// How many requests were answered so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }
}

/// The responses, each whole, that [`Requests::next`] can write (`HEAD`
/// answers are the `GET` ones without their body). For the fuzz target's
/// checks; the server has no use for it.
#[allow(dead_code)]
pub const RESPONSES: &[&[u8]] = &[
    HELLO_KEEP,
    HELLO_KEEP_10,
    HELLO_CLOSE,
    NOT_FOUND_KEEP,
    NOT_FOUND_KEEP_10,
    NOT_FOUND_CLOSE,
    NOT_ALLOWED_KEEP,
    NOT_ALLOWED_KEEP_10,
    NOT_ALLOWED_CLOSE,
    BAD_REQUEST,
    TOO_LARGE,
    NOT_IMPLEMENTED,
];
