//! Malformed and hostile input against a live seed and a live peer (real processes on
//! loopback): for every kind of bad input the node answers `ERROR` or closes (or, for a
//! well-formed message that lies or is out of place, answers without acting on it), stays up,
//! serves another client within 2 s, and the Peer List does not change. A 100 MB line without
//! a newline costs the node a bounded amount of memory.

mod hardening_support;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gossip_core::msg::*;
use gossip_core::wire;
use hardening_support::*;

/// What a kind of bad input must get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// `ERROR`, or the connection closed without a reply.
    Error,
    /// Some reply (the message is well-formed but lies or is out of place: the node may
    /// answer it, e.g. vote no, as long as nothing changes), or a close.
    Answer,
    /// No reply (blank input): a close, or nothing.
    Nothing,
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    /// Close the write side after the bytes (end of stream).
    eof: bool,
    expect: Expect,
}

fn case(name: &'static str, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name,
        bytes: bytes.into(),
        eof: false,
        expect,
    }
}

fn line(msg: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode(msg, 0.0, &mut out);
    out
}

fn reg_line(port: &str) -> Vec<u8> {
    format!("{{\"type\":\"REGISTER_REQ\",\"payload\":{{\"peer_ip\":\"127.0.0.1\",\"peer_port\":{port}}}}}\n")
        .into_bytes()
}

/// A `PING` line of exactly `len` bytes (newline excluded), padded by an ignored field.
fn ping_of_len(len: usize) -> Vec<u8> {
    let head = "{\"type\":\"PING\",\"payload\":{\"sender\":\"127.0.0.1:1\",\"pad\":\"";
    let tail = "\"}}";
    let pad = len - head.len() - tail.len();
    let mut out = Vec::with_capacity(len + 1);
    out.extend_from_slice(head.as_bytes());
    out.resize(head.len() + pad, b'x');
    out.extend_from_slice(tail.as_bytes());
    out.push(b'\n');
    out
}

