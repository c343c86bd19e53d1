//! Floods against live seeds: 1,000 concurrent idle connections held open on one seed while
//! one client storms every seed with registrations (distinct fake peers and repeats, one-shot
//! and pipelined), and honest peers register meanwhile. The honest peers must still be
//! admitted within their normal deadline, no storm endpoint may enter the Peer List (seeds
//! probe registrants), every seed must keep serving, and the seeds' memory must stay bounded.

mod hardening_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossip_core::msg::{Message, RegisterReq, RoleStatus};
use gossip_core::wire;
use hardening_support::*;

const IDLE: usize = 1_000;
const HONEST: usize = 6;
/// How long the storm lasts after the honest peers start.
const STORM: Duration = Duration::from_secs(3);
/// An honest peer waits this long for a seed's answer (`register_timeout_ms`), retries after
/// `register_retry_ms`: admitted within one retry is "within its normal deadline".
const DEADLINE: Duration = Duration::from_millis(1_800 + 1_000 + 1_800);

/// A registration of a fake peer: on 127.77.0.0/16, a loopback range no other process on
/// the machine listens on, so its probe is surely refused.
fn register_line(port: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let [hi, lo] = port.to_be_bytes();
    let msg = Message::RegisterReq(Box::new(RegisterReq {
        peer: SocketAddr::from(([127, 77, hi, lo], port)),
        incarnation: None,
    }));
    wire::encode(&msg, 0.0, &mut out);
    out
}

/// One storm thread: alternates bursts of one-shot registrations with a pipelined batch on a
/// kept-alive connection, claiming fake peers for ports `base..base+spread` (nothing listens
/// there, so each admitted one is later a dead entry: the storm's cost is real work).
fn storm(seeds: Vec<SocketAddr>, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>, base: u16) {
    let spread = 2_000u16;
    let mut i = 0u16;
    while !stop.load(Ordering::Relaxed) {
        let seed = seeds[usize::from(i) % seeds.len()];
        if i & 3 == 0 {
            // Pipelined: 64 requests in one write, then read what comes back for a moment.
            if let Ok(mut s) = TcpStream::connect_timeout(&seed, Duration::from_millis(500)) {
                let mut batch = Vec::new();
                for k in 0..64u16 {
                    batch.extend(register_line(base + (i.wrapping_add(k * 31)) % spread));
                }
                if s.write_all(&batch).is_ok() {
                    sent.fetch_add(64, Ordering::Relaxed);
                }
                let _ = s.set_read_timeout(Some(Duration::from_millis(20)));
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf);
            }
        } else if let Ok(mut s) = TcpStream::connect_timeout(&seed, Duration::from_millis(500)) {
            if s.write_all(&register_line(base + i % spread)).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        i = i.wrapping_add(1);
    }
}

#[test]
fn idle_connections_and_a_registration_storm_do_not_starve_honest_peers() {
    // Seeds probe registrants before admitting them: the storm's endpoints, where nothing
    // listens, must never enter the Peer List.
    let mut net = Net::start("flood", 3, &[]);
    let seeds = net.seeds.clone();
    let target = seeds[0];
    let pid = net.proc(target).and_then(|p| p.pid()).expect("running");
    let rss_before = rss_kib(pid).expect("VmRSS");

    // 1,000 idle connections on one seed; a few trickle half a line and stop.
    let mut idle = Vec::with_capacity(IDLE);
    for i in 0..IDLE {
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Ok(mut s) => {
                if i % 10 == 3 {
                    let _ = s.write_all(b"{\"type\":\"REGISTER_RE");
                }
                idle.push(s);
            }
            Err(e) => panic!("connection {i} of {IDLE} refused: {e}"),
        }
    }
    assert!(
        status(target).is_some(),
        "seed stopped serving with {IDLE} idle connections"
    );

    // The storm, from this process (one address), at every seed.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let storms: Vec<_> = (0..2u16)
        .map(|t| {
            let (seeds, stop, sent) = (seeds.clone(), stop.clone(), sent.clone());
            std::thread::spawn(move || storm(seeds, stop, sent, 20_000 + t * 2_000))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    // Honest peers register meanwhile, each from its own 127.0.0.x address.
    let started = Instant::now();
    let honest: Vec<SocketAddr> = (0..HONEST)
        .map(|i| net.add_peer_on([127, 0, 0, 10 + i as u8]))
        .collect();
    let mut admitted = vec![None; HONEST];
    let mut peak = rss_before;
    // The storm runs its full course even once every honest peer is in.
    while started.elapsed() < STORM
        || (started.elapsed() < DEADLINE + Duration::from_secs(2)
            && admitted.iter().any(Option::is_none))
    {
        for (i, p) in honest.iter().enumerate() {
            if admitted[i].is_none() {
                if let Some(RoleStatus::Peer(s)) = status(*p).map(|s| s.role) {
                    if s.registered {
                        admitted[i] = Some(started.elapsed());
                    }
                }
            }
        }
        peak = peak.max(rss_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(50));
    }
    let served_during = status(target).is_some();
    stop.store(true, Ordering::Relaxed);
    for t in storms {
        let _ = t.join();
    }
    peak = peak.max(rss_kib(pid).unwrap_or(0));
    let mut still_open = 0;
    for s in &mut idle {
        let _ = s.set_nonblocking(true);
        let mut b = [0u8; 1];
        if matches!(s.read(&mut b), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock) {
            still_open += 1;
        }
    }
    let pl = peer_list(target).map(|l| l.len()).unwrap_or(0);
    eprintln!(
        "flood: {IDLE} idle connections ({still_open} still open at the end), {} storm registrations sent in {:?}, \
         seed RSS {} KiB -> peak {} KiB, PL size {pl}, honest peers admitted after {:?}",
        sent.load(Ordering::Relaxed),
        started.elapsed(),
        rss_before,
        peak,
        admitted
    );
    assert!(served_during, "the seed stopped serving during the flood");
    for (p, t) in honest.iter().zip(&admitted) {
        match t {
            Some(t) => assert!(*t <= DEADLINE, "{p} admitted only after {t:?}"),
            None => panic!("{p} was never admitted during the flood"),
        }
    }
    for s in &seeds {
        let l = alive(*s).unwrap_or_default();
        assert!(
            honest.iter().all(|p| l.contains(p)),
            "{s} lacks an honest peer"
        );
        let fake: Vec<_> = peer_list(*s)
            .unwrap_or_default()
            .into_iter()
            .filter(|e| !honest.contains(&e.0))
            .collect();
        assert!(
            fake.is_empty(),
            "{s} admitted {} storm endpoints, e.g. {:?}",
            fake.len(),
            fake.first()
        );
    }
    assert!(
        peak.saturating_sub(rss_before) < 64 * 1024,
        "seed memory grew from {rss_before} KiB to {peak} KiB"
    );
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}
