//! A seed and a peer fed arbitrary input sequences (see `core/tests/support/fuzz_harness.rs`).
//! The first byte picks the role, the rest is the program.
#![no_main]

#[path = "../../core/tests/support/fuzz_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some((&role, program)) = data.split_first() {
        let role = if role & 1 == 0 {
            harness::Role::Seed
        } else {
            harness::Role::Peer
        };
        harness::node_inputs(role, program);
    }
});
