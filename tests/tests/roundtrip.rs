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

#[test]
fn adversarial_tensors_of_every_dtype_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let (model, tensors) = adversarial_model(dir.path());
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

/// A compile is reproducible: the same inputs, signing key and options give
/// the same artifact bytes whatever the thread count, and whatever the
/// files' times (a copy of the model, made later), so anyone holding the
/// model and the key can check an artifact by compiling it again. (An
/// encrypted artifact differs every time: its file key is drawn afresh.)
#[test]
fn compiles_are_reproducible_across_thread_counts_and_copies() {
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = adversarial_model(dir.path());
    std::fs::write(model.join("tokenizer.json"), b"{\"version\":\"1.0\"}").unwrap();
    let key = tic_format::sign::generate_key().unwrap();
    let compile_with = |input: &Path, threads: usize, name: &str| -> Vec<u8> {
        let out = dir.path().join(name);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                compile(
                    input,
                    &out,
                    &CompileOptions {
                        signing_key: Some(key.clone()),
                        chunk_bytes: 64 << 10,
                        ..Default::default()
                    },
                    &NoProgress,
                )
            })
            .unwrap();
        std::fs::read(&out).unwrap()
    };
    let first = compile_with(&model, 1, "t1.tic");
    for threads in [2, 5] {
        let again = compile_with(&model, threads, &format!("t{threads}.tic"));
        assert!(again == first, "{threads} threads gave other bytes");
    }
    // A copy, its files written later in another order.
    let copy = dir.path().join("copy");
    let mut names: Vec<_> = std::fs::read_dir(&model)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    std::fs::create_dir(&copy).unwrap();
    for n in names.iter().rev() {
        std::fs::copy(model.join(n), copy.join(n)).unwrap();
    }
    assert!(
        compile_with(&copy, 2, "copy.tic") == first,
        "a copy gave other bytes"
    );
}
