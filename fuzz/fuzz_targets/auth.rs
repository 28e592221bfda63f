//! Fuzz target `auth`: see `jackrabbit_dlm_fuzz::auth` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::auth::check(data));