/// Every kind of bad input, aimed at a network whose seeds are `seeds` and whose registered
/// peers are `a` and `b`.
fn corpus(seeds: &[SocketAddr], a: SocketAddr, b: SocketAddr) -> Vec<Case> {
    use Expect::*;
    let stranger: SocketAddr = "127.0.0.1:2".parse().expect("addr");
    let commit = |peer, votes: Vec<SocketAddr>, decision| {
        Message::RegisterCommit(Box::new(CommitSync {
            proposal_id: "forged".into(),
            decision,
            peer,
            source_seed: seeds[1],
            incarnation: Some(0),
            votes,
        }))
    };
    let dead_commit = |peer, votes: Vec<SocketAddr>| {
        Message::DeadCommit(Box::new(CommitSync {
            proposal_id: "forged".into(),
            decision: Decision::Commit,
            peer,
            source_seed: seeds[1],
            incarnation: None,
            votes,
        }))
    };
    let mut deep =
        String::from("{\"type\":\"PING\",\"payload\":{\"sender\":\"127.0.0.1:1\",\"x\":");
    deep.push_str(&"[".repeat(200));
    deep.push_str(&"]".repeat(200));
    deep.push_str("}}\n");
    let mut cases = vec![
        case("truncated JSON", &b"{\"type\":\"REGISTER_REQ\",\"payload\":{\"peer_ip\":\"127.0.0.1\",\"peer_po\n"[..], Error),
        Case { eof: true, ..case("truncated JSON, EOF without newline", &b"{\"type\":\"PING\",\"payload\":{\"sen"[..], Error) },
        Case { eof: true, ..case("valid request, EOF without newline", &b"{\"type\":\"STATUS_REQ\",\"payload\":{}}"[..], Answer) },
        case("CRLF line ending", &b"{\"type\":\"PING\",\"payload\":{\"sender\":\"127.0.0.1:1\"}}\r\n"[..], Answer),
        Case { eof: true, ..case("empty lines only", &b"\n\n\n\n"[..], Nothing) },
        Case { eof: true, ..case("whitespace-only lines", &b"  \t \r\n\r\n \n"[..], Nothing) },
        case("invalid UTF-8", &b"{\"type\":\"PING\",\"payload\":{\"sender\":\"\xff\xfe\xfd\"}}\n"[..], Error),
        case("NUL bytes before JSON", &b"\0\0\0{\"type\":\"STATUS_REQ\",\"payload\":{}}\n"[..], Error),
        case("raw NUL inside a string", &b"{\"type\":\"PING\",\"payload\":{\"sender\":\"127.0.0.1:1\0\"}}\n"[..], Error),
        case("nesting deeper than 128", deep.into_bytes(), Error),
        case("not JSON at all", &b"hello seed, let me in\n"[..], Error),
        case("JSON array", &b"[1,2,3]\n"[..], Error),
        case("JSON string", &b"\"REGISTER_REQ\"\n"[..], Error),
        case("type is a number", &b"{\"type\":5,\"payload\":{}}\n"[..], Error),
        case("payload is a list", &b"{\"type\":\"PING\",\"payload\":[]}\n"[..], Error),
        case("missing payload", &b"{\"type\":\"PING\"}\n"[..], Error),
        case("missing type", &b"{\"payload\":{}}\n"[..], Error),
        case("unknown type", &b"{\"type\":\"GIVE_ME_ROOT\",\"payload\":{}}\n"[..], Error),
        case("missing field", &b"{\"type\":\"REGISTER_REQ\",\"payload\":{\"peer_ip\":\"127.0.0.1\"}}\n"[..], Error),
        case("wrong field type", reg_line("\"7000\""), Error),
        case("negative port", reg_line("-1"), Error),
        case("overflowing port", reg_line("99999999999999999999999999"), Error),
        case("float port", reg_line("7000.5"), Error),
        case("port 0", reg_line("0"), Error),
        case("port 70000", reg_line("70000"), Error),
        case("bad IP", &b"{\"type\":\"REGISTER_REQ\",\"payload\":{\"peer_ip\":\"999.1.1.1\",\"peer_port\":5}}\n"[..], Error),
        case("negative incarnation", &b"{\"type\":\"HELLO\",\"payload\":{\"peer_ip\":\"127.0.0.1\",\"peer_port\":5,\"degree\":-3}}\n"[..], Error),
        case("overflowing counter", &b"{\"type\":\"GOSSIP_MSG\",\"payload\":{\"message\":\"1:1.2.3.4:1\",\"origin_ip\":\"1.2.3.4\",\"msg_no\":18446744073709551616,\"sender\":\"127.0.0.1:1\"}}\n"[..], Error),
        case("list over the cap", format!("{{\"type\":\"SEED_SYNC\",\"payload\":{{\"seed\":\"{}\",\"buckets\":[{}0],\"entries\":[]}}}}\n", seeds[1], "0,".repeat(wire::MAX_LIST)).into_bytes(), Error),
        case("line one byte over the limit", ping_of_len(wire::DEFAULT_MAX_LINE + 1), Error),
        case("line exactly at the limit", ping_of_len(wire::DEFAULT_MAX_LINE), Answer),
        case("binary garbage with newlines", (0..4096u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect::<Vec<u8>>(), Error),
        // Replies nobody asked for.
        case("unsolicited PONG", line(&Message::Pong(Pong { responder: b, degree: Some(1), incarnation: None, leaving: false })), Error),
        case("unsolicited HELLO_ACK", line(&Message::HelloAck(Box::new(HelloAck { accepted: true, peer: b, degree: 1, incarnation: None }))), Error),
        case("unsolicited REGISTER_COMMIT result", line(&Message::RegisterResult(Box::new(RegisterResult { proposal_id: "x".into(), success: true, yes_votes: 3, quorum: 2, incarnation: None, error: None }))), Error),
        case("unsolicited PEER_LIST_RESP", line(&Message::PeerListResp(Box::new(PeerListResp { peers: vec![stranger], seed: seeds[1], incarnations: vec![], total: None, requester_entry: None }))), Error),
        case("unsolicited SEED_SYNC reply", line(&Message::SeedSync(Box::new(SeedSync { seed: seeds[1], buckets: vec![0; SYNC_BUCKETS], entries: vec![Entry { peer: stranger, incarnation: 0, status: Status::Alive, votes: vec![] }], reply: true }))), Error),
        case("vote reply for an unknown proposal", line(&Message::RegisterVoteResp(Box::new(VoteResp { proposal_id: "nope".into(), vote: true, voter: seeds[1], known_incarnation: None }))), Error),
        case("ERROR as a request", line(&Message::error("you are wrong")), Answer),
        // Well-formed lies and messages invalid in the node's state.
        case("commit without a certificate", line(&commit(stranger, vec![], Decision::Commit)), Answer),
        case("commit with one vote of three seeds", line(&commit(stranger, vec![seeds[1]], Decision::Commit)), Answer),
        case("commit with a duplicated vote", line(&commit(stranger, vec![seeds[1], seeds[1]], Decision::Commit)), Answer),
        case("commit voted by strangers", line(&commit(stranger, vec![stranger, a, b], Decision::Commit)), Answer),
        case("removal commit without a certificate", line(&dead_commit(a, vec![])), Answer),
        case("removal commit voted by peers", line(&dead_commit(a, vec![a, b])), Answer),
        case("anti-entropy with uncertified entries", line(&Message::SeedSync(Box::new(SeedSync { seed: seeds[1], buckets: vec![1; SYNC_BUCKETS], entries: vec![Entry { peer: a, incarnation: 9, status: Status::Removed, votes: vec![seeds[1]] }], reply: false }))), Answer),
        case("spoofed DEAD_REPORT about a live peer", line(&Message::DeadReport(Box::new(DeadReport { dead: b, self_ip: a.ip(), timestamp: 1, reporter: a, text: None, incarnation: None, witnesses: vec![a] }))), Answer),
        case("vote request from a spoofed proposer", line(&Message::RegisterVote(Box::new(VoteReq { proposal_id: "spoof".into(), peer: stranger, incarnation: None, proposer: seeds[1] }))), Answer),
        case("removal vote request about a live peer", line(&Message::DeadVote(Box::new(VoteReq { proposal_id: "spoof2".into(), peer: a, incarnation: None, proposer: seeds[2] }))), Answer),
        case("gossip with a spoofed sender", line(&Message::Gossip(Gossip { body: Arc::new(GossipBody { text: "1:127.0.0.1:99".into(), origin_ip: b.ip(), origin_port: Some(b.port()), msg_no: 99, app: None  }), sender: b, hops: 1 })), Answer),
        case("suspicion request from a spoofed requester", line(&Message::SuspectReq(Box::new(SuspectReq { suspect: b, requester: seeds[0] }))), Answer),
    ];
    let mut pipelined = Vec::new();
    for _ in 0..100 {
        pipelined.extend(line(&Message::Ping(Ping {
            sender: stranger,
            suspected_by: None,
        })));
    }
    cases.push(case("100 requests in one write", pipelined, Answer));
    cases
}

/// 100 requests, every third one junk, in one write: 100 answers in order, `ERROR` exactly
/// for the junk (bad lines do not desynchronise a pipelined connection).
fn pipelined_with_junk(target: SocketAddr) {
    let mut s = TcpStream::connect(target).expect("connect");
    let mut bytes = Vec::new();
    let mut want = Vec::new();
    for i in 0..100 {
        if i % 3 == 2 {
            bytes.extend_from_slice(b"{\"type\":\"PING\",\"payload\":{\"sender\":7}}\n");
            want.push("ERROR");
        } else {
            bytes.extend(line(&Message::StatusReq));
            want.push("STATUS_RESP");
        }
    }
    s.write_all(&bytes).expect("write");
    let mut got = Vec::new();
    let mut reader = wire::LineReader::new(1 << 24);
    let end = Instant::now() + Duration::from_secs(5);
    let mut buf = vec![0u8; 1 << 16];
    while got.len() < want.len() && Instant::now() < end {
        use std::io::Read;
        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reader.push(buf.get(..n).unwrap_or_default()),
            Err(_) => continue,
        }
        while let Some(Ok(l)) = reader.next_line() {
            got.push(
                wire::decode(l)
                    .map(|m| m.type_name())
                    .unwrap_or("undecodable"),
            );
        }
    }
    assert_eq!(got, want, "pipelined answers to {target}");
}

