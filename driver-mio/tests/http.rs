//! The `/metrics` HTTP server on a real `mio::Poll` loop (a helper thread) and real loopback
//! clients: the answers, keep-alive and pipelining, and its defences (malformed and oversized
//! heads, bodies, slowloris, too many connections, clients that never read).

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use gossip_driver_mio::local::http::{HttpLimits, HttpServer, HttpStats};
use mio::{Events, Poll, Token};

const CONTENT_TYPE: &str = "text/plain; version=0.0.4";
/// Not zero, so routing by token range is exercised.
const BASE: usize = 7;

/// A server running its own poll loop on a thread until dropped.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    /// Its counters and open connections, as of the end of its last turn.
    seen: Arc<Mutex<(HttpStats, usize)>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    fn start(limits: HttpLimits, body: Vec<u8>) -> Server {
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let mut http = HttpServer::bind(addr, limits).expect("bind");
        let addr = http.local_addr();
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new((HttpStats::default(), 0)));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = thread::spawn(move || {
            let mut poll = Poll::new().expect("poll");
            http.register(poll.registry(), BASE).expect("register");
            assert_eq!(http.span(), http_span(&http));
            let mut events = Events::with_capacity(256);
            let mut write_body = |out: &mut Vec<u8>| {
                out.extend_from_slice(&body);
                CONTENT_TYPE
            };
            let start = Instant::now();
            let now = || start.elapsed().as_millis() as u64;
            while !stop2.load(Ordering::Relaxed) {
                let wait = http.next_deadline().map_or(20, |d| d.saturating_sub(now()));
                let wait = Duration::from_millis(wait.min(20));
                if let Err(e) = poll.poll(&mut events, Some(wait)) {
                    assert_eq!(e.kind(), ErrorKind::Interrupted, "poll: {e}");
                }
                let t = now();
                for ev in events.iter() {
                    assert!(http.owns(ev.token()), "foreign token {:?}", ev.token());
                    http.on_ready(poll.registry(), ev.token(), t, &mut write_body);
                }
                http.sweep(poll.registry(), now());
                *seen2.lock().expect("lock") = (http.stats(), http.open_conns());
            }
        });
        Server {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn stats(&self) -> HttpStats {
        self.seen.lock().expect("lock").0
    }

    /// Waits up to `limit` for the server's counters to satisfy `f`.
    fn wait_for(&self, limit: Duration, f: impl Fn(&HttpStats, usize) -> bool) -> bool {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            let (stats, open) = *self.seen.lock().expect("lock");
            if f(&stats, open) {
                return true;
            }
            thread::sleep(Duration::from_millis(5));
        }
        false
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let result = t.join();
            if !thread::panicking() {
                result.expect("server thread panicked");
            }
        }
    }
}

/// The tokens a server claims, counted through `owns`.
fn http_span(http: &HttpServer) -> usize {
    assert!(!http.owns(Token(BASE - 1)));
    (BASE..BASE + 1000)
        .take_while(|&t| http.owns(Token(t)))
        .count()
}

fn limits() -> HttpLimits {
    HttpLimits {
        header_timeout_ms: 2_000,
        idle_timeout_ms: 2_000,
        ..HttpLimits::default()
    }
}

fn metrics_body() -> Vec<u8> {
    b"# HELP up It is up.\n# TYPE up gauge\nup 1\n".to_vec()
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> usize {
        self.header("content-length")
            .and_then(|v| v.parse().ok())
            .expect("content-length")
    }
}

