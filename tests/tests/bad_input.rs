//! Malformed inputs: each gets an error that names the file (and the tensor
//! where there is one) and says what is wrong, and nothing is left at the
//! output path or beside it.

mod support;

use std::path::{Path, PathBuf};

use support::*;
use tic_compiler::{compile, CompileOptions};
use tic_runtime::NoProgress;
use tic_tests::{safetensors_bytes, small_model, write_files, Tensor};

/// Compiles `input` expecting failure; checks that the message contains
/// every `needle` and that the output directory holds nothing new.
fn fails(input: &Path, needles: &[&str]) -> String {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("model.tic");
    let err = compile(input, &out, &CompileOptions::default(), &NoProgress)
        .expect_err("compile should fail");
    let msg = err.to_string();
    for n in needles {
        assert!(
            msg.contains(n),
            "error message {msg:?} should mention {n:?}"
        );
    }
    let left: Vec<PathBuf> = std::fs::read_dir(out_dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        left.is_empty(),
        "a failed compile left files behind: {left:?}"
    );
    msg
}

/// Writes `json` and `data_len` filler bytes as `bad.safetensors` in a new
/// temporary directory and expects [`fails`] on it with these `needles`.
fn fails_raw(json: &str, data_len: usize, needles: &[&str]) -> String {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.safetensors");
    write_raw_safetensors(&p, json, data_len);
    fails(&p, needles)
}

#[test]
fn header_length_larger_than_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.safetensors");
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    std::fs::write(&p, b).unwrap();
    fails(
        &p,
        &[
            "bad.safetensors",
            "header length says 1000 bytes",
            "truncated",
        ],
    );
}

#[test]
fn header_length_over_the_cap() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.safetensors");
    std::fs::write(&p, u64::MAX.to_le_bytes()).unwrap();
    fails(&p, &["bad.safetensors", "over the 100000000-byte cap"]);
}

/// A repository cloned without git-lfs: the weight files are small text
/// pointers. The error says so and how to fetch the real files.
#[test]
fn git_lfs_pointer_instead_of_the_weights() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    std::fs::write(
        &p,
        "version https://git-lfs.github.com/spec/v1\n\
         oid sha256:53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db\n\
         size 90868376\n",
    )
    .unwrap();
    let msg = fails(
        d.path(),
        &["model.safetensors", "Git LFS pointer", "git lfs pull"],
    );
    assert!(!msg.contains("header length"), "{msg}");
}

/// A web page or an error reply saved under the weights' name.
#[test]
fn text_instead_of_the_weights() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    for text in [
        "<!DOCTYPE html>\n<html><body>model.safetensors</body></html>\n",
        "{\"error\":\"Access to model is restricted.\"}",
    ] {
        std::fs::write(&p, text).unwrap();
        let msg = fails(&p, &["model.safetensors", "begins with text", "/resolve/"]);
        assert!(msg.contains(&format!("{:?}", &text[..8])), "{msg}");
    }
}

/// huggingface_hub's cache folder of a model (every revision; the files
/// under blobs/ by hash): the error names the snapshots to compile.
#[test]
fn hugging_face_cache_folder() {
    let d = tempfile::tempdir().unwrap();
    let repo = d.path().join("models--org--name");
    let blob = repo.join("blobs/53aa51172d142c89");
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, b"{}").unwrap();
    for rev in ["a1b2c3", "d4e5f6"] {
        let snap = repo.join("snapshots").join(rev);
        std::fs::create_dir_all(&snap).unwrap();
        std::os::unix::fs::symlink(&blob, snap.join("config.json")).unwrap();
    }
    fails(
        &repo,
        &[
            "is a Hugging Face cache folder",
            &format!(
                "{} or {}",
                repo.join("snapshots/a1b2c3").display(),
                repo.join("snapshots/d4e5f6").display()
            ),
        ],
    );
}

