#![no_main]
//! cargo fuzz target `checkpoint_decode`: see `highwater_fuzz::harness::checkpoint_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    highwater_fuzz::run(highwater_fuzz::harness::checkpoint_decode, data);
});
