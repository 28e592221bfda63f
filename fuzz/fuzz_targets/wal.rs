//! Fuzz target `wal`: see `jackrabbit_dlm_fuzz::wal` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::wal::check(data));
