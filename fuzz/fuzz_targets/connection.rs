//! Fuzz target `connection`: see `jackrabbit_dlm_fuzz::connection` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::connection::check(data));
