//! Tests of the encryption constructions. Fast: no test here takes more
//! than a fraction of a second in the `test` profile.

mod chunks;
mod recipients;
mod vectors;
mod wycheproof;

use std::path::PathBuf;

/// Lowercase/uppercase hex to bytes; panics on bad input (test data only).
pub(crate) fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd-length hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub(crate) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub(crate) fn test_vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-vectors")
}
