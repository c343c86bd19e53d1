//! `wire::decode` and `LineReader` on arbitrary bytes (see `core/tests/support/fuzz_harness.rs`).
#![no_main]

#[path = "../../core/tests/support/fuzz_harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::decode_line(data));
