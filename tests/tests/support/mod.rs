//! Test support: writing safetensors files and comparing directories.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `../shared/models` beside the repository, when it is there.
pub fn shared_models() -> Option<PathBuf> {
    let p = repo_root().join("../shared/models");
    p.is_dir().then_some(p)
}

/// Writes a safetensors file the way the reference writer does (see
/// [`tic_tests::safetensors_bytes`]).
pub fn write_safetensors(path: &Path, tensors: &[(&str, &'static str, Vec<u64>, Vec<u8>)]) {
    let tensors: Vec<tic_tests::Tensor> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| tic_tests::Tensor {
            name: name.to_string(),
            dtype,
            shape: shape.clone(),
            data: data.clone(),
        })
        .collect();
    std::fs::write(path, tic_tests::safetensors_bytes(&tensors)).unwrap();
}

/// Writes raw bytes as a file, for hand-made malformed inputs.
pub fn write_raw_safetensors(path: &Path, json: &str, data_len: usize) {
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    bytes.resize(bytes.len() + data_len, 0x5a);
    std::fs::write(path, bytes).unwrap();
}

/// SHA-256 of every file under `dir` (or of `dir` itself when it is a
/// file, keyed by its name), by relative path.
pub fn digests(dir: &Path) -> std::collections::BTreeMap<String, [u8; 32]> {
    if dir.is_file() {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        [(name, tic_format::sha256(&std::fs::read(dir).unwrap()))].into()
    } else {
        tic_tests::sha256_tree(dir)
    }
}

/// A deterministic xorshift generator.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    /// Roughly normal, mean 0, std `s`.
    pub fn normal(&mut self, s: f64) -> f64 {
        let u1 = (self.next() >> 11) as f64 / (1u64 << 53) as f64 + 1e-300;
        let u2 = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        s * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

/// Asserts that `err` matches a pattern (with an optional `if` guard),
/// showing the error, after an optional `format!`-style context, when it
/// does not: `assert_err!(err, E::Unsigned { .. })`,
/// `assert_err!(err, E::Decrypt { chunk, .. } if *chunk == j, "cut {cut}")`.
#[allow(unused_macros)]
macro_rules! assert_err {
    ($err:ident, $pat:pat $(if $guard:expr)? $(,)?) => {
        assert!(matches!(&$err, $pat $(if $guard)?), "{:?}", $err)
    };
    ($err:ident, $pat:pat $(if $guard:expr)?, $($context:tt)+) => {
        assert!(
            matches!(&$err, $pat $(if $guard)?),
            "{}: {:?}",
            format_args!($($context)+),
            $err
        )
    };
}
#[allow(unused_imports)]
pub(crate) use assert_err;
