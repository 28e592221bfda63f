//! Fuzz target `store`: see `jackrabbit_dlm_fuzz::store` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::store::check(data));
