//! Fuzz target `frame`: see `jackrabbit_dlm_fuzz::frame` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::frame::check(data));
