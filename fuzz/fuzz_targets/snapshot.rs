//! Fuzz target `snapshot`: see `jackrabbit_dlm_fuzz::snapshot` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::snapshot::check(data));
