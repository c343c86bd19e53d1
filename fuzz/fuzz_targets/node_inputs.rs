//! A seed and a peer fed arbitrary input sequences (see `core/tests/support/fuzz_harness.rs`).
//! The first byte picks the role (modulo 4: 1 a peer, 3 a lazy-push peer, else a seed), the
//! rest is the program.
#![no_main]

#[path = "../../core/tests/support/fuzz_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&role, program)) = data.split_first() {
        let role = match role % 4 {
            1 => harness::Role::Peer,
            3 => harness::Role::LazyPeer,
            _ => harness::Role::Seed,
        };
        harness::node_inputs(role, program);
    }
});
