//! Lossless round trips: every original file comes back byte for byte, and
//! every tensor read through the runtime equals the original bytes.

mod support;

use std::path::Path;

use support::*;
use tic_compiler::{compile, CompileOptions};
use tic_runtime::{Artifact, NoProgress, OpenOptions, Trust};

fn round_trip(input: &Path, chunk_bytes: u64) -> Artifact {
    let dir = tempfile::tempdir().unwrap();
    let art_path = dir.path().join("a.tic");
    let key = tic_format::sign::generate_key().unwrap();
    let opts = CompileOptions {
        signing_key: Some(key.clone()),
        chunk_bytes,
        ..Default::default()
    };
    compile(input, &art_path, &opts, &NoProgress).unwrap();
    let art = Artifact::open(
        &art_path,
        &OpenOptions {
            trust: Trust {
                keys: vec![key.verifying_key()],
                allow_unsigned: false,
            },
            identities: vec![],
        },
    )
    .unwrap();
    art.verify_chunks(&NoProgress).unwrap();
    let out = dir.path().join("out");
    art.extract(&out, false, &NoProgress).unwrap();
    assert_eq!(
        digests(input),
        digests(&out),
        "restored files differ from {}",
        input.display()
    );
    // Keep the artifact alive past the temp dir by moving it out.
    let keep = tempfile::Builder::new()
        .suffix(".tic")
        .tempfile()
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    std::fs::copy(&art_path, &keep).unwrap();
    Artifact::open(
        &keep,
        &OpenOptions {
            trust: Trust {
                keys: vec![key.verifying_key()],
                allow_unsigned: false,
            },
            identities: vec![],
        },
    )
    .unwrap()
}

#[test]
fn example_model_round_trips_and_compresses() {
    let model = repo_root().join("examples/model");
    let art = round_trip(&model, tic_compiler::DEFAULT_CHUNK_BYTES);
    let h = art.header();
    assert!(
        h.files.len() >= 10,
        "the example is a whole model directory"
    );
    assert!(h.files.iter().any(|f| f.path == "1_Pooling/config.json"));
    let orig: u64 = h
        .tensors
        .iter()
        .filter(|t| t.dtype == tic_format::DType::BF16)
        .map(|t| t.orig_len)
        .sum();
    let stored: u64 = h
        .tensors
        .iter()
        .filter(|t| t.dtype == tic_format::DType::BF16)
        .flat_map(|t| h.tensor_chunks(t).map(|(_, c)| c.stored_len))
        .sum();
    let ratio = stored as f64 / orig as f64;
    assert!(
        ratio < 0.68,
        "BF16 weights should compress to about 66%, got {:.2}%",
        ratio * 100.0
    );
    std::fs::remove_file(art.path()).unwrap();
}

#[test]
fn shared_models_round_trip() {
    let Some(models) = shared_models() else {
        eprintln!(
            "SKIPPED: ../shared/models is not present; only the example model was round-tripped"
        );
        return;
    };
    let mut n = 0;
    for e in std::fs::read_dir(models).unwrap() {
        let dir = e.unwrap().path();
        if dir.is_dir() {
            let art = round_trip(&dir, tic_compiler::DEFAULT_CHUNK_BYTES);
            std::fs::remove_file(art.path()).unwrap();
            n += 1;
        }
    }
    assert!(n >= 2, "expected the shared F32 and BF16 models");
}

/// Tensors of every supported dtype with adversarial contents.
fn adversarial_tensors() -> Vec<(String, &'static str, Vec<u64>, Vec<u8>)> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut v: Vec<(String, &'static str, Vec<u64>, Vec<u8>)> = Vec::new();
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
    for dt in ["F8_E4M3", "F8_E5M2", "F8_E8M0", "U8", "I8"] {
        v.push((format!("{dt}.all_values"), dt, vec![3, 256], all8.clone()));
    }
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

#[test]
fn adversarial_tensors_of_every_dtype_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    std::fs::create_dir(&model).unwrap();
    let tensors = adversarial_tensors();
    let borrowed: Vec<(&str, &str, Vec<u64>, Vec<u8>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.as_str(), *d, s.clone(), b.clone()))
        .collect();
    write_safetensors(&model.join("model.safetensors"), &borrowed);
    std::fs::write(model.join("config.json"), b"{\"note\": \"adversarial\"}\n").unwrap();
    std::fs::write(model.join("empty.txt"), b"").unwrap();
    let dtypes: std::collections::BTreeSet<&str> = tensors.iter().map(|t| t.1).collect();
    assert_eq!(
        dtypes.len(),
        tic_format::DType::all().count(),
        "every supported dtype is covered"
    );

    // Small chunks (one tile) and the default both round trip.
    for chunk_bytes in [1, tic_compiler::DEFAULT_CHUNK_BYTES] {
        let art = round_trip(&model, chunk_bytes);
        for (name, _, _, bytes) in &tensors {
            assert_eq!(
                &art.read_tensor(name).unwrap(),
                bytes,
                "tensor {name} differs"
            );
        }
        // The compressible tensors were really compressed.
        let t = art.tensor("bf16.repeated").unwrap();
        let stored: u64 = art
            .header()
            .tensor_chunks(t)
            .map(|(_, c)| c.stored_len)
            .sum();
        assert!(
            stored < t.orig_len / 100,
            "a repeated value should cost almost nothing, got {stored}"
        );
        std::fs::remove_file(art.path()).unwrap();
    }
}

#[test]
fn single_file_input_restores_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("weights.safetensors");
    write_safetensors(&f, &[("w", "BF16", vec![4], vec![1, 2, 3, 4, 5, 6, 7, 8])]);
    let art = round_trip(&f, tic_compiler::DEFAULT_CHUNK_BYTES);
    assert_eq!(art.header().files[0].path, "weights.safetensors");
    std::fs::remove_file(art.path()).unwrap();
}
