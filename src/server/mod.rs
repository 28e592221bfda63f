//! The only module that does I/O.
