#![no_main]
//! cargo fuzz target `fold_tags`: see `highwater_fuzz::harness::fold_tags`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    highwater_fuzz::run(highwater_fuzz::harness::fold_tags, data);
});