/// A sharded checkpoint whose index names a shard that is not there (an
/// interrupted download): refused, naming the index and the shard. With
/// every shard present, in a sub-folder too, it compiles.
#[test]
fn sharded_checkpoint_missing_a_shard() {
    let d = tempfile::tempdir().unwrap();
    let shard = |i: u64| {
        (
            format!("model-0000{i}-of-00002.safetensors"),
            safetensors_bytes(&[Tensor::random(
                &format!("layer.{i}.weight"),
                "BF16",
                &[4, 4],
                i,
            )]),
        )
    };
    let index = br#"{"metadata":{"total_size":64},"weight_map":{
        "layer.1.weight":"model-00001-of-00002.safetensors",
        "layer.2.weight":"model-00002-of-00002.safetensors"}}"#
        .to_vec();
    let (s1, s2) = (shard(1), shard(2));
    let whole = write_files(
        &d.path().join("whole"),
        &[
            ("text/model.safetensors.index.json", index.clone()),
            (&format!("text/{}", s1.0), s1.1.clone()),
            (&format!("text/{}", s2.0), s2.1.clone()),
        ],
    );
    let out = d.path().join("whole.tic");
    compile(&whole, &out, &CompileOptions::default(), &NoProgress).unwrap();

    let partial = write_files(
        &d.path().join("partial"),
        &[("model.safetensors.index.json", index), (&s1.0, s1.1)],
    );
    fails(
        &partial,
        &[
            "model.safetensors.index.json places 1 tensor(s) in model-00002-of-00002.safetensors",
            "the download is incomplete",
        ],
    );
}

/// A file whose name is not UTF-8 (an artifact records UTF-8 paths).
#[test]
fn file_name_that_is_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let d = tempfile::tempdir().unwrap();
    let m = small_model(&d.path().join("m"), 1);
    let bad = m.join(std::ffi::OsStr::from_bytes(b"vocab-\xff.txt"));
    std::fs::write(&bad, b"x").unwrap();
    fails(
        &m,
        &["vocab-\u{fffd}.txt", "not valid UTF-8", "rename the file"],
    );
    fails(&bad, &["not valid UTF-8"]);
}

#[test]
fn file_too_short_for_a_header_length() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.safetensors");
    std::fs::write(&p, [1, 2, 3]).unwrap();
    fails(&p, &["bad.safetensors", "too short"]);
}

#[test]
fn invalid_json() {
    fails_raw("{\"a\": [1, 2", 0, &["bad.safetensors", "not valid JSON"]);
}

#[test]
fn duplicate_names() {
    let j = r#"{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    fails_raw(j, 8, &["bad.safetensors", "tensor `w` appears twice"]);
}

#[test]
fn overlapping_offsets() {
    let j = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#;
    fails_raw(j, 12, &["bad.safetensors", "tensor `b`", "overlap"]);
}

#[test]
fn offsets_leave_a_hole() {
    let j = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
    fails_raw(j, 12, &["bad.safetensors", "tensor `b`", "hole"]);
}

#[test]
fn offsets_run_past_the_end() {
    let j = r#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    fails_raw(
        j,
        8,
        &[
            "bad.safetensors",
            "tensor `a`",
            "ends at data offset 16",
            "truncated",
        ],
    );
}

#[test]
fn bytes_after_the_last_tensor() {
    let j = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    fails_raw(j, 10, &["bad.safetensors", "6 bytes belong to no tensor"]);
}

#[test]
fn shape_times_dtype_does_not_match_the_range() {
    let j = r#"{"a":{"dtype":"BF16","shape":[3,3],"data_offsets":[0,16]}}"#;
    fails_raw(
        j,
        16,
        &["bad.safetensors", "tensor `a`", "needs 18 bytes", "give 16"],
    );
}

#[test]
fn unknown_dtype() {
    let j = r#"{"a":{"dtype":"Q4_K","shape":[2],"data_offsets":[0,1]}}"#;
    fails_raw(j, 1, &["bad.safetensors", "tensor `a`", "\"Q4_K\"", "BF16"]);
}

/// Packed dtypes fill whole bytes: 3 F4 elements are a byte and a half.
#[test]
fn packed_dtype_elements_that_do_not_fill_whole_bytes() {
    let j = r#"{"a":{"dtype":"F4","shape":[3],"data_offsets":[0,2]}}"#;
    fails_raw(
        j,
        2,
        &[
            "bad.safetensors",
            "tensor `a`",
            "3 elements of F4 (4 bits each) do not fill whole bytes",
        ],
    );
}

