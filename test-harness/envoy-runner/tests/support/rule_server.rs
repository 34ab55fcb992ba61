//! A tiny HTTP/1.1 rule server for the end-to-end tests: serves one file with
//! an `ETag` (and `304` for a matching `If-None-Match`), and can be told to
//! answer an error status, hang, close connections without answering, or
//! stop listening altogether. Every request is recorded.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the server does with the next requests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Serve the file (`200`, or `304` when `If-None-Match` is its ETag).
    Serve,
    /// Answer this status with a short body.
    Status(u16),
    /// Read the request, then answer nothing until the mode changes (the
    /// client times out and closes).
    Hang,
    /// Close the connection as soon as the request is read.
    Close,
}

/// One request the server saw.
#[derive(Clone, Debug)]
pub struct Hit {
    /// When it arrived.
    pub at: Instant,
    /// Its path.
    pub path: String,
    /// Its `If-None-Match`, if any.
    pub if_none_match: Option<String>,
    /// Its `:authority` (`Host`).
    pub host: Option<String>,
    /// The status answered (0: none, the connection hung or was closed).
    pub status: u16,
}

struct State {
    path: String,
    body: Vec<u8>,
    etag: String,
    mode: Mode,
    hits: Vec<Hit>,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A running rule server; dropping it stops it.
pub struct RuleServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

/// A strong ETag for `body`.
pub fn etag_of(body: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in body {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{}\"", body.len())
}

impl RuleServer {
    /// Serves `body` at `path` on `addr` (a fixed port, so that it can be
    /// stopped and started again where Envoy's cluster points).
    pub fn start(addr: SocketAddr, path: &str, body: &[u8]) -> std::io::Result<RuleServer> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                path: path.to_string(),
                body: body.to_vec(),
                etag: etag_of(body),
                mode: Mode::Serve,
                hits: Vec::new(),
            }),
            stop: AtomicBool::new(false),
        });
        let (addr, accept) = spawn(addr, shared.clone())?;
        Ok(RuleServer {
            shared,
            addr,
            accept: Some(accept),
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the file (and its ETag).
    pub fn set_body(&self, body: &[u8]) {
        let mut st = self.shared.state();
        st.body = body.to_vec();
        st.etag = etag_of(body);
    }

    /// Changes what the server does.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.state().mode = mode;
    }

    /// The requests seen so far.
    pub fn hits(&self) -> Vec<Hit> {
        self.shared.state().hits.clone()
    }

    /// Stops listening (new connections are refused) and closes every open
    /// connection; the state is kept for [`RuleServer::restart`].
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }

    /// Listens again on the same address, with the same file and records.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        let (_, accept) = spawn(self.addr, self.shared.clone())?;
        self.accept = Some(accept);
        Ok(())
    }
}

impl Drop for RuleServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` and accepts connections on a thread of its own.
fn spawn(addr: SocketAddr, shared: Arc<Shared>) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    // The port may still be held by the previous listener for a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let listener = loop {
        match TcpListener::bind(addr) {
            Ok(l) => break l,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e),
        }
    };
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    shared.stop.store(false, Ordering::SeqCst);
    let accept = std::thread::spawn(move || accept_loop(&listener, &shared));
    Ok((addr, accept))
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    let mut handlers = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                let s = shared.clone();
                handlers.push(std::thread::spawn(move || handle(stream, &s)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        handlers.retain(|h: &JoinHandle<()>| !h.is_finished());
    }
    for h in handlers {
        let _ = h.join();
    }
}

/// Reads one request head; None when the peer closed or the server stops.
fn read_head(stream: &mut TcpStream, shared: &Shared) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return None;
        }
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => {
                buf.extend_from_slice(chunk.get(..n)?);
                if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    return String::from_utf8(buf.get(..end)?.to_vec()).ok();
                }
                if buf.len() > 64 * 1024 {
                    return None;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return None,
        }
    }
}

fn handle(mut stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
    // Keep-alive: one request after the other until the peer closes.
    while let Some(head) = read_head(&mut stream, shared) {
        let mut lines = head.split("\r\n");
        let path = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .unwrap_or("")
            .to_string();
        let mut if_none_match = None;
        let mut host = None;
        for line in lines {
            if let Some((name, value)) = line.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "if-none-match" => if_none_match = Some(value.trim().to_string()),
                    "host" => host = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        let (mode, response) = {
            let st = shared.state();
            let response = match &st.mode {
                Mode::Serve if path != st.path => Some(reply(404, &[], b"not found\n")),
                Mode::Serve if if_none_match.as_deref() == Some(st.etag.as_str()) => {
                    Some(reply(304, &[("etag", &st.etag)], b""))
                }
                Mode::Serve => Some(reply(
                    200,
                    &[("etag", &st.etag), ("content-type", "application/json")],
                    &st.body,
                )),
                Mode::Status(code) => Some(reply(*code, &[], format!("error {code}\n").as_bytes())),
                Mode::Hang | Mode::Close => None,
            };
            (st.mode.clone(), response)
        };
        let status = response
            .as_ref()
            .and_then(|r| std::str::from_utf8(r.get(9..12)?).ok()?.parse().ok())
            .unwrap_or(0);
        shared.state().hits.push(Hit {
            at: Instant::now(),
            path,
            if_none_match,
            host,
            status,
        });
        match (mode, response) {
            (_, Some(bytes)) => {
                if stream.write_all(&bytes).is_err() {
                    return;
                }
            }
            (Mode::Hang, None) => {
                // Until the client gives up (reads 0), the mode changes, or the server stops.
                let mut byte = [0u8; 1];
                loop {
                    if shared.stop.load(Ordering::SeqCst) || shared.state().mode != Mode::Hang {
                        break;
                    }
                    match stream.read(&mut byte) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if e.kind() == std::io::ErrorKind::WouldBlock
                                || e.kind() == std::io::ErrorKind::TimedOut => {}
                        Err(_) => break,
                    }
                }
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
            (_, None) => {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }
}

fn reply(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        304 => "Not Modified",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if status != 304 {
        out.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    if status != 304 {
        bytes.extend_from_slice(body);
    }
    bytes
}
