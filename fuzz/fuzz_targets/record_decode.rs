#![no_main]
//! cargo fuzz target `record_decode`: see `highwater_fuzz::harness::record_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    highwater_fuzz::run(highwater_fuzz::harness::record_decode, data);
});
