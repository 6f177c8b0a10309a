//! The runtime API misused the way an embedding service can: an entry kept
//! from another artifact (or changed), a chunk index out of range, a plain
//! file asked for by name. Each gets a usage error that says what to do;
//! nothing panics.

use tic_runtime::{ErrorKind, RuntimeError};
use tic_tests::*;

/// A small model compiled under `dir` (`m/`, unsigned, into `m.tic`) and
/// the artifact opened: (model directory, artifact).
fn small_artifact(dir: &std::path::Path, seed: u64) -> (std::path::PathBuf, tic_runtime::Artifact) {
    let model = small_model(&dir.join("m"), seed);
    let path = dir.join("m.tic");
    compile(&model, &path, None, Vec::new());
    let art = tic_runtime::Artifact::open(&path, &options(&[], true, Vec::new())).unwrap();
    (model, art)
}

#[test]
fn entries_from_another_artifact_are_refused_not_read() {
    let dir = tempdir().unwrap();
    let key = signing_key();
    let vk = key.verifying_key();
    // A small model and a larger one with more chunks and tensors.
    let small = small_model(&dir.path().join("small"), 1);
    let mut tensors = small_tensors(2);
    tensors.push(Tensor::random("big.weight", "BF16", &[64, 1024], 3));
    let large = model_with(&dir.path().join("large"), &tensors);
    let (a, b) = (dir.path().join("a.tic"), dir.path().join("b.tic"));
    compile(&small, &a, Some(&key), Vec::new());
    compile(&large, &b, Some(&key), Vec::new());
    let a = open_trusting(&a, &vk).unwrap();
    let b = open_trusting(&b, &vk).unwrap();

    // Past the end of a's chunk table, and within it but not a's.
    let past = b.tensor("big.weight").unwrap();
    let within = b.tensor("embed.weight").unwrap();
    assert!(past.first_chunk as usize >= a.header().chunks.len());
    for t in [past, within] {
        let e = a.read_entry(t).unwrap_err();
        assert!(matches!(e, RuntimeError::ForeignEntry { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert!(e.to_string().contains("Artifact::tensor(name)"), "{e}");
        let e = a.read_stored_chunk(0, t).unwrap_err();
        assert!(matches!(e, RuntimeError::ForeignEntry { .. }), "{e:?}");
    }
    // A changed copy of an entry of its own.
    let mut changed = a.tensor("embed.weight").unwrap().clone();
    changed.orig_len -= 4;
    let e = a.read_tensor_into(&changed, &mut vec![0; changed.orig_len as usize]);
    assert!(matches!(e, Err(RuntimeError::ForeignEntry { .. })), "{e:?}");
    // An unchanged copy is its own entry.
    let copy = a.tensor("embed.weight").unwrap().clone();
    assert_eq!(
        a.read_entry(&copy).unwrap(),
        a.read_tensor("embed.weight").unwrap()
    );

    let e = a.read_stored_chunk(999, &copy).unwrap_err();
    assert!(
        matches!(e, RuntimeError::ChunkNotFound { index: 999, .. }),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(a.read_stored_chunk(copy.first_chunk.into(), &copy).is_ok());
}

#[test]
fn plain_files_are_read_by_name_and_kept_apart_from_tensors() {
    let dir = tempdir().unwrap();
    let (model, art) = small_artifact(dir.path(), 4);
    assert_eq!(
        art.read_file("config.json").unwrap(),
        std::fs::read(model.join("config.json")).unwrap()
    );
    let names: Vec<&str> = art.tensors().map(|t| t.name.as_str()).collect();
    assert_eq!(names, SMALL_TENSORS);
    for missing in ["model.safetensors", "nope.json"] {
        let e = art.read_file(missing).unwrap_err();
        assert!(matches!(e, RuntimeError::FileNotFound { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Usage);
    }
    // Debug output names the artifact and its shape, no key material.
    let shown = format!("{art:?}");
    assert!(
        shown.contains("m.tic") && shown.contains("chunks"),
        "{shown}"
    );
}

/// A service that must not run on host memory can refuse the CPU fallback;
/// by default a GPU load without a GPU decodes on the CPU, same bytes.
#[test]
fn a_gpu_load_can_refuse_to_fall_back_to_the_cpu() {
    use tic_runtime::{Device, LoadOptions};
    if let Ok(gpu) = tic_runtime::probe_cuda(0) {
        eprintln!("SKIPPED: a usable GPU is here ({gpu}), so there is no fallback to refuse");
        return;
    }
    let dir = tempdir().unwrap();
    let (_, art) = small_artifact(dir.path(), 5);
    let mut opts = LoadOptions::new(Device::Cuda(0));
    opts.fallback_to_cpu = false;
    let e = art.load_with(None, &opts).unwrap_err();
    assert!(matches!(e, RuntimeError::DeviceUnavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot decode on cuda:0"), "{e}");
    opts.fallback_to_cpu = true;
    for t in art.load_with(None, &opts).unwrap() {
        assert_eq!(t.device(), Device::Cpu);
        let want = art.read_tensor(&t.name).unwrap();
        assert_eq!(t.into_host().unwrap(), want);
    }
}

/// `check_loaded` (the `verify` stage that `tic load` runs on its own)
/// passes what a load gave and names the tensor whose bytes changed.
#[test]
fn loaded_tensors_are_checked_against_their_digests() {
    use tic_runtime::{Device, LoadOptions, TensorBuffer};
    let dir = tempdir().unwrap();
    let (_, art) = small_artifact(dir.path(), 5);
    let mut opts = LoadOptions::new(Device::Cpu);
    opts.verify = false;
    let mut loaded = art.load_with(None, &opts).unwrap();
    assert!(loaded.len() > 1);
    art.check_loaded(&loaded).unwrap();
    let last = loaded.last_mut().unwrap();
    let name = last.name.clone();
    let TensorBuffer::Host(bytes) = &mut last.buffer else {
        panic!("a CPU load gives host buffers");
    };
    bytes[0] ^= 1;
    let e = art.check_loaded(&loaded).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::TensorDigest { tensor, .. } if tensor.contains(&name)),
        "{e:?}"
    );
}

/// A file that appears in the output directory while a restore runs (a
/// user, another tic restoring there) is kept and the restore refused,
/// unless it was asked to replace the contents; a new output directory
/// that appears meanwhile likewise.
#[test]
fn what_appears_in_the_output_during_a_restore_is_kept() {
    struct WritesInto(std::path::PathBuf);
    impl tic_runtime::Progress for WritesInto {
        fn advance(&self, _n: u64) {
            if !self.0.exists() {
                std::fs::create_dir_all(self.0.parent().unwrap()).unwrap();
                std::fs::write(&self.0, b"mine").unwrap();
            }
        }
    }
    let dir = tempdir().unwrap();
    let (_, art) = small_artifact(dir.path(), 6);
    for existing in [true, false] {
        let out = dir.path().join(format!("out-{existing}"));
        if existing {
            std::fs::create_dir(&out).unwrap();
        }
        let notes = out.join("notes.txt");
        let e = art
            .extract(&out, false, &WritesInto(notes.clone()))
            .unwrap_err();
        assert!(matches!(e, RuntimeError::OutputChanged { .. }), "{e:?}");
        assert_eq!(e.kind(), ErrorKind::Usage);
        assert_eq!(std::fs::read(&notes).unwrap(), b"mine");
        let names: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            names,
            ["notes.txt"],
            "nothing else left in {}",
            out.display()
        );
    }
}
