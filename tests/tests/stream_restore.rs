//! `tic decompress -` (`tic_runtime::extract_stream`): restoring an
//! artifact as it streams in gives the files a restore from the file gives,
//! however the stream is split; and a damaged, cut or extended stream, an
//! untrusted signer or a missing identity fails with the error the file
//! would give, leaving nothing at the output (not even the directories
//! that were to hold it) and nothing beside it.

use std::path::{Path, PathBuf};

use tic_format::crypto::{Identity, Recipient};
use tic_runtime::{Artifact, RuntimeError};
use tic_tests::*;

/// A model of several files: two safetensors shards (one with a tensor of
/// over 8 MiB, so a restore reads it in several windows), an empty file
/// and one in a sub-folder.
fn sharded_model(dir: &Path) -> PathBuf {
    let first = safetensors_bytes(&[
        Tensor::random("a.weight", "BF16", &[256, 64], 1),
        Tensor::random("big", "U8", &[9 << 20], 2),
        Tensor::random("c.bias", "F32", &[100], 3),
    ]);
    let second = safetensors_bytes(&[
        Tensor::random("d.weight", "BF16", &[64, 64], 4),
        Tensor::random("e", "I64", &[7], 5),
    ]);
    write_files(
        dir,
        &[
            ("config.json", br#"{"hidden_size":64}"#.to_vec()),
            ("model-00001-of-00002.safetensors", first),
            ("model-00002-of-00002.safetensors", second),
            ("empty.txt", Vec::new()),
            ("1_Pooling/config.json", br#"{"pooling":"mean"}"#.to_vec()),
        ],
    )
}

#[test]
fn a_streamed_restore_gives_the_files_of_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = sharded_model(&dir.path().join("model"));
    let want = sha256_tree(&model);
    let key = signing_key();
    let sym = symmetric_key();
    let art = dir.path().join("m.tic");
    // Default chunks (1 MiB), so the big tensor spans several windows.
    tic_compiler::compile(
        &model,
        &art,
        &tic_compiler::CompileOptions {
            signing_key: Some(key.clone()),
            recipients: vec![Recipient::Symmetric(sym.clone())],
            ..Default::default()
        },
        &tic_runtime::NoProgress,
    )
    .unwrap();
    let opts = options(
        &[key.verifying_key()],
        false,
        vec![Identity::Symmetric(sym)],
    );
    let from_file = dir.path().join("from-file");
    let r = Artifact::open(&art, &opts)
        .unwrap()
        .extract(&from_file, false, &tic_runtime::NoProgress)
        .unwrap();
    assert_eq!(sha256_tree(&from_file), want);

    for step in [1 << 20, 65_536, 7_919] {
        let out = dir.path().join(format!("streamed-{step}"));
        let s = extract_streamed(&art, &opts, &out, false, step).unwrap();
        assert_eq!(sha256_tree(&out), want, "read {step} bytes at a time");
        assert_eq!(
            s.files
                .iter()
                .map(|f| f.strip_prefix(&out).unwrap())
                .collect::<Vec<_>>(),
            r.files
                .iter()
                .map(|f| f.strip_prefix(&from_file).unwrap())
                .collect::<Vec<_>>()
        );
        assert_eq!((s.bytes, s.lossy_tensors.is_empty()), (r.bytes, true));
        assert_eq!(leftovers(dir.path()), Vec::<String>::new());
    }

    // Into an existing empty directory, and over a full one with force.
    let out = dir.path().join("existing");
    std::fs::create_dir(&out).unwrap();
    extract_streamed(&art, &opts, &out, false, 65_536).unwrap();
    assert_eq!(sha256_tree(&out), want);
    let err = extract_streamed(&art, &opts, &out, false, 65_536).unwrap_err();
    assert!(matches!(err, RuntimeError::OutputExists { .. }), "{err:?}");
    std::fs::write(out.join("old.txt"), b"old").unwrap();
    extract_streamed(&art, &opts, &out, true, 65_536).unwrap();
    assert_eq!(sha256_tree(&out), want, "replaced, old.txt gone");
    assert_eq!(leftovers(&out), Vec::<String>::new());

    // --force never empties a directory that holds the artifact streamed.
    let inside = out.join("m.tic");
    std::fs::copy(&art, &inside).unwrap();
    let err = extract_streamed(&inside, &opts, &out, true, 65_536).unwrap_err();
    assert!(
        matches!(&err, RuntimeError::OutputInUse { what, .. } if what == "the artifact being restored"),
        "{err:?}"
    );
    assert!(inside.exists());
    // Nor through another name of the directory.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&out, &link).unwrap();
    let err = extract_streamed(&inside, &opts, &link, true, 65_536).unwrap_err();
    assert!(matches!(&err, RuntimeError::OutputInUse { .. }), "{err:?}");
    assert!(inside.exists());

    // A path that climbs out of a directory yet to be made.
    let climbing = dir.path().join("missing").join("..").join("climbed");
    extract_streamed(&art, &opts, &climbing, false, 65_536).unwrap();
    assert_eq!(sha256_tree(&dir.path().join("climbed")), want);
}

#[test]
fn a_bad_stream_fails_as_the_file_does_and_restores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key();
    let sym = symmetric_key();
    let mut tensors = small_tensors(3);
    tensors.push(Tensor::random("big", "U8", &[300_000], 7));
    let model = model_with(&dir.path().join("model"), &tensors);
    let art = dir.path().join("a.tic");
    compile(
        &model,
        &art,
        Some(&key),
        vec![Recipient::Symmetric(sym.clone())],
    );
    let original = std::fs::read(&art).unwrap();
    let parts = Parts::split(&original);
    let h = parts.parsed_header();
    let opts = options(
        &[key.verifying_key()],
        false,
        vec![Identity::Symmetric(sym)],
    );
    // In directories that do not exist yet: a failed restore makes none.
    let out = dir.path().join("new").join("a").join("out");
    let bad = dir.path().join("bad.tic");
    // The error from the file (open, then extract) and from the stream
    // must be the same, and neither may leave anything behind.
    let both = |path: &Path, opts: &tic_runtime::OpenOptions, what: &str| -> RuntimeError {
        let from_file = Artifact::open(path, opts)
            .and_then(|a| a.extract(&out, false, &tic_runtime::NoProgress))
            .expect_err(what);
        assert!(
            !dir.path().join("new").exists(),
            "{what}: the file restore left the output or its parents"
        );
        let streamed = extract_streamed(path, opts, &out, false, 10_000).expect_err(what);
        assert_eq!(format!("{streamed:?}"), format!("{from_file:?}"), "{what}");
        assert!(
            !dir.path().join("new").exists(),
            "{what}: the streamed restore left the output or its parents"
        );
        assert_eq!(leftovers(dir.path()), Vec::<String>::new(), "{what}");
        streamed
    };

    // A byte changed in the middle of each chunk, the first and last
    // chunks' first and last bytes.
    let n = h.chunks.len();
    let mut spots: Vec<usize> = (0..n)
        .map(|i| {
            let r = parts.chunk_range(&h, i);
            r.start + r.len() / 2
        })
        .collect();
    spots.extend([
        parts.chunk_range(&h, 0).start,
        parts.chunk_range(&h, n - 1).end - 1,
    ]);
    for at in spots {
        let mut b = original.clone();
        b[at] ^= 0x10;
        std::fs::write(&bad, &b).unwrap();
        let err = both(&bad, &opts, &format!("byte {at} changed"));
        assert!(matches!(err, RuntimeError::ChunkDigest { .. }), "{err:?}");
    }

    // Cut in the front, in the payload and just short of the end; bytes
    // appended.
    let mut cuts = vec![
        20,
        parts.header_range().end - 1,
        parts.chunk_range(&h, n / 2).start + 3,
        original.len() - 1,
    ];
    cuts.dedup();
    for cut in cuts {
        std::fs::write(&bad, &original[..cut]).unwrap();
        both(&bad, &opts, &format!("cut at {cut}"));
    }
    let mut b = original.clone();
    b.extend_from_slice(b"\n");
    std::fs::write(&bad, &b).unwrap();
    let err = both(&bad, &opts, "a byte appended");
    assert!(err.to_string().contains("bytes long"), "{err}");

    // An untrusted signer; no identity; the wrong one.
    let other = signing_key().verifying_key();
    let untrusted = options(&[other], false, vec![Identity::Symmetric(symmetric_key())]);
    let err = both(&art, &untrusted, "untrusted signer");
    assert!(
        matches!(err, RuntimeError::UntrustedSigner { .. }),
        "{err:?}"
    );
    let err = both(
        &art,
        &options(&[key.verifying_key()], false, vec![]),
        "no identity",
    );
    assert!(matches!(err, RuntimeError::NeedIdentity { .. }), "{err:?}");
    let wrong = options(
        &[key.verifying_key()],
        false,
        vec![Identity::Symmetric(symmetric_key())],
    );
    both(&art, &wrong, "wrong identity");

    // The untouched artifact restores (the helper's output is the model's).
    extract_streamed(&art, &opts, &out, false, 10_000).unwrap();
    assert_eq!(sha256_tree(&out), sha256_tree(&model));
}
