//! The fuzz targets of `fuzz/` as bounded property tests, so CI runs them on every change:
//! the same harness (`support/fuzz_harness.rs`) fed proptest's byte vectors instead of
//! libFuzzer's. A few seconds in all; the long runs are cargo-fuzz's (docs/HARDENING.md).
//!
//! A failure prints the minimal byte vector; proptest also stores its seed under
//! `proptest-regressions/` so the case is replayed on every run.

#[path = "support/fuzz_harness.rs"]
mod harness;

use harness::{decode_line, node_inputs, Reached, Role};
use proptest::prelude::*;

/// Bytes that look like protocol lines often enough to get past the JSON parser: fragments
/// of real messages glued together, mixed with raw bytes.
fn line_bytes() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop_oneof![
        Just(&b"{\"type\":\"GOSSIP_MSG\",\"payload\":{\"message\":\"1:1.2.3.4:1\",\"origin_ip\":\"1.2.3.4\",\"msg_no\":1,\"sender\":\"127.0.0.1:9\"}}"[..]),
        Just(&b"{\"type\":\"REGISTER_REQ\",\"payload\":{\"peer_ip\":\"127.0.0.1\",\"peer_port\":7001}}"[..]),
        Just(&b"{\"type\":\"PEER_LIST_RESP\",\"payload\":{\"peers\":[\"127.0.0.1:1\"],\"seed\":\"127.0.0.1:2\"}}"[..]),
        Just(&b"{\"type\":\"SEED_SYNC\",\"payload\":{\"seed\":\"127.0.0.1:2\",\"buckets\":[],\"entries\":[{\"peer\":\"127.0.0.1:1\",\"incarnation\":1,\"status\":\"ALIVE\",\"votes\":[]}]}}"[..]),
        Just(&b"\n"[..]),
        Just(&b"\r\n"[..]),
        Just(&b"  "[..]),
        Just(&b"[[[[[[[["[..]),
        Just(&b"\"\\u0000\""[..]),
    ]
    .prop_map(<[u8]>::to_vec);
    let piece = prop_oneof![fragment, proptest::collection::vec(any::<u8>(), 0..24),];
    (
        any::<u8>(),
        proptest::collection::vec(piece, 0..8),
        proptest::collection::vec((any::<u16>(), any::<u8>()), 0..4),
    )
        .prop_map(|(knob, pieces, flips)| {
            let mut out = vec![knob];
            out.extend(pieces.concat());
            // A few byte flips inside the real fragments: truncation, bad types, bad UTF-8.
            for (at, to) in flips {
                let len = out.len();
                if len > 1 {
                    out[1 + usize::from(at) % (len - 1)] = to;
                }
            }
            out
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn decode_line_never_panics_and_frames_like_the_model(data in line_bytes()) {
        decode_line(&data);
    }

    #[test]
    fn decode_line_on_raw_bytes(data in proptest::collection::vec(any::<u8>(), 0..256)) {
        decode_line(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn seed_keeps_its_promises_on_any_inputs(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        node_inputs(Role::Seed, &data);
    }

    #[test]
    fn peer_keeps_its_promises_on_any_inputs(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        node_inputs(Role::Peer, &data);
    }

    #[test]
    fn lazy_peer_keeps_its_promises_on_any_inputs(data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        node_inputs(Role::LazyPeer, &data);
    }
}

/// Deterministic long byte strings reach deep states (registrations certified, neighbours
/// chosen): the properties above are not only checked on nodes that did nothing.
#[test]
fn long_inputs_reach_interesting_states() {
    let mut total = [Reached::default(); 3];
    for (i, role) in [Role::Seed, Role::Peer, Role::LazyPeer]
        .into_iter()
        .enumerate()
    {
        for run in 0..20u64 {
            let mut x = run.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let data: Vec<u8> = (0..8_000)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let r = node_inputs(role, &data);
            total[i].replies += r.replies;
            total[i].sends += r.sends;
            total[i].size = total[i].size.max(r.size);
        }
    }
    eprintln!(
        "reached: seed {:?}, peer {:?}, lazy peer {:?}",
        total[0], total[1], total[2]
    );
    let [seed, peer, lazy] = total;
    assert!(
        seed.replies > 1_000 && seed.sends > 100 && seed.size >= 2,
        "{seed:?}"
    );
    for peer in [peer, lazy] {
        assert!(
            peer.replies > 1_000 && peer.sends > 100 && peer.size >= 2,
            "{peer:?}"
        );
    }
}

/// Every input a long fuzz run found failing (kept in `fuzz-regressions/`, named
/// `<target>-<what it found>.bin`), replayed on every run.
#[test]
fn fuzz_regressions_replay() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz-regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz-regressions directory") {
        let path = entry.expect("entry").path();
        let data = std::fs::read(&path).expect("read regression input");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.starts_with("decode_line-") {
            decode_line(&data);
        } else if let Some((&role, program)) = data.split_first() {
            // As fuzz/fuzz_targets/node_inputs.rs reads it: the first byte picks the role.
            let role = match role % 4 {
                1 => Role::Peer,
                3 => Role::LazyPeer,
                _ => Role::Seed,
            };
            node_inputs(role, program);
        }
        replayed += 1;
    }
    assert!(replayed > 0, "no regression inputs in {}", dir.display());
}
