//! Stopping the operations that write output (compile, extract, rewrap,
//! attach-signature) through `Progress::cancelled`, which the CLI answers
//! from Ctrl-C: at whichever check the stop lands, the operation returns
//! `Interrupted`, leaves nothing at the output path (an output replaced
//! with `--force` keeps its old contents) and no temporary file or
//! directory beside it; a stop that comes after the last check lets the
//! operation finish whole. (`compiler/tests/signals.rs` sends real signals
//! to the `tic` binary.)

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tic_compiler::{AmendError, CompileError, CompileOptions, OutputError};
use tic_runtime::{Artifact, ErrorKind, Progress, RuntimeError};
use tic_tests::*;

/// Answers `cancelled` with false `allowed` times, then with true.
struct StopAfter {
    allowed: usize,
    asked: AtomicUsize,
}

impl StopAfter {
    fn new(allowed: usize) -> Self {
        StopAfter {
            allowed,
            asked: AtomicUsize::new(0),
        }
    }
}

impl Progress for StopAfter {
    fn cancelled(&self) -> bool {
        self.asked.fetch_add(1, Ordering::SeqCst) >= self.allowed
    }
}

/// A model of several files and tensors, most of several chunks (a chunk
/// holds at least one 65,536-element tile), so an operation checks many
/// times: 1.3 MB, 14 chunks.
fn chunky_model(dir: &Path) -> PathBuf {
    let tensors = vec![
        Tensor::random("a.weight", "BF16", &[512, 512], 1),
        Tensor::random("b.weight", "F32", &[256, 512], 2),
        Tensor::random("c.bias", "BF16", &[100], 3),
    ];
    let m = model_with(dir, &tensors);
    std::fs::write(m.join("tokenizer.json"), pseudo_random(4, 300_000)).unwrap();
    m
}

/// Runs `op` with a stop after 0, 1, 2, ... checks until it succeeds, and
/// checks `interrupted` on every failure and `done` on the success.
/// Returns how many runs were interrupted.
fn sweep<E: std::fmt::Display>(
    mut op: impl FnMut(&StopAfter) -> Result<(), E>,
    mut interrupted: impl FnMut(usize, E),
    mut done: impl FnMut(),
) -> usize {
    for allowed in 0..10_000 {
        let stop = StopAfter::new(allowed);
        match op(&stop) {
            Ok(()) => {
                assert!(
                    stop.asked.load(Ordering::SeqCst) <= allowed,
                    "a check answered stop after {allowed}, yet it finished"
                );
                done();
                return allowed;
            }
            Err(e) => interrupted(allowed, e),
        }
    }
    panic!("never finished");
}

#[test]
fn an_interrupted_compile_leaves_nothing_behind() {
    let dir = tempdir().unwrap();
    let model = chunky_model(&dir.path().join("model"));
    let out_dir = dir.path().join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let out = out_dir.join("m.tic");
    let opts = CompileOptions {
        chunk_bytes: SMALL_CHUNK_BYTES,
        ..Default::default()
    };
    let stops = sweep(
        |stop| {
            std::fs::remove_file(&out).ok();
            tic_compiler::compile(&model, &out, &opts, stop).map(drop)
        },
        |allowed, e| {
            match e {
                CompileError::Output(OutputError::Interrupted { path }) => assert_eq!(path, out),
                e => panic!("stop after {allowed} checks: {e}"),
            }
            assert!(!out.exists(), "stop after {allowed} checks left the output");
            assert_eq!(leftovers(&out_dir), Vec::<String>::new(), "after {allowed}");
        },
        || {
            let art = Artifact::open(&out, &options(&[], true, Vec::new())).unwrap();
            art.verify_chunks(&tic_runtime::NoProgress).unwrap();
        },
    );
    // Codec choice (a check per tensor), hashing and encoding (a check per
    // chunk) and the final one before the rename.
    assert!(stops > 20, "only {stops} checks");
}