/// Reads one response (its body by Content-Length, none if `head_only`); `None` if the
/// connection closed first.
fn read_response(r: &mut BufReader<TcpStream>, head_only: bool) -> Option<Response> {
    let mut raw = Vec::new();
    loop {
        let before = raw.len();
        match r.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
        if raw.get(before..) == Some(&b"\r\n"[..]) {
            break;
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    assert!(resp.parse(&raw).expect("response head").is_complete());
    let mut out = Response {
        status: resp.code.expect("status"),
        headers: resp
            .headers
            .iter()
            .map(|h| {
                let v = String::from_utf8(h.value.to_vec()).expect("utf-8 header");
                (h.name.to_string(), v)
            })
            .collect(),
        body: Vec::new(),
    };
    if !head_only {
        out.body = vec![0; out.content_length()];
        r.read_exact(&mut out.body).ok()?;
    }
    Some(out)
}

/// Sends `request` on a new connection and reads one response.
fn exchange(server: &Server, request: &[u8], head_only: bool) -> (Response, BufReader<TcpStream>) {
    let mut s = server.connect();
    s.write_all(request).expect("write");
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, head_only).expect("a response");
    (resp, r)
}

/// True if the peer closed `r` within `limit` (end of stream or reset), dropping any bytes.
fn closed_within(r: &mut BufReader<TcpStream>, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        match r.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return true,
        }
    }
    false
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").into_bytes()
}

/// A full scrape on a new connection succeeds.
fn served(server: &Server) -> bool {
    let Ok(mut s) = TcpStream::connect(server.addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(&get("/metrics")).is_err() {
        return false;
    }
    matches!(read_response(&mut BufReader::new(s), false), Some(r) if r.status == 200)
}

#[test]
fn get_metrics_returns_the_body_with_its_length_and_type() {
    let server = Server::start(limits(), metrics_body());
    for path in ["/metrics", "/metrics?name[]=up"] {
        let (resp, _) = exchange(&server, &get(path), false);
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, metrics_body());
        assert_eq!(resp.content_length(), metrics_body().len());
        assert_eq!(resp.header("content-type"), Some(CONTENT_TYPE));
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    // HTTP/1.0 without keep-alive, and HTTP/1.1 asking to close: answered, then closed.
    for req in [
        &b"GET /metrics HTTP/1.0\r\n\r\n"[..],
        b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
    ] {
        let (resp, mut r) = exchange(&server, req, false);
        assert_eq!(
            (resp.status, resp.header("connection")),
            (200, Some("close"))
        );
        assert_eq!(resp.body, metrics_body());
        assert!(closed_within(&mut r, Duration::from_secs(2)));
    }
    let (resp, _) = exchange(
        &server,
        b"GET /metrics HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
        false,
    );
    assert_eq!(resp.header("connection"), Some("keep-alive"));
    assert!(server.wait_for(Duration::from_secs(2), |s, _| s.scrapes == 5));
}

#[test]
fn head_metrics_has_the_headers_and_no_body() {
    let server = Server::start(limits(), metrics_body());
    let mut s = server.connect();
    s.write_all(b"HEAD /metrics HTTP/1.1\r\n\r\n")
        .expect("write");
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, true).expect("response");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.content_length(), metrics_body().len());
    assert_eq!(resp.header("content-type"), Some(CONTENT_TYPE));
    // No body follows: the next bytes on the connection are the next response.
    r.get_mut().write_all(&get("/nope")).expect("write");
    assert_eq!(read_response(&mut r, false).map(|r| r.status), Some(404));
}

#[test]
fn another_path_is_404_and_the_connection_stays_usable() {
    let server = Server::start(limits(), metrics_body());
    let (resp, mut r) = exchange(&server, &get("/"), false);
    assert_eq!(resp.status, 404);
    assert_eq!(resp.body, b"Not Found\n");
    r.get_mut().write_all(&get("/metricsx")).expect("write");
    assert_eq!(read_response(&mut r, false).map(|r| r.status), Some(404));
    r.get_mut().write_all(&get("/metrics")).expect("write");
    assert_eq!(read_response(&mut r, false).map(|r| r.status), Some(200));
}

