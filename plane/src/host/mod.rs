//! What both binaries need from the host, written once: the wall clock, the atomic file
//! writer, and the key file. Pure crates never use this module (they take `now_ms` as input).

pub mod clock;
pub mod files;
pub mod keyfile;
