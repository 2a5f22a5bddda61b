#![no_main]
//! cargo fuzz target `import_line`: see `highwater_fuzz::harness::import_line`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    highwater_fuzz::run(highwater_fuzz::harness::import_line, data);
});
