//! Fuzz target `codec`: see `jackrabbit_dlm_fuzz::codec` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| jackrabbit_dlm_fuzz::codec::check(data));