#[test]
fn another_method_is_405_with_allow() {
    let server = Server::start(limits(), metrics_body());
    for method in ["POST", "DELETE", "get", "OPTIONS"] {
        let req = format!("{method} /metrics HTTP/1.1\r\n\r\n");
        let (resp, _) = exchange(&server, req.as_bytes(), false);
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.header("allow"), Some("GET, HEAD"));
    }
}

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let server = Server::start(limits(), metrics_body());
    let (first, mut r) = exchange(&server, &get("/metrics"), false);
    assert_eq!(first.status, 200);
    r.get_mut().write_all(&get("/metrics")).expect("write");
    let second = read_response(&mut r, false).expect("second response");
    assert_eq!((second.status, second.body), (200, metrics_body()));
    assert!(
        server.wait_for(Duration::from_secs(2), |s, open| s.scrapes == 2
            && open == 1)
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(limits(), metrics_body());
    let mut s = server.connect();
    let mut reqs = get("/metrics");
    reqs.extend_from_slice(&get("/other"));
    reqs.extend_from_slice(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    reqs.extend_from_slice(b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    s.write_all(&reqs).expect("write");
    let mut r = BufReader::new(s);
    let statuses: Vec<(u16, usize)> = [false, false, true, false]
        .into_iter()
        .map(|head_only| read_response(&mut r, head_only).expect("response"))
        .map(|resp| (resp.status, resp.body.len()))
        .collect();
    let n = metrics_body().len();
    assert_eq!(statuses, [(200, n), (404, 10), (200, 0), (200, n)]);
    assert!(closed_within(&mut r, Duration::from_secs(2)));
}

#[test]
fn malformed_requests_are_400_and_closed_and_garbage_does_no_harm() {
    let server = Server::start(limits(), metrics_body());
    for req in [
        &b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n"[..],
        b"GET /metrics HTTP/9.9\r\n\r\n",
        b"\x00\x01\x02 / HTTP/1.1\r\n\r\n",
        b"GET /metrics HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    ] {
        let (resp, mut r) = exchange(&server, req, false);
        assert_eq!(resp.status, 400, "{}", String::from_utf8_lossy(req));
        assert_eq!(resp.header("connection"), Some("close"));
        assert!(closed_within(&mut r, Duration::from_secs(2)));
    }
    // Pseudo-random bytes, some with a valid-looking start: any answer or none, never a panic.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..40 {
        let Ok(mut s) = TcpStream::connect(server.addr) else {
            continue;
        };
        let mut bytes = if i % 2 == 0 {
            b"GET /metrics HTTP/1.1\r\n".to_vec()
        } else {
            Vec::new()
        };
        for _ in 0..(i * 97 % 3000) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            bytes.push(if (x & 7) == 0 { b'\n' } else { x as u8 });
        }
        let _ = s.write_all(&bytes);
    }
    assert!(served(&server));
}

