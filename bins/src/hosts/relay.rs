//! The relay: the machine's own namespace cannot reach the hosts, so a client that must talk
//! to a node from outside (the test suite's status queries) sends its request line through a
//! small server run inside a host namespace, over a Unix socket (a file, which every
//! namespace sees).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::time::Duration;
/// What a relay answers instead of a reply line when it could not get one.
pub const RELAY_ERROR: &str = "#relay-error: ";

/// Runs a relay on the Unix socket `socket` until the process is killed: each connection
/// sends one header line `<ip:port> <timeout ms>`, then one request line; the relay sends the
/// request to that node from this namespace on a fresh TCP connection and answers with the
/// node's reply line (at most `max_reply` bytes), or with a line starting [`RELAY_ERROR`].
pub fn serve_relay(socket: &Path, max_reply: u64) -> Result<(), String> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .map_err(|e| format!("cannot listen on {}: {e}", socket.display()))?;
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        std::thread::spawn(move || {
            let mut out = match conn.try_clone() {
                Ok(o) => o,
                Err(_) => return,
            };
            let reply = relay_one(conn, max_reply).unwrap_or_else(|e| {
                let mut line = format!("{RELAY_ERROR}{e}").into_bytes();
                line.retain(|b| *b != b'\n');
                line.push(b'\n');
                line
            });
            let _ = out.write_all(&reply);
        });
    }
    Ok(())
}

fn relay_one(conn: UnixStream, max_reply: u64) -> Result<Vec<u8>, String> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(conn);
    let mut header = String::new();
    reader
        .read_line(&mut header)
        .map_err(|e| format!("header: {e}"))?;
    let mut parts = header.split_whitespace();
    let addr: SocketAddr = parts
        .next()
        .and_then(|a| a.parse().ok())
        .ok_or_else(|| format!("bad header {header:?}"))?;
    let timeout = Duration::from_millis(
        parts
            .next()
            .and_then(|t| t.parse().ok())
            .unwrap_or(2000u64)
            .max(1),
    );
    let mut request = Vec::new();
    reader
        .read_until(b'\n', &mut request)
        .map_err(|e| format!("request: {e}"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{addr}: {e}"))?;
    stream
        .write_all(&request)
        .map_err(|e| format!("{addr}: send: {e}"))?;
    let mut reply = Vec::new();
    BufReader::new(stream.take(max_reply))
        .read_until(b'\n', &mut reply)
        .map_err(|e| format!("{addr}: no reply: {e}"))?;
    if reply.is_empty() {
        return Err(format!("{addr} closed without a reply"));
    }
    if reply.last() != Some(&b'\n') {
        reply.push(b'\n');
    }
    Ok(reply)
}

/// Opens a connection through the relay at `socket` to `addr`: the returned stream carries
/// one request line and then one reply line, as a TCP connection to the node would.
pub fn relay_connect(
    socket: &Path,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<UnixStream, String> {
    let mut s = UnixStream::connect(socket)
        .map_err(|e| format!("cannot reach the relay {}: {e}", socket.display()))?;
    // The relay waits up to `timeout` to connect and as long again for the reply.
    let limit = timeout * 2 + Duration::from_millis(500);
    s.set_read_timeout(Some(limit))
        .and_then(|()| s.set_write_timeout(Some(limit)))
        .map_err(|e| e.to_string())?;
    s.write_all(format!("{addr} {}\n", timeout.as_millis()).as_bytes())
        .map_err(|e| format!("relay: {e}"))?;
    Ok(s)
}
