//! Fuzz target `request`: see `jackrabbit_dlm_fuzz::request` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::request::check(data));