/// Sends every case to `target` and checks the promises after each; returns the kinds tried.
fn run_corpus(net: &mut Net, target: SocketAddr, a: SocketAddr, b: SocketAddr) -> usize {
    let seeds = net.seeds.clone();
    let baseline: Vec<_> = seeds.iter().map(|&s| peer_list(s)).collect();
    let cases = corpus(&seeds, a, b);
    let mut failures = Vec::new();
    for c in &cases {
        let answer = exchange(target, &c.bytes, c.eof, Duration::from_secs(3));
        let ok = match c.expect {
            Expect::Error => answer.is_error_or_close(),
            Expect::Answer => matches!(answer, Answer::Reply(_) | Answer::Closed),
            Expect::Nothing => matches!(answer, Answer::Closed | Answer::Silent),
        };
        let short = match &answer {
            Answer::Reply(m) => m.type_name().to_string(),
            other => format!("{other:?}").chars().take(40).collect(),
        };
        eprintln!("  {target} <- {:<45} -> {short}", c.name);
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {answer:?}",
                c.name, c.expect
            ));
        }
        let alive = net.proc(target).map(|p| p.running()).unwrap_or(false);
        assert!(alive, "{target} died after {:?}", c.name);
        let start = Instant::now();
        let served = status(target).is_some();
        assert!(
            served && start.elapsed() < Duration::from_secs(2),
            "{target} did not serve another client within 2 s after {:?}",
            c.name
        );
        // A forged change would show at once at the seed that got it; anti-entropy spreads it.
        let now = peer_list(seeds[0]);
        assert_eq!(now, baseline[0], "PL changed after {:?}", c.name);
    }
    pipelined_with_junk(target);
    // Give anti-entropy and any vote round time to act, then compare every seed.
    std::thread::sleep(Duration::from_millis(1_500));
    for (s, before) in seeds.iter().zip(&baseline) {
        assert_eq!(&peer_list(*s), before, "PL of {s} changed");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    cases.len()
}

