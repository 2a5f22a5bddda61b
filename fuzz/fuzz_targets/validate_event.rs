#![no_main]
//! cargo fuzz target `validate_event`: see `highwater_fuzz::harness::validate_event`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    highwater_fuzz::run(highwater_fuzz::harness::validate_event, data);
});
