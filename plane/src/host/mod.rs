//! What both binaries need from the host, written once: the wall clock, the atomic file
//! writer, the key file, a small HTTP server and aligned text tables. Pure crates never use this module (they take `now_ms` as input).

pub mod clock;
pub mod files;
pub mod http;
pub mod keyfile;
pub mod text;