/// Three seeds and two registered peers.
fn network(name: &str) -> (Net, SocketAddr, SocketAddr) {
    // Default timings: under load, a live peer must never look dead, or the Peer List
    // would change for a reason that is not the input under test.
    let mut net = Net::start_with(name, 3, &[], &[]);
    let a = net.add_peer_on([127, 0, 0, 1]);
    let b = net.add_peer_on([127, 0, 0, 1]);
    let seeds = net.seeds.clone();
    let joined = wait_for(Duration::from_secs(10), || {
        seeds
            .iter()
            .all(|&s| alive(s).is_some_and(|l| l.contains(&a) && l.contains(&b) && l.len() == 2))
    });
    assert!(joined, "peers did not register at every seed");
    (net, a, b)
}

#[test]
fn malformed_corpus_against_a_live_seed_and_peer() {
    let (mut net, a, b) = network("corpus");
    let seed = net.seeds[0];
    let kinds = run_corpus(&mut net, seed, a, b);
    run_corpus(&mut net, a, a, b);
    eprintln!("{kinds} kinds of bad input, each against a seed and a peer");
    assert!(kinds >= 30);
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}

/// Streams up to 100 MB without a newline at `target`, sampling its memory; returns the
/// largest growth in KiB and how many bytes it took before closing.
fn hundred_megabytes(net: &mut Net, target: SocketAddr) -> (u64, usize) {
    let pid = net.proc(target).and_then(|p| p.pid()).expect("running");
    let before = rss_kib(pid).expect("VmRSS");
    let mut s = TcpStream::connect(target).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let chunk = vec![b'a'; 1 << 16];
    let (mut sent, mut peak) = (0usize, before);
    while sent < 100 << 20 {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(_) => break,
        }
        if sent % (4 << 20) < chunk.len() {
            peak = peak.max(rss_kib(pid).unwrap_or(0));
        }
    }
    peak = peak.max(rss_kib(pid).unwrap_or(0));
    drop(s);
    (peak.saturating_sub(before), sent)
}

#[test]
fn a_100_mb_line_costs_bounded_memory() {
    let (mut net, a, _b) = network("bigline");
    for target in [net.seeds[0], a] {
        let (grew, sent) = hundred_megabytes(&mut net, target);
        eprintln!(
            "{target}: took {} MB without a newline, resident memory grew {} KiB",
            sent >> 20,
            grew
        );
        // The line buffer stops at the limit (1 MiB) plus one read; allow allocator slack.
        assert!(
            grew < 16 * 1024,
            "{target} grew {grew} KiB on a 100 MB line"
        );
        assert!(status(target).is_some(), "{target} stopped serving");
    }
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}

/// A client that pipelines requests and never reads its replies: the node stops reading from
/// it (backpressure) or drops it, keeps serving others, and its memory stays bounded.
#[test]
fn a_client_that_never_reads_costs_bounded_memory() {
    let (mut net, _a, _b) = network("noreader");
    let seed = net.seeds[0];
    let pid = net.proc(seed).and_then(|p| p.pid()).expect("running");
    let before = rss_kib(pid).expect("VmRSS");
    let mut s = TcpStream::connect(seed).expect("connect");
    s.set_write_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut req = Vec::new();
    for _ in 0..1_000 {
        req.extend(line(&Message::StatusReq));
    }
    // Up to 400,000 requests (20 MB; each reply carries the PL), until the node stops taking
    // them and the socket buffers are full.
    let mut written = 0usize;
    let mut peak = before;
    for _ in 0..400 {
        match s.write_all(&req) {
            Ok(()) => written += 1_000,
            Err(_) => break,
        }
        peak = peak.max(rss_kib(pid).unwrap_or(0));
    }
    let start = Instant::now();
    assert!(status(seed).is_some(), "the seed stopped serving others");
    assert!(start.elapsed() < Duration::from_secs(2));
    peak = peak.max(rss_kib(pid).unwrap_or(0));
    eprintln!(
        "never-reading client: {written} requests taken before the node stopped reading, \
         RSS {before} KiB -> peak {peak} KiB"
    );
    assert!(
        peak.saturating_sub(before) < 32 * 1024,
        "seed grew from {before} KiB to {peak} KiB"
    );
    drop(s);
    assert!(net.panics().is_empty(), "{:?}", net.panics());
}
