//! A small blocking HTTP/1.1 client over `std::net`, enough to drive Envoy.
//!
//! Header names and values are bytes: repeated headers, unusual case and
//! non-UTF-8 values (obs-text) are sent exactly as given. Connections are kept
//! alive between requests; a request on a reused connection that the server
//! had already closed is retried once on a new connection (all requests the
//! tests send are idempotent).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::Error;

/// An HTTP/1.1 request. No header is added implicitly except `Host` (only
/// when the request has none) and `Content-Length` (only when there is a body).
#[derive(Clone, Debug, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// In order, repeated names allowed, bytes as sent.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// `GET path` with no headers.
    pub fn get(path: &str) -> Self {
        Request {
            method: "GET".into(),
            path: path.into(),
            ..Request::default()
        }
    }

    /// Adds a header (repeats allowed; name and value sent verbatim).
    pub fn header(mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.headers
            .push((name.as_ref().to_vec(), value.as_ref().to_vec()));
        self
    }

    /// Sets `Host` (the `:authority` Envoy sees), replacing any earlier one.
    pub fn host(mut self, host: &str) -> Self {
        self.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(b"host"));
        self.headers
            .insert(0, (b"host".to_vec(), host.as_bytes().to_vec()));
        self
    }

    fn encode(&self, default_host: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" HTTP/1.1\r\n");
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(b"host"))
        {
            out.extend_from_slice(b"host: ");
            out.extend_from_slice(default_host.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        for (name, value) in &self.headers {
            out.extend_from_slice(name);
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if !self.body.is_empty() {
            out.extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response: status, headers (names lower-cased, values as bytes), body.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of a header (name case-insensitive), lossily as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.header_bytes(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// The first value of a header as bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// All values of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<String> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body, lossily as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn wants_close(&self) -> bool {
        self.header_all("connection")
            .iter()
            .any(|v| v.eq_ignore_ascii_case("close"))
    }
}

/// A keep-alive HTTP/1.1 connection to one address.
pub struct HttpClient {
    addr: SocketAddr,
    host: String,
    timeout: Duration,
    conn: Option<BufReader<TcpStream>>,
}

impl HttpClient {
    /// A client for `addr`; connects lazily on the first request.
    pub fn new(addr: SocketAddr) -> Self {
        HttpClient {
            addr,
            host: addr.to_string(),
            timeout: Duration::from_secs(10),
            conn: None,
        }
    }

    /// Read/write timeout of each request (default 10 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sends a request and reads the whole response, reusing the connection
    /// when the server keeps it open.
    pub fn send(&mut self, req: &Request) -> Result<Response, Error> {
        let bytes = req.encode(&self.host);
        let reused = self.conn.is_some();
        match self.try_send(&bytes, req.method == "HEAD") {
            Ok(resp) => Ok(resp),
            // The server may have closed an idle keep-alive connection (drain,
            // idle timeout): retry once on a fresh connection.
            Err(e) if reused && e.is_stale_connection() => {
                self.conn = None;
                self.try_send(&bytes, req.method == "HEAD")
                    .map_err(|e| e.into_error(self.addr))
            }
            Err(e) => Err(e.into_error(self.addr)),
        }
    }

    /// `GET path` with `Host: host` and the given extra headers.
    pub fn get(
        &mut self,
        host: &str,
        path: &str,
        headers: &[(&[u8], &[u8])],
    ) -> Result<Response, Error> {
        let mut req = Request::get(path).host(host);
        for (n, v) in headers {
            req = req.header(n, v);
        }
        self.send(&req)
    }

    fn try_send(&mut self, bytes: &[u8], head: bool) -> Result<Response, SendError> {
        if self.conn.is_none() {
            let stream =
                TcpStream::connect_timeout(&self.addr, self.timeout).map_err(SendError::Connect)?;
            stream.set_nodelay(true).map_err(SendError::Io)?;
            stream
                .set_read_timeout(Some(self.timeout))
                .map_err(SendError::Io)?;
            stream
                .set_write_timeout(Some(self.timeout))
                .map_err(SendError::Io)?;
            self.conn = Some(BufReader::with_capacity(16 * 1024, stream));
        }
        let Some(conn) = self.conn.as_mut() else {
            return Err(SendError::Io(std::io::ErrorKind::NotConnected.into()));
        };
        let result = conn
            .get_mut()
            .write_all(bytes)
            .map_err(SendError::Write)
            .and_then(|()| read_response(conn, head));
        match &result {
            Ok(resp) if !resp.wants_close() => {}
            _ => self.conn = None,
        }
        result
    }
}

enum SendError {
    Connect(std::io::Error),
    Write(std::io::Error),
    /// The connection closed before any byte of the status line.
    ClosedBeforeResponse,
    Io(std::io::Error),
    Protocol(String),
}

impl SendError {
    fn is_stale_connection(&self) -> bool {
        matches!(self, SendError::Write(_) | SendError::ClosedBeforeResponse)
            || matches!(self, SendError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }

    fn into_error(self, addr: SocketAddr) -> Error {
        Error::new(match self {
            SendError::Connect(e) => format!("connecting to {addr}: {e}"),
            SendError::Write(e) => format!("sending to {addr}: {e}"),
            SendError::ClosedBeforeResponse => {
                format!("{addr} closed the connection without a response")
            }
            SendError::Io(e) => format!("reading from {addr}: {e}"),
            SendError::Protocol(m) => format!("bad response from {addr}: {m}"),
        })
    }
}

fn read_line(conn: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<usize, SendError> {
    line.clear();
    let n = conn.read_until(b'\n', line).map_err(SendError::Io)?;
    if line.ends_with(b"\n") {
        line.pop();
        if line.ends_with(b"\r") {
            line.pop();
        }
    }
    Ok(n)
}

fn read_response(conn: &mut BufReader<TcpStream>, head: bool) -> Result<Response, SendError> {
    let mut line = Vec::new();
    loop {
        if read_line(conn, &mut line)? == 0 {
            return Err(SendError::ClosedBeforeResponse);
        }
        let status_line = String::from_utf8_lossy(&line).into_owned();
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .filter(|_| version.starts_with("HTTP/1."))
            .ok_or_else(|| SendError::Protocol(format!("status line {status_line:?}")))?;
        let headers = read_headers(conn, &mut line)?;
        // 1xx responses (100 Continue) precede the real one.
        if (100..200).contains(&status) {
            continue;
        }
        let mut resp = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if head || status == 204 || status == 304 {
            return Ok(resp);
        }
        let chunked = resp
            .header_all("transfer-encoding")
            .iter()
            .any(|v| v.to_ascii_lowercase().contains("chunked"));
        if chunked {
            resp.body = read_chunked(conn, &mut line)?;
        } else if let Some(len) = resp.header("content-length") {
            let len: usize = len
                .trim()
                .parse()
                .map_err(|_| SendError::Protocol(format!("content-length {len:?}")))?;
            resp.body = vec![0; len];
            conn.read_exact(&mut resp.body).map_err(SendError::Io)?;
        } else {
            // No length: the body runs to the end of the connection.
            conn.read_to_end(&mut resp.body).map_err(SendError::Io)?;
            resp.headers.push(("connection".into(), b"close".to_vec()));
        }
        return Ok(resp);
    }
}

fn read_headers(
    conn: &mut BufReader<TcpStream>,
    line: &mut Vec<u8>,
) -> Result<Vec<(String, Vec<u8>)>, SendError> {
    let mut headers = Vec::new();
    loop {
        if read_line(conn, line)? == 0 {
            return Err(SendError::Protocol("connection closed in headers".into()));
        }
        if line.is_empty() {
            return Ok(headers);
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| SendError::Protocol(format!("header line {:?}", lossy(line))))?;
        let (name, value) = line.split_at(colon);
        let value = value.get(1..).unwrap_or_default().trim_ascii().to_vec();
        headers.push((lossy(name).to_ascii_lowercase(), value));
    }
}

fn read_chunked(conn: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> Result<Vec<u8>, SendError> {
    let mut body = Vec::new();
    loop {
        read_line(conn, line)?;
        let size_text = lossy(line);
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|_| SendError::Protocol(format!("chunk size {size_text:?}")))?;
        if size == 0 {
            // Trailers, up to the empty line.
            while read_line(conn, line)? > 0 && !line.is_empty() {}
            return Ok(body);
        }
        let start = body.len();
        body.resize(start + size, 0);
        conn.read_exact(body.get_mut(start..).unwrap_or_default())
            .map_err(SendError::Io)?;
        read_line(conn, line)?;
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One request on a fresh connection that is closed afterwards.
pub fn get_once(addr: SocketAddr, path: &str) -> Result<Response, Error> {
    HttpClient::new(addr)
        .with_timeout(Duration::from_secs(5))
        .send(&Request::get(path).header("connection", "close"))
}
