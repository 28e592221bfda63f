//! Fuzz target `peer`: see `jackrabbit_dlm_fuzz::peer` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::peer::check(data));
