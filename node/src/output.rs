//! Plain-text tables and JSON printing for commands.

pub use hashmesh_plane::host::text::table;

/// Print a JSON value, pretty.
pub fn print_json(v: &serde_json::Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON values print"));
}

/// First `n` characters of an id, for tables.
#[must_use]
pub fn short(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