/// Valid safetensors over tic's own limits: the message says it is tic's
/// limit, not a broken file, and what to change.
#[test]
fn valid_safetensors_over_tics_limits() {
    let j =
        r#"{"a":{"dtype":"U8","shape":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,1]}}"#;
    let msg = fails_raw(
        j,
        1,
        &[
            "bad.safetensors",
            "tensor `a` has 17 dimensions",
            "at most 16",
            "reshape",
        ],
    );
    assert!(!msg.contains("not a valid safetensors file"), "{msg}");
    let long = "n".repeat(65_536);
    let j = format!(r#"{{"{long}":{{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}}}"#);
    let msg = fails_raw(
        &j,
        1,
        &[
            "bad.safetensors",
            &format!("a tensor name of 65536 bytes (`{}...`)", &long[..40]),
            "at most 65535",
            "rename",
        ],
    );
    assert!(!msg.contains("not a valid safetensors file"), "{msg}");
    let j = r#"{"":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}"#;
    fails_raw(
        j,
        1,
        &["bad.safetensors", "an empty name", "rename the tensor"],
    );
}

#[test]
fn shape_product_overflows() {
    let j = r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,2],"data_offsets":[0,4]}}"#;
    fails_raw(j, 4, &["bad.safetensors", "tensor `a`", "overflows"]);
}

#[test]
fn truncated_file() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("model.safetensors");
    write_safetensors(&p, &[("w", "F32", vec![1024], vec![7; 4096])]);
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 100).unwrap();
    fails(&p, &["model.safetensors", "tensor `w`", "truncated"]);
}

#[test]
fn bad_file_inside_a_model_directory_is_named() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("config.json"), b"{}").unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    write_raw_safetensors(&d.path().join("sub/model-00002.safetensors"), "not json", 0);
    fails(d.path(), &["sub/model-00002.safetensors", "not valid JSON"]);
}

#[test]
fn missing_or_unreadable_input() {
    let d = tempfile::tempdir().unwrap();
    let missing = d.path().join("no-such-model");
    fails(&missing, &["no-such-model", "No such file"]);
    // A directory we may not read (root reads everything, so only as a user).
    let locked = d.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::write(locked.join("a.json"), b"{}").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::read_dir(&locked).is_err() {
        fails(&locked, &["locked", "ermission denied"]);
    } else {
        eprintln!("SKIPPED: running as root, so a mode-000 directory is still readable");
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn empty_directory() {
    let d = tempfile::tempdir().unwrap();
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    fails(&empty, &["empty", "contains no files"]);
}

#[test]
fn existing_output_needs_force() {
    let d = tempfile::tempdir().unwrap();
    let input = d.path().join("m.safetensors");
    write_safetensors(&input, &[("w", "BF16", vec![2], vec![1, 2, 3, 4])]);
    let out = d.path().join("m.tic");
    std::fs::write(&out, b"precious").unwrap();
    let err = compile(&input, &out, &CompileOptions::default(), &NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("already exists; pass --force"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"precious",
        "the existing file was touched"
    );
    let opts = CompileOptions {
        force: true,
        ..Default::default()
    };
    compile(&input, &out, &opts, &NoProgress).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), b"precious");
}

#[test]
fn special_files_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let model = d.path().join("m");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), b"{}").unwrap();
    let fifo = model.join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !made {
        eprintln!("SKIPPED: mkfifo is not available");
        return;
    }
    fails(&model, &["pipe", "not a regular file"]);
}

/// A link to a directory inside a model is not followed (it could loop, or
/// pack a tree from elsewhere): refused, with what to do instead.
#[test]
fn symlinked_directory_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let m = small_model(&d.path().join("m"), 2);
    std::os::unix::fs::symlink("..", m.join("loop")).unwrap();
    fails(
        &m,
        &[
            "loop",
            "symbolic links to directories are not followed",
            "copy",
        ],
    );
}