#[test]
fn an_interrupted_extract_leaves_the_output_as_it_was() {
    let dir = tempdir().unwrap();
    let model = chunky_model(&dir.path().join("model"));
    let want = sha256_tree(&model);
    let art_path = dir.path().join("m.tic");
    compile(&model, &art_path, None, Vec::new());
    let art = Artifact::open(&art_path, &options(&[], true, Vec::new())).unwrap();
    let parent = dir.path().join("restore");
    std::fs::create_dir(&parent).unwrap();
    let out = parent.join("m");

    // Into a new directory.
    sweep(
        |stop| art.extract(&out, false, stop).map(drop),
        |allowed, e| {
            assert_eq!(e.kind(), ErrorKind::Interrupted, "after {allowed}: {e}");
            assert!(matches!(&e, RuntimeError::Interrupted { path } if *path == out));
            assert!(!out.exists(), "stop after {allowed} checks left the output");
            assert_eq!(leftovers(&parent), Vec::<String>::new(), "after {allowed}");
        },
        || assert_eq!(sha256_tree(&out), want),
    );

    // From a stream (`tic decompress -`), into a new directory.
    std::fs::remove_dir_all(&out).unwrap();
    let opts = options(&[], true, Vec::new());
    let stops = sweep(
        |stop| {
            let mut stream = std::fs::File::open(&art_path).unwrap();
            tic_runtime::extract_stream(&mut stream, &art_path, &opts, &out, false, stop).map(drop)
        },
        |allowed, e| {
            assert!(
                matches!(&e, RuntimeError::Interrupted { path } if *path == out),
                "{e}"
            );
            assert!(!out.exists(), "stop after {allowed} checks left the output");
            assert_eq!(leftovers(&parent), Vec::<String>::new(), "after {allowed}");
        },
        || assert_eq!(sha256_tree(&out), want),
    );
    assert!(stops >= 4, "only {stops} checks");

    // Over an old directory with --force: it stays whole until the end.
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("old.txt"), b"old").unwrap();
    let old = sha256_tree(&out);
    let stops = sweep(
        |stop| art.extract(&out, true, stop).map(drop),
        |allowed, e| {
            assert!(matches!(e, RuntimeError::Interrupted { .. }), "{e}");
            assert_eq!(sha256_tree(&out), old, "after {allowed}");
            assert_eq!(leftovers(&parent), Vec::<String>::new(), "after {allowed}");
        },
        || assert_eq!(sha256_tree(&out), want),
    );
    // One per file, one per window of chunks written, one before the swap.
    assert!(stops >= 4, "only {stops} checks");
}

#[test]
fn interrupted_rewrap_and_attach_signature_leave_the_artifact_as_it_was() {
    let dir = tempdir().unwrap();
    let model = chunky_model(&dir.path().join("model"));
    let art_path = dir.path().join("m.tic");
    let (id, r) = (symmetric_key(), symmetric_key());
    let ident = tic_format::crypto::Identity::Symmetric(id.clone());
    compile(
        &model,
        &art_path,
        None,
        vec![tic_format::crypto::Recipient::Symmetric(id)],
    );
    let before = std::fs::read(&art_path).unwrap();

    // In place (output = input): the artifact is only replaced at the end.
    let add = [tic_format::crypto::Recipient::Symmetric(r)];
    sweep(
        |stop| {
            tic_compiler::rewrap(
                &art_path,
                std::slice::from_ref(&ident),
                &add,
                &[],
                &art_path,
                true,
                stop,
            )
            .map(drop)
        },
        |allowed, e| {
            assert!(
                matches!(&e, AmendError::Output(OutputError::Interrupted { path }) if *path == art_path),
                "after {allowed}: {e}"
            );
            assert_eq!(std::fs::read(&art_path).unwrap(), before);
            assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        },
        || assert_ne!(std::fs::read(&art_path).unwrap(), before),
    );

    let key = signing_key();
    let signed = dir.path().join("signed.tic");
    let msg = tic_compiler::signing_message(&art_path).unwrap();
    let sig = ed25519_dalek::Signer::sign(&key, &msg).to_bytes();
    sweep(
        |stop| {
            tic_compiler::attach_signature(
                &art_path,
                &sig,
                &key.verifying_key(),
                &signed,
                false,
                stop,
            )
            .map(drop)
        },
        |allowed, e| {
            assert!(
                matches!(e, AmendError::Output(OutputError::Interrupted { .. })),
                "after {allowed}: {e}"
            );
            assert!(!signed.exists());
            assert_eq!(leftovers(dir.path()), Vec::<String>::new());
        },
        || {
            verify(&signed, &key.verifying_key()).unwrap();
        },
    );
}