#[test]
fn a_request_with_a_body_is_refused() {
    let server = Server::start(limits(), metrics_body());
    for req in [
        &b"GET /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"[..],
        b"POST /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let (resp, mut r) = exchange(&server, req, false);
        assert_eq!(resp.status, 413);
        assert!(closed_within(&mut r, Duration::from_secs(2)));
    }
    let (resp, _) = exchange(
        &server,
        b"GET /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    assert_eq!(resp.status, 200);
}

#[test]
fn a_head_over_the_limit_is_431() {
    let server = Server::start(limits(), metrics_body());
    let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..90 {
        req.extend_from_slice(format!("X-Filler-{i:03}: {}\r\n", "a".repeat(88)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert!(req.len() > 9 * 1024);
    let (resp, mut r) = exchange(&server, &req, false);
    assert_eq!(resp.status, 431);
    assert!(closed_within(&mut r, Duration::from_secs(2)));
    // Many small headers: also 431, not a parse error.
    let mut req = b"GET /metrics HTTP/1.1\r\n".to_vec();
    for i in 0..100 {
        req.extend_from_slice(format!("X-{i}: 1\r\n").as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_eq!(exchange(&server, &req, false).0.status, 431);
    assert!(server.wait_for(Duration::from_secs(2), |s, _| s.bad_requests == 2));
}

#[test]
fn a_stalled_head_is_closed_after_the_header_timeout() {
    let server = Server::start(
        HttpLimits {
            header_timeout_ms: 200,
            ..limits()
        },
        metrics_body(),
    );
    let mut s = server.connect();
    let t0 = Instant::now();
    s.write_all(b"GET /met").expect("write");
    let mut r = BufReader::new(s);
    // Answered 408 (best effort), then closed.
    let resp = read_response(&mut r, false).map(|r| r.status);
    assert!(closed_within(&mut r, Duration::from_secs(2)));
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(180), "closed after {took:?}");
    assert!(took < Duration::from_millis(1_000), "closed after {took:?}");
    assert_eq!(resp, Some(408));
    assert!(
        server.wait_for(Duration::from_secs(1), |s, open| s.timed_out == 1
            && open == 0)
    );
}

#[test]
fn an_idle_keep_alive_connection_outlives_the_header_timeout_until_the_idle_timeout() {
    let server = Server::start(
        HttpLimits {
            header_timeout_ms: 100,
            idle_timeout_ms: 500,
            ..limits()
        },
        metrics_body(),
    );
    let (_, mut r) = exchange(&server, &get("/metrics"), false);
    thread::sleep(Duration::from_millis(250));
    r.get_mut().write_all(&get("/metrics")).expect("write");
    assert_eq!(read_response(&mut r, false).map(|r| r.status), Some(200));
    let t0 = Instant::now();
    assert!(closed_within(&mut r, Duration::from_secs(2)));
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(server.stats().timed_out, 0);
}

#[test]
fn connections_over_the_limit_are_closed_and_the_server_recovers() {
    let server = Server::start(
        HttpLimits {
            max_conns: 64,
            ..limits()
        },
        metrics_body(),
    );
    let clients: Vec<TcpStream> = (0..100).map(|_| server.connect()).collect();
    assert!(
        server.wait_for(Duration::from_secs(2), |s, open| s.refused == 36
            && open == 64)
    );
    let mut closed = 0;
    for c in &clients {
        c.set_nonblocking(true).expect("nonblocking");
        match (&*c).read(&mut [0u8; 16]) {
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            _ => closed += 1,
        }
    }
    assert_eq!(closed, 36);
    // Full: a newcomer is closed too.
    assert!(!served(&server));
    drop(clients);
    assert!(server.wait_for(Duration::from_secs(2), |_, open| open == 0));
    assert!(served(&server));
}

#[test]
fn a_client_that_never_reads_a_large_response_does_not_block_others() {
    let big = vec![b'x'; 8 * 1024 * 1024];
    let server = Server::start(
        HttpLimits {
            idle_timeout_ms: 1_000,
            ..limits()
        },
        big.clone(),
    );
    let mut stalled = server.connect();
    stalled.write_all(&get("/metrics")).expect("write");
    assert!(server.wait_for(Duration::from_secs(2), |s, _| s.scrapes == 1));
    let (resp, _) = exchange(&server, &get("/metrics"), false);
    assert_eq!((resp.status, resp.body.len()), (200, big.len()));
    // Served while the stalled one still holds its response (too big for the socket buffers).
    assert_eq!(server.stats().timed_out, 0);
    // The stalled writer is dropped after the idle timeout without progress.
    assert!(server.wait_for(Duration::from_secs(3), |s, _| s.timed_out == 1));
}

#[test]
fn a_response_over_max_response_bytes_closes_the_connection() {
    let server = Server::start(
        HttpLimits {
            max_response_bytes: 1024,
            ..limits()
        },
        vec![b'x'; 2048],
    );
    let mut s = server.connect();
    s.write_all(&get("/metrics")).expect("write");
    let mut r = BufReader::new(s);
    assert!(read_response(&mut r, false).is_none());
    assert!(
        server.wait_for(Duration::from_secs(1), |s, open| s.overflowed == 1
            && open == 0)
    );
}

#[test]
fn curl_scrapes_metrics() {
    let server = Server::start(limits(), metrics_body());
    let url = format!("http://{}/metrics", server.addr);
    // Two URLs: curl reuses the kept-alive connection for the second.
    let out = match std::process::Command::new("curl")
        .args(["-s", "-S", "--fail", "--max-time", "5", &url, &url])
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            println!("curl not on PATH: skipping curl_scrapes_metrics");
            return;
        }
        Err(e) => panic!("curl: {e}"),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, [metrics_body(), metrics_body()].concat());
    assert!(
        server.wait_for(Duration::from_secs(2), |s, _| s.scrapes == 2
            && s.bad_requests == 0)
    );
}
