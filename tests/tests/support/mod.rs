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

/// A tensor as (name, dtype, shape, bytes).
pub type NamedTensor = (String, &'static str, Vec<u64>, Vec<u8>);

/// Tensors of every supported dtype with adversarial contents: all 65536
/// 16-bit patterns (every exponent, NaN payloads, infinities, subnormals,
/// zeros), odd sizes spanning tiles, a repeated value, empty and 0-d
/// tensors. (name, dtype, shape, bytes).
pub fn adversarial_tensors() -> Vec<NamedTensor> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut v: Vec<NamedTensor> = Vec::new();
    let u16s = |xs: Vec<u16>| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u32s = |xs: Vec<u32>| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let u64s = |xs: Vec<u64>| xs.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();

    // Every 16-bit pattern (all 256 BF16 exponents, NaN payloads, infinities,
    // subnormals, both zeros), in a scrambled order.
    let mut all16: Vec<u16> = (0..=u16::MAX).collect();
    for i in (1..all16.len()).rev() {
        all16.swap(i, (rng.next() % (i as u64 + 1)) as usize);
    }
    v.push((
        "bf16.all_patterns".into(),
        "BF16",
        vec![256, 256],
        u16s(all16.clone()),
    ));
    v.push(("f16.all_patterns".into(), "F16", vec![65536], u16s(all16)));
    // Realistic weights plus rare exponents, an odd size spanning tiles.
    let n = 131_071;
    let w: Vec<u16> = (0..n)
        .map(|i| match i % 997 {
            0 => 0x7fc1,                       // NaN with payload
            1 => 0xff80,                       // -inf
            2 => 0x0001,                       // smallest subnormal
            3 => 0x8000,                       // -0
            4 => (rng.next() as u16) | 0x7f80, // NaN/inf family
            _ => (half::bf16::from_f64(rng.normal(0.02))).to_bits(),
        })
        .collect();
    v.push(("bf16.weights_odd".into(), "BF16", vec![n as u64], u16s(w)));
    v.push((
        "bf16.repeated".into(),
        "BF16",
        vec![200_000],
        u16s(vec![0x3f80; 200_000]),
    ));
    v.push(("bf16.one".into(), "BF16", vec![1], u16s(vec![0x4049])));
    v.push(("bf16.scalar".into(), "BF16", vec![], u16s(vec![0xc2f7])));
    v.push(("bf16.empty".into(), "BF16", vec![0], vec![]));
    v.push(("f32.empty2d".into(), "F32", vec![3, 0], vec![]));
    let mut f: Vec<u32> = vec![
        0x7fc0_0001,
        0xffff_ffff,
        0x7f80_0001,
        0x7f80_0000,
        0xff80_0000,
        0,
        0x8000_0000,
        1,
        0x007f_ffff,
        0x8000_0001,
    ];
    f.extend((0..65_537).map(|_| (rng.normal(0.05) as f32).to_bits()));
    f.extend((0..3000).map(|_| rng.next() as u32));
    v.push(("f32.mixed".into(), "F32", vec![f.len() as u64], u32s(f)));
    let mut d: Vec<u64> = vec![
        0x7ff8_0000_0000_0001,
        0xfff0_0000_0000_0000,
        1,
        0x8000_0000_0000_0000,
    ];
    d.extend((0..10_000).map(|_| rng.normal(1.0).to_bits()));
    v.push(("f64.mixed".into(), "F64", vec![d.len() as u64], u64s(d)));
    let all8: Vec<u8> = (0..768).map(|i| (i % 256) as u8).collect();
    // Every one-byte dtype (BOOL too: tic stores its bytes as they are).
    for dt in tic_format::DType::all().filter(|d| d.bits() == 8) {
        let dt = dt.name();
        v.push((format!("{dt}.all_values"), dt, vec![3, 256], all8.clone()));
    }
    // Packed sub-byte dtypes: byte lengths that are not a multiple of the
    // tile, values skewed (compressible) then every byte.
    let skewed = |n: usize, rng: &mut Rng| -> Vec<u8> {
        (0..n)
            .map(|i| match i % 5 {
                0 => rng.next() as u8,
                _ => (rng.next() % 3) as u8 * 0x11,
            })
            .collect()
    };
    v.push((
        "f4.packed".into(),
        "F4",
        vec![2, 70_001],
        skewed(70_001, &mut rng),
    ));
    v.push((
        "f6_e2m3.packed".into(),
        "F6_E2M3",
        vec![4, 30_001],
        skewed(90_003, &mut rng),
    ));
    v.push((
        "f6_e3m2.all_bytes".into(),
        "F6_E3M2",
        vec![1024],
        all8.clone(),
    ));
    v.push((
        "bool.mask".into(),
        "BOOL",
        vec![70_000],
        (0..70_000).map(|_| (rng.next() & 1) as u8).collect(),
    ));
    v.push((
        "i16.small".into(),
        "I16",
        vec![5000],
        u16s((0..5000).map(|_| (rng.next() % 7) as u16).collect()),
    ));
    v.push((
        "u16.random".into(),
        "U16",
        vec![5000],
        u16s((0..5000).map(|_| rng.next() as u16).collect()),
    ));
    v.push((
        "i32.ids".into(),
        "I32",
        vec![4096],
        u32s((0..4096).collect()),
    ));
    v.push((
        "u32.random".into(),
        "U32",
        vec![999],
        u32s((0..999).map(|_| rng.next() as u32).collect()),
    ));
    v.push((
        "i64.positions".into(),
        "I64",
        vec![1, 512],
        u64s((0..512).collect()),
    ));
    v.push((
        "u64.random".into(),
        "U64",
        vec![333],
        u64s((0..333).map(|_| rng.next()).collect()),
    ));
    v.push((
        "c64.values".into(),
        "C64",
        vec![100],
        u64s((0..100).map(|_| rng.next()).collect()),
    ));
    v
}

/// A model directory `dir/model` holding [`adversarial_tensors`] in one
/// safetensors file, a `config.json` and an empty file; returns its path
/// and the tensors.
pub fn adversarial_model(dir: &Path) -> (PathBuf, Vec<NamedTensor>) {
    let model = dir.join("model");
    std::fs::create_dir(&model).unwrap();
    let tensors = adversarial_tensors();
    let borrowed: Vec<(&str, &str, Vec<u64>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
        .collect();
    write_safetensors(&model.join("model.safetensors"), &borrowed);
    std::fs::write(model.join("config.json"), b"{\"note\": \"adversarial\"}\n").unwrap();
    std::fs::write(model.join("empty.txt"), b"").unwrap();
    (model, tensors)
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
