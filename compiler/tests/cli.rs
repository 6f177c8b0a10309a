//! The `tic` command line as a user and a pipeline see it: exit codes
//! (0 verified or done, 1 verification failed, 2 usage or I/O, 3 internal),
//! `verify --json`, `keygen` and OpenSSL interoperability, and error
//! messages about key files that name the file and say what to do.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// `tic ARGS`, ready to run.
fn tic_command(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tic"));
    c.args(args.iter().map(|a| a.as_ref()))
        .env_remove("TIC_LOG");
    c
}

fn tic(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    tic_command(args).output().expect("run tic")
}

/// `tic ARGS` with `input` written to its standard input (from a thread, so
/// a large input cannot deadlock; a tic that stops reading early closes the
/// pipe, which is not a failure).
fn tic_with_stdin(args: &[&dyn AsRef<std::ffi::OsStr>], input: Vec<u8>) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = tic_command(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tic");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().expect("wait for tic");
    writer.join().expect("writer");
    o
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited, not killed")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts the exit code, showing the output when it differs.
#[track_caller]
fn expect_code(o: &Output, want: i32) {
    assert_eq!(
        code(o),
        want,
        "stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
}

/// A tiny safetensors file: two tensors (F32 [2,3], BF16 [4]).
fn safetensors(seed: u8) -> Vec<u8> {
    let a: Vec<u8> = (0..24u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect();
    let b: Vec<u8> = (0..8u8).map(|i| i.wrapping_mul(17) ^ seed).collect();
    let mut json = String::from(
        r#"{"a.weight":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"b.bias":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}}"#,
    );
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&a);
    out.extend_from_slice(&b);
    out
}

/// A model directory: a config and one safetensors file.
fn model(dir: &Path, seed: u8) -> PathBuf {
    let m = dir.join(format!("model{seed}"));
    std::fs::create_dir_all(&m).unwrap();
    std::fs::write(m.join("config.json"), br#"{"hidden_size":3}"#).unwrap();
    std::fs::write(m.join("model.safetensors"), safetensors(seed)).unwrap();
    m
}

/// `tic keygen -o DIR/NAME`; returns (NAME.key, NAME.pub).
fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    let o = tic(&[&"keygen", &"-o", &prefix]);
    expect_code(&o, 0);
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

fn compile_signed(dir: &Path, model: &Path, key: &Path, name: &str) -> PathBuf {
    let out = dir.join(name);
    let o = tic(&[&"compile", &model, &"-o", &out, &"--sign", &key, &"-q"]);
    expect_code(&o, 0);
    out
}

fn fingerprint(pub_path: &Path) -> String {
    tic_format::sign::fingerprint(&tic_runtime::read_public_key(pub_path).unwrap())
}

/// Flips a bit in the last byte of the file: inside the payload's last chunk.
fn tamper_last_byte(path: &Path) {
    let mut b = std::fs::read(path).unwrap();
    let n = b.len();
    b[n - 1] ^= 0x20;
    std::fs::write(path, b).unwrap();
}

/// `tic compile MODEL -o OUT --sign KEY --encrypt-to RECIPIENT`, then `extra`.
fn compile_encrypted(
    model: &Path,
    out: &Path,
    key: &Path,
    recipient: &str,
    extra: &[&dyn AsRef<std::ffi::OsStr>],
) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"compile",
        &model,
        &"-o",
        &out,
        &"--sign",
        &key,
        &"--encrypt-to",
        &recipient,
    ];
    args.extend_from_slice(extra);
    tic(&args)
}

/// `tic decompress ART -o OUT --trusted-key PUBK [--identity ID]`.
fn decompress(art: &Path, out: &Path, pubk: &Path, identity: Option<&Path>) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"decompress", &art, &"-o", &out, &"--trusted-key", &pubk];
    if let Some(id) = &identity {
        args.extend([&"--identity" as &dyn AsRef<std::ffi::OsStr>, id]);
    }
    tic(&args)
}

/// Asserts that `out` holds the config and safetensors file of `model`,
/// byte for byte.
#[track_caller]
fn assert_restored(out: &Path, model: &Path) {
    for f in ["config.json", "model.safetensors"] {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(model.join(f)).unwrap(),
            "{f} restored byte for byte"
        );
    }
}

/// Writes a new age identity to `path`, after the line(s) in `preamble`.
fn write_age_identity(path: &Path, preamble: &str) -> age::x25519::Identity {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    std::fs::write(
        path,
        format!("{preamble}{}\n", id.to_string().expose_secret()),
    )
    .unwrap();
    id
}

/// `tic attach-signature UNSIGNED --signature SIG --public-key PUBK -o OUT`.
fn attach_signature(unsigned: &Path, sig: &Path, pubk: &Path, out: &Path) -> Output {
    tic(&[
        &"attach-signature",
        &unsigned,
        &"--signature",
        &sig,
        &"--public-key",
        &pubk,
        &"-o",
        &out,
    ])
}

/// Runs `openssl ARGS`, asserting that it succeeds; returns its stdout.
#[track_caller]
fn openssl(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<u8> {
    let o = Command::new("openssl")
        .args(args.iter().map(|a| a.as_ref()))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {:?}: {}",
        args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Signs the file `msg` with OpenSSL (pure Ed25519) into `sig`.
#[track_caller]
fn openssl_sign(key: &Path, msg: &Path, sig: &Path) {
    openssl(&[
        &"pkeyutl", &"-sign", &"-inkey", &key, &"-rawin", &"-in", &msg, &"-out", &sig,
    ]);
}

/// OpenSSL's version (major, minor, patch) when `openssl` is on PATH and
/// is OpenSSL (not LibreSSL).
fn openssl_version() -> Option<(u32, u32, u32)> {
    let o = Command::new("openssl").arg("version").output().ok()?;
    let text = String::from_utf8(o.stdout).ok()?;
    let v = text.strip_prefix("OpenSSL ")?.split_whitespace().next()?;
    let mut it = v.split('.').map(|p| {
        p.trim_end_matches(|c: char| c.is_ascii_alphabetic())
            .parse::<u32>()
            .ok()
    });
    Some((it.next()??, it.next()??, it.next()??))
}

/// Says on the real stderr (not captured by the test harness) that part
/// of a test did not run, and why.
fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

#[test]
fn verify_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 1);
    let (key, pubk) = keygen(d, "signer");
    let (_, other_pub) = keygen(d, "other");
    let signed = compile_signed(d, &m, &key, "signed.tic");

    let o = tic(&[&"verify", &signed, &"--trusted-key", &pubk]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("verified"), "{}", stdout(&o));
    assert!(stdout(&o).contains(&fingerprint(&pubk)), "{}", stdout(&o));

    // A directory of trusted keys works like the key itself.
    let keys = d.join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::copy(&other_pub, keys.join("other.pub")).unwrap();
    std::fs::copy(&pubk, keys.join("signer.pub")).unwrap();
    expect_code(&tic(&[&"verify", &signed, &"--trusted-key", &keys]), 0);
    // An SSH key named *.pub there (a ~/.ssh-like directory) is passed over
    // with a warning, not an error.
    std::fs::write(
        keys.join("id_ed25519.pub"),
        "ssh-ed25519 AAAAC3NzaC1 user@host\n",
    )
    .unwrap();
    let o = tic(&[&"verify", &signed, &"--trusted-key", &keys]);
    expect_code(&o, 0);
    assert!(
        stderr(&o)
            .contains("id_ed25519.pub: an SSH public key, not an Ed25519 PEM key; not trusted"),
        "{}",
        stderr(&o)
    );
    // Given as the trusted key itself: told what tic's keys are.
    let o = tic(&[
        &"verify",
        &signed,
        &"--trusted-key",
        &keys.join("id_ed25519.pub"),
    ]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("an OpenSSH public key; tic's signing keys are Ed25519 keys in PEM"),
        "{}",
        stderr(&o)
    );

    // Untrusted signer.
    let o = tic(&[&"verify", &signed, &"--trusted-key", &other_pub]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("not among the trusted keys"),
        "{}",
        stderr(&o)
    );

    // Unsigned, without and with --allow-unsigned.
    let unsigned = d.join("unsigned.tic");
    expect_code(&tic(&[&"compile", &m, &"-o", &unsigned, &"--unsigned"]), 0);
    let o = tic(&[&"verify", &unsigned, &"--trusted-key", &pubk]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("--allow-unsigned"), "{}", stderr(&o));
    // Accepted on request, but never reported as verified (SPEC.md §5).
    let o = tic(&[&"verify", &unsigned, &"--allow-unsigned", &"--json"]);
    expect_code(&o, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verified"], false, "{v}");
    assert_eq!(v["accepted"], true, "{v}");
    assert_eq!(v["signature"]["status"], "unsigned", "{v}");
    let o = tic(&[&"verify", &unsigned, &"--allow-unsigned"]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("NOT verified"), "{}", stdout(&o));

    // Tampered.
    let tampered = d.join("tampered.tic");
    std::fs::copy(&signed, &tampered).unwrap();
    tamper_last_byte(&tampered);
    let o = tic(&[&"verify", &tampered, &"--trusted-key", &pubk]);
    expect_code(&o, 1);
    assert!(stderr(&o).contains("SHA-256"), "{}", stderr(&o));
    // Restoring it fails the same way and writes nothing.
    let out = d.join("restored");
    let o = decompress(&tampered, &out, &pubk, None);
    expect_code(&o, 1);
    assert!(!out.exists());
    // The intact one restores byte for byte.
    expect_code(&decompress(&signed, &out, &pubk, None), 0);
    assert_restored(&out, &m);
}

/// Streams made from the artifact `bytes` that a reader of standard input
/// must reject, each with what its error must say: the last byte changed,
/// cut, extended by a byte or by megabytes, and not an artifact at all.
fn bad_streams(bytes: &[u8]) -> Vec<(Vec<u8>, &'static str)> {
    let mut tampered = bytes.to_vec();
    *tampered.last_mut().unwrap() ^= 0x20;
    vec![
        (tampered, "does not match its SHA-256"),
        (bytes[..bytes.len() - 1].to_vec(), "truncated"),
        ([bytes, b"\n"].concat(), "has bytes appended"),
        (b"not an artifact".to_vec(), "not a tic artifact"),
        (
            [bytes, &vec![0; 3 << 20]].concat(),
            "goes on for more than 1 MiB past",
        ),
    ]
}

/// Asserts that `o` failed with exit 1 and an error about standard input
/// that says `want`.
#[track_caller]
fn expect_stream_error(o: &Output, want: &str) {
    expect_code(o, 1);
    assert!(
        stderr(o).starts_with("tic: error: (standard input): ") && stderr(o).contains(want),
        "{}",
        stderr(o)
    );
}

/// `tic verify -` verifies an artifact as it streams in on standard input
/// (`curl URL | tic verify -`): the same report and JSON as from a file,
/// exit 1 for a tampered, truncated or extended stream.
#[test]
fn verify_reads_a_stream_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 2);
    let (key, pubk) = keygen(d, "signer");
    let signed = compile_signed(d, &m, &key, "signed.tic");
    let bytes = std::fs::read(&signed).unwrap();
    let piped = |input: Vec<u8>, extra: &[&dyn AsRef<std::ffi::OsStr>]| -> Output {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &"-", &"--trusted-key", &pubk];
        args.extend_from_slice(extra);
        tic_with_stdin(&args, input)
    };

    let o = piped(bytes.clone(), &[]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).starts_with("verified: (standard input)\n"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(&fingerprint(&pubk)), "{}", stdout(&o));
    // The JSON report matches the one from the file but for its name.
    let o = piped(bytes.clone(), &[&"--json"]);
    expect_code(&o, 0);
    let mut streamed: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let o = tic(&[&"verify", &signed, &"--trusted-key", &pubk, &"--json"]);
    let mut from_file: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(streamed["artifact"], "-");
    streamed["artifact"] = Value::Null;
    from_file["artifact"] = Value::Null;
    assert_eq!(streamed, from_file);

    for (input, want) in bad_streams(&bytes) {
        expect_stream_error(&piped(input, &[]), want);
    }
    // The commands that seek say which ones read a stream.
    let o = tic_with_stdin(&[&"load", &"-", &"--allow-unsigned"], bytes);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("standard input (-) is a pipe, socket or device, not a file")
            && stderr(&o).contains("only `tic verify -` and `tic decompress -`")
            && stderr(&o).contains("`tic inspect -`"),
        "{}",
        stderr(&o)
    );
}

/// `tic decompress -` restores an artifact as it streams in on standard
/// input (`curl URL | tic decompress - -o DIR`): byte for byte, decrypted
/// with an identity file; a tampered, cut or extended stream exits 1 with
/// nothing at the output; standard input cannot also be a key.
#[test]
fn decompress_restores_a_stream_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 4);
    let (key, pubk) = keygen(d, "signer");
    let id_file = d.join("id.txt");
    let id = write_age_identity(&id_file, "");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&id_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let art = d.join("enc.tic");
    let recipient = id.to_public().to_string();
    expect_code(&compile_encrypted(&m, &art, &key, &recipient, &[]), 0);
    let bytes = std::fs::read(&art).unwrap();
    let out = d.join("out");
    let piped = |input: Vec<u8>, identity: &Path| -> Output {
        tic_with_stdin(
            &[
                &"decompress",
                &"-",
                &"-o",
                &out,
                &"--trusted-key",
                &pubk,
                &"--identity",
                &identity,
            ],
            input,
        )
    };
    let o = piped(bytes.clone(), &id_file);
    expect_code(&o, 0);
    assert!(
        stdout(&o).starts_with("restored 2 files ("),
        "{}",
        stdout(&o)
    );
    assert_restored(&out, &m);
    std::fs::remove_dir_all(&out).unwrap();

    for (input, want) in bad_streams(&bytes) {
        let o = piped(input, &id_file);
        expect_stream_error(&o, want);
        assert!(!out.exists(), "{}", stderr(&o));
    }
    // --force never empties the directory that holds the artifact given
    // on standard input.
    let inside = d.join("restored").join("enc.tic");
    expect_code(&piped(bytes.clone(), &id_file), 0);
    std::fs::rename(&out, d.join("restored")).unwrap();
    std::fs::copy(&art, &inside).unwrap();
    let keys = [
        &"--trusted-key" as &dyn AsRef<std::ffi::OsStr>,
        &pubk,
        &"--identity",
        &id_file,
    ];
    let o = tic_command(&[&"decompress", &"-", &"--force", &"-o", &d.join("restored")])
        .args(keys.iter().map(|a| a.as_ref()))
        .stdin(std::fs::File::open(&inside).unwrap())
        .output()
        .unwrap();
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("holds the artifact being restored"),
        "{}",
        stderr(&o)
    );
    assert!(inside.exists());
    // As from the file: the same message.
    let o2 = tic_command(&[
        &"decompress",
        &inside,
        &"--force",
        &"-o",
        &d.join("restored"),
    ])
    .args(keys.iter().map(|a| a.as_ref()))
    .output()
    .unwrap();
    assert_eq!(stderr(&o2), stderr(&o));
    for name in ["/dev/stdin", "/dev/fd/0"] {
        let o = piped(bytes.clone(), Path::new(name));
        expect_code(&o, 2);
        let want = format!("--identity {name}: standard input carries the artifact");
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    let entries: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tic-"))
        .collect();
    assert!(entries.is_empty(), "left behind: {entries:?}");
}

/// `tic inspect -` shows an artifact from its front alone, read from
/// standard input (`curl URL | tic inspect -`): the same listing and JSON
/// as from the file, the signature checked against a trusted key, the
/// payload not read (a stream cut after the front is shown all the same)
/// and said so on stderr; a damaged front fails.
#[test]
fn inspect_reads_the_front_of_a_stream_on_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 2);
    let (key, pubk) = keygen(d, "signer");
    let signed = compile_signed(d, &m, &key, "signed.tic");
    let bytes = std::fs::read(&signed).unwrap();
    let o = tic(&[&"inspect", &signed, &"--json"]);
    expect_code(&o, 0);
    let mut from_file: Value = serde_json::from_str(&stdout(&o)).unwrap();
    // The front: preamble, header and signature sections.
    let pre = tic_format::header::Preamble::parse_unsized(
        bytes[..tic_format::header::PREAMBLE_LEN]
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let front = tic_format::header::PREAMBLE_LEN
        + (pre.header_len + pre.signature_len + pre.recipients_len) as usize;
    for input in [bytes.clone(), bytes[..front].to_vec()] {
        let o = tic_with_stdin(&[&"inspect", &"-", &"--json"], input);
        expect_code(&o, 0);
        let mut streamed: Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(streamed["artifact"], "-", "as given, as verify - has it");
        streamed["artifact"] = Value::Null;
        from_file["artifact"] = Value::Null;
        assert_eq!(streamed, from_file);
        assert!(stderr(&o).contains("its payload was not"), "{}", stderr(&o));
    }
    let o = tic_with_stdin(&[&"inspect", &"-", &"--trusted-key", &pubk], bytes.clone());
    expect_code(&o, 0);
    assert!(
        stdout(&o).starts_with("artifact:   (standard input)\n"),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains(&fingerprint(&pubk)), "{}", stdout(&o));

    // A header byte changed: the signature fails; cut in the header: truncated.
    let mut tampered = bytes.clone();
    tampered[front - 100] ^= 0x01;
    let (_, other) = keygen(d, "other");
    for (input, key, want) in [
        (tampered, &pubk, "signature"),
        (bytes[..front - 10].to_vec(), &pubk, "truncated"),
        (bytes.clone(), &other, "not among the trusted keys"),
    ] {
        let o = tic_with_stdin(&[&"inspect", &"-", &"--trusted-key", key], input);
        expect_code(&o, 1);
        assert!(
            stderr(&o).starts_with("tic: error: (standard input): ") && stderr(&o).contains(want),
            "{}",
            stderr(&o)
        );
    }
    // Any name of standard input, as the trusted key: refused.
    for name in ["/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"] {
        let o = tic_with_stdin(&[&"inspect", &"-", &"--trusted-key", &name], bytes.clone());
        expect_code(&o, 2);
        let want =
            format!("--trusted-key {name}: standard input carries the artifact (`tic inspect -`)");
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }

    // An unsigned artifact with --trusted-key: exit 1, with a hint inspect
    // can follow (it has no --allow-unsigned), from a file and a stream.
    let unsigned = d.join("unsigned.tic");
    expect_code(
        &tic(&[&"compile", &"--unsigned", &"-q", &m, &"-o", &unsigned]),
        0,
    );
    for o in [
        tic(&[&"inspect", &unsigned, &"--trusted-key", &pubk]),
        tic_with_stdin(
            &[&"inspect", &"-", &"--trusted-key", &pubk],
            std::fs::read(&unsigned).unwrap(),
        ),
    ] {
        expect_code(&o, 1);
        let err = stderr(&o);
        assert!(
            err.contains("the artifact is not signed, so --trusted-key has no signature to check; leave --trusted-key out")
                && !err.contains("--allow-unsigned"),
            "{err}"
        );
    }
}

/// `tic verify --against MODEL` proves an artifact holds exactly a model on
/// disk (sizes and SHA-256 against the signed header, nothing decrypted):
/// exit 0 when every file matches, 1 naming each file that differs, is
/// missing or is extra; compile's `--exclude` patterns given again leave the
/// same files out. (A lossy artifact: `lossy_cli.rs`.)
#[test]
fn verify_against_a_model_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 4);
    std::fs::create_dir(m.join("sub")).unwrap();
    std::fs::write(m.join("sub/tokenizer.json"), b"{\"v\":1}").unwrap();
    let (key, pubk) = keygen(d, "signer");
    let id = d.join("id.txt");
    let recipient = write_age_identity(&id, "").to_public().to_string();
    let art = d.join("enc.tic");
    expect_code(&compile_encrypted(&m, &art, &key, &recipient, &[&"-q"]), 0);
    let against = |model: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]| -> Output {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
            &"verify",
            &art,
            &"--trusted-key",
            &pubk,
            &"--against",
            &model,
        ];
        args.extend_from_slice(extra);
        tic(&args)
    };
    let o = against(&m, &[]);
    expect_code(&o, 0);
    let want = format!(
        "  model:      all 3 files match {}, byte for byte",
        m.display()
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    // The artifact kept inside the model it was made from is not a model file.
    let inside = m.join("model.tic");
    std::fs::copy(&art, &inside).unwrap();
    let o = tic(&[
        &"verify",
        &inside,
        &"--trusted-key",
        &pubk,
        &"--against",
        &m,
    ]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("all 3 files match"), "{}", stdout(&o));
    std::fs::remove_file(&inside).unwrap();
    // A model that is not there, or is a Hugging Face cache folder.
    let o = against(&d.join("nowhere"), &[]);
    expect_code(&o, 2);
    let want = format!(
        "tic: error: --against {}: No such file",
        d.join("nowhere").display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let cache = d.join("models--org--name");
    std::fs::create_dir_all(cache.join("blobs")).unwrap();
    std::fs::create_dir_all(cache.join("snapshots/abc123")).unwrap();
    let o = against(&cache, &[]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("is a Hugging Face cache folder"),
        "{}",
        stderr(&o)
    );

    // A changed, a removed and an added file.
    let other = d.join("other");
    std::fs::create_dir_all(other.join("sub")).unwrap();
    std::fs::copy(m.join("model.safetensors"), other.join("model.safetensors")).unwrap();
    std::fs::write(other.join("sub/tokenizer.json"), b"{\"v\":2}").unwrap();
    std::fs::write(other.join("notes.txt"), b"new").unwrap();
    let o = against(&other, &[]);
    expect_code(&o, 1);
    let want = format!(
        "tic: error: the artifact does not hold the model at {}: 1 file(s) differ: sub/tokenizer.json; \
         1 file(s) are not in the model: config.json; 1 file(s) of the model are not in the artifact: notes.txt",
        other.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let o = against(&other, &[&"--json"]);
    expect_code(&o, 1);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["accepted"], false, "{v}");
    assert_eq!(v["against"]["match"], false, "{v}");
    assert_eq!(
        v["against"]["matched"],
        serde_json::json!(["model.safetensors"]),
        "{v}"
    );
    assert_eq!(
        v["against"]["different"][0]["path"], "sub/tokenizer.json",
        "{v}"
    );
    assert_eq!(
        v["against"]["missing"],
        serde_json::json!(["config.json"]),
        "{v}"
    );
    assert_eq!(
        v["against"]["extra"],
        serde_json::json!(["notes.txt"]),
        "{v}"
    );

    // Files left out at compile time are left out here with the same patterns.
    std::fs::write(m.join("pytorch_model.bin"), b"pickled").unwrap();
    let art2 = d.join("excluded.tic");
    let o = tic(&[
        &"compile",
        &"--unsigned",
        &m,
        &"-o",
        &art2,
        &"--exclude",
        &"*.bin",
    ]);
    expect_code(&o, 0);
    let v2 = |extra: &[&dyn AsRef<std::ffi::OsStr>]| -> Output {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"verify", &art2, &"--allow-unsigned", &"--against", &m];
        args.extend_from_slice(extra);
        tic(&args)
    };
    let o = v2(&[]);
    expect_code(&o, 1);
    assert!(
        stderr(&o).contains("not in the artifact: pytorch_model.bin (compiled with --exclude?"),
        "{}",
        stderr(&o)
    );
    expect_code(&v2(&[&"--exclude", &"*.bin"]), 0);
}

/// CI keeps keys in secrets, not files: a signing key read from a pipe
/// (`--sign /dev/stdin`, `--sign <(vault read ...)`) works, and a pipe
/// that never ends is cut off at the key-file cap.
#[test]
fn a_signing_key_can_come_from_a_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 9);
    let (key, pubk) = keygen(d, "ci");
    let art = d.join("ci.tic");
    let with_stdin = |input: Vec<u8>| -> Output {
        let args: [&dyn AsRef<std::ffi::OsStr>; 8] = [
            &"compile",
            &m,
            &"-o",
            &art,
            &"--force",
            &"-q",
            &"--sign",
            &"/dev/stdin",
        ];
        tic_with_stdin(&args, input)
    };
    let o = with_stdin(std::fs::read(&key).unwrap());
    expect_code(&o, 0);
    expect_code(&tic(&[&"verify", &art, &"--trusted-key", &pubk]), 0);

    std::fs::remove_file(&art).unwrap();
    let o = with_stdin(vec![b'A'; 3 << 20]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("/dev/stdin: over 1 MiB, too large to be a key file"),
        "{}",
        stderr(&o)
    );
    assert!(!art.exists());

    // So is an external signature file, at its own cap.
    let unsigned = d.join("unsigned.tic");
    expect_code(
        &tic(&[&"compile", &"--unsigned", &"-q", &m, &"-o", &unsigned]),
        0,
    );
    let sig = d.join("sig.bin");
    std::fs::write(&sig, vec![b'0'; 5000]).unwrap();
    let o = attach_signature(&unsigned, &sig, &pubk, &art);
    expect_code(&o, 2);
    let want = format!(
        "{}: over 4096 bytes, too large to be a signature file",
        sig.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(!art.exists());
}

#[test]
fn usage_and_io_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 2);
    let (key, pubk) = keygen(d, "k");
    let signed = compile_signed(d, &m, &key, "a.tic");
    let before = std::fs::read(&signed).unwrap();

    // Missing files.
    let missing = d.join("missing.tic");
    let o = tic(&[&"verify", &missing, &"--trusted-key", &pubk]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("missing.tic"), "{}", stderr(&o));
    // A directory (the model, or a restored one) given as the artifact.
    let never = d.join("never");
    for o in [
        tic(&[&"verify", &m]),
        tic(&[&"inspect", &m]),
        tic(&[&"decompress", &m, &"-o", &never]),
    ] {
        expect_code(&o, 2);
        assert!(
            stderr(&o).contains("is a directory, not an artifact; give the .tic file"),
            "{}",
            stderr(&o)
        );
    }
    assert!(!d.join("never").exists());
    // An artifact piped in (`curl URL | tic verify /dev/stdin`), and a model
    // piped into compile: refused as not a file, not called damaged.
    for (args, want) in [
        (
            vec!["verify", "/dev/stdin", "--allow-unsigned"],
            "/dev/stdin is a pipe, socket or device, not a file",
        ),
        (
            vec!["compile", "/dev/stdin", "--unsigned", "-o", "never.tic"],
            "/dev/stdin: not a file or directory but a pipe",
        ),
    ] {
        let mut child = tic_command(&args.iter().map(|a| a as _).collect::<Vec<_>>())
            .current_dir(d)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let bytes = before.clone();
        // tic may stop without reading: a failed write is expected.
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = stdin.write_all(&bytes);
        });
        let o = child.wait_with_output().unwrap();
        writer.join().unwrap();
        expect_code(&o, 2);
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
    assert!(!d.join("never.tic").exists());
    expect_code(
        &tic(&[&"verify", &signed, &"--trusted-key", &d.join("nokey.pub")]),
        2,
    );
    expect_code(
        &tic(&[
            &"compile",
            &d.join("nomodel"),
            &"-o",
            &d.join("x.tic"),
            &"--unsigned",
        ]),
        2,
    );
    assert!(!d.join("x.tic").exists());

    // Bad arguments.
    expect_code(&tic(&[&"verify", &signed, &"--no-such-flag"]), 2);
    expect_code(&tic(&[&"verify"]), 2);
    expect_code(&tic(&[&"frobnicate"]), 2);
    expect_code(
        &tic(&[
            &"compile",
            &m,
            &"-o",
            &d.join("y.tic"),
            &"--sign",
            &key,
            &"--unsigned",
        ]),
        2,
    );
    expect_code(
        &tic(&[
            &"compile",
            &m,
            &"-o",
            &d.join("y.tic"),
            &"--unsigned",
            &"--chunk-size",
            &"0",
        ]),
        2,
    );

    // A signed artifact but no trusted key given: told how to pass one.
    let o = tic(&[&"verify", &signed]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--trusted-key"), "{}", stderr(&o));

    // Existing outputs are not replaced without --force.
    let o = tic(&[&"compile", &m, &"-o", &signed, &"--unsigned"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&signed).unwrap(), before, "output untouched");
    expect_code(
        &tic(&[&"compile", &m, &"-o", &signed, &"--sign", &key, &"--force"]),
        0,
    );
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep.txt"), b"mine").unwrap();
    let o = decompress(&signed, &out, &pubk, None);
    expect_code(&o, 2);
    assert_eq!(std::fs::read(out.join("keep.txt")).unwrap(), b"mine");
    let o = tic(&[&"keygen", &"-o", &d.join("k")]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(tic_runtime::read_public_key(&pubk).unwrap(), {
        let pem = std::fs::read_to_string(&key).unwrap();
        tic_format::sign::parse_private_key_pem(&pem)
            .unwrap()
            .verifying_key()
    });
}

#[test]
fn verify_json_reports_success_and_failure() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 3);
    let (key, pubk) = keygen(d, "k");
    let signed = compile_signed(d, &m, &key, "a.tic");

    let o = tic(&[&"verify", &signed, &"--trusted-key", &pubk, &"--json"]);
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("verify --json prints JSON");
    assert_eq!(v["verified"], true);
    assert_eq!(v["signature"]["status"], "verified");
    assert_eq!(v["signature"]["signer"], fingerprint(&pubk));
    assert_eq!(v["encryption"]["recipients"], 0);
    assert_eq!(v["encryption"]["encrypted"], false);
    assert_eq!(v["lossless"], true);
    assert_eq!(v["files"], 2);
    assert_eq!(v["tensors"], 2);

    // Encrypted to an age recipient and a symmetric key: verified without
    // any identity, with the recipient count.
    let id = age::x25519::Identity::generate();
    let sym = d.join("sym.key");
    std::fs::write(
        &sym,
        [7u8; 32]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    )
    .unwrap();
    let enc = d.join("enc.tic");
    let recipient = id.to_public().to_string();
    let o = compile_encrypted(&m, &enc, &key, &recipient, &[&"--encrypt-key", &sym]);
    expect_code(&o, 0);
    let o = tic(&[&"verify", &enc, &"--trusted-key", &pubk, &"--json"]);
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["encryption"]["encrypted"], true);
    assert_eq!(v["encryption"]["recipients"], 2);
    assert_eq!(v["encryption"]["labels"][0], recipient.as_str());

    // Failure: tampered.
    tamper_last_byte(&signed);
    let o = tic(&[&"verify", &signed, &"--trusted-key", &pubk, &"--json"]);
    expect_code(&o, 1);
    let v: Value = serde_json::from_str(&stdout(&o)).expect("JSON on failure too");
    assert_eq!(v["verified"], false);
    assert_eq!(v["exit_code"], 1);
    let err = v["error"].as_str().expect("an error string");
    assert!(err.contains("chunk") && err.contains("SHA-256"), "{err}");

    // Failure: a missing file is a usage/I-O failure, in the JSON too.
    let o = tic(&[
        &"verify",
        &d.join("missing.tic"),
        &"--trusted-key",
        &pubk,
        &"--json",
    ]);
    expect_code(&o, 2);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(v["exit_code"], 2);
    assert!(v["error"].as_str().unwrap().contains("missing.tic"));
}

#[test]
fn require_lossless_passes_on_a_lossless_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 4);
    let (key, pubk) = keygen(d, "k");
    let signed = compile_signed(d, &m, &key, "a.tic");
    let o = tic(&[
        &"verify",
        &signed,
        &"--trusted-key",
        &pubk,
        &"--require-lossless",
    ]);
    expect_code(&o, 0);
    assert!(stdout(&o).contains("lossless"), "{}", stdout(&o));
    let o = tic(&[
        &"verify",
        &signed,
        &"--trusted-key",
        &pubk,
        &"--require-lossless",
        &"--json",
    ]);
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["verified"].clone(), v["lossless"].clone()),
        (Value::Bool(true), Value::Bool(true))
    );
}

#[test]
fn encrypted_round_trip_and_identity_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 5);
    let (key, pubk) = keygen(d, "k");
    let id_file = d.join("id.txt");
    let id = write_age_identity(&id_file, "# test identity\n");
    let enc = d.join("enc.tic");
    let recipient = id.to_public().to_string();
    expect_code(&compile_encrypted(&m, &enc, &key, &recipient, &[]), 0);

    let out = d.join("out");
    let o = decompress(&enc, &out, &pubk, Some(&id_file));
    expect_code(&o, 0);
    assert_restored(&out, &m);
    // No identity: told to pass one (usage).
    let out2 = d.join("out2");
    let o = decompress(&enc, &out2, &pubk, None);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--identity"), "{}", stderr(&o));
    // Someone else's identity: cannot decrypt (verification failure).
    let other = d.join("other.txt");
    write_age_identity(&other, "");
    let o = decompress(&enc, &out2, &pubk, Some(&other));
    expect_code(&o, 1);
    assert!(stderr(&o).contains("1 recipient(s)"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("AGE-SECRET-KEY-1"), "no secret echoed");
    assert!(!out2.exists());
}

/// `--encrypt-to` takes a file of recipients as `age -R` reads one (each
/// can decrypt); an SSH public key, or an identity file given in its place,
/// is refused with what to do, the secret key never echoed.
#[test]
fn encrypt_to_a_recipients_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 6);
    let (key, pubk) = keygen(d, "k");
    let (id_a, id_b) = (d.join("a.txt"), d.join("b.txt"));
    let a = write_age_identity(&id_a, "").to_public();
    let b = write_age_identity(&id_b, "").to_public();
    let team = d.join("team.txt");
    std::fs::write(&team, format!("# the customer's team\n{a}\n\n{b}\n")).unwrap();
    let enc = d.join("enc.tic");
    expect_code(
        &compile_encrypted(&m, &enc, &key, team.to_str().unwrap(), &[]),
        0,
    );
    for (i, id) in [&id_a, &id_b].into_iter().enumerate() {
        let out = d.join(format!("out{i}"));
        expect_code(&decompress(&enc, &out, &pubk, Some(id)), 0);
        assert_restored(&out, &m);
    }

    // From a pipe too (`--encrypt-to <(vault read ...)`), with a byte order
    // mark in front as some editors write.
    let piped_enc = d.join("piped.tic");
    let o = tic_with_stdin(
        &[
            &"compile",
            &m,
            &"-o",
            &piped_enc,
            &"--sign",
            &key,
            &"--encrypt-to",
            &"/dev/stdin",
        ],
        format!("\u{feff}{a}\n").into_bytes(),
    );
    expect_code(&o, 0);
    expect_code(
        &decompress(&piped_enc, &d.join("out-piped"), &pubk, Some(&id_a)),
        0,
    );

    let ssh = d.join("id_ed25519.pub");
    std::fs::write(
        &ssh,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPd3PfxiI user@host\n",
    )
    .unwrap();
    let fresh = d.join("fresh.tic");
    for (arg, want) in [
        (
            ssh.clone(),
            format!("{}: cannot read recipients file (line 1)", ssh.display()),
        ),
        (ssh.clone(), "this is an SSH public key".to_string()),
        (
            id_a.clone(),
            "this is an age identity (secret key)".to_string(),
        ),
    ] {
        let o = compile_encrypted(&m, &fresh, &key, arg.to_str().unwrap(), &[]);
        expect_code(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(&want), "{err}");
        let secret = std::fs::read_to_string(&id_a).unwrap();
        assert!(!err.contains(&secret.trim()[16..]), "{err}");
        assert!(!fresh.exists());
    }
}

/// `tic rewrap` from the command line: a new recipient can decrypt, a
/// removed one cannot, the signature still verifies; a rewrap that changes
/// nothing is a usage error.
#[test]
fn rewrap_adds_and_removes_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 3);
    let (key, pubk) = keygen(d, "k");
    let alice = d.join("alice.txt");
    let alice_id = write_age_identity(&alice, "");
    let art = d.join("a.tic");
    let o = compile_encrypted(&m, &art, &key, &alice_id.to_public().to_string(), &[&"-q"]);
    expect_code(&o, 0);
    let bob = d.join("bob.key");
    std::fs::write(&bob, [7u8; 32]).unwrap();

    // The same recipient twice at compile time.
    let twice = d.join("twice.tic");
    let o = tic(&[
        &"compile",
        &m,
        &"-o",
        &twice,
        &"--unsigned",
        &"--encrypt-key",
        &bob,
        &"--encrypt-key",
        &bob,
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("is given twice"), "{}", stderr(&o));
    assert!(!twice.exists());

    let o = tic(&[
        &"rewrap",
        &art,
        &"--identity",
        &alice,
        &"-o",
        &d.join("same.tic"),
    ]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--add-key"), "{}", stderr(&o));
    assert!(!d.join("same.tic").exists());

    // Bob in, Alice out, in place.
    let o = tic(&[
        &"rewrap",
        &art,
        &"--identity",
        &alice,
        &"--add-key",
        &bob,
        &"--remove",
        &alice_id.to_public().to_string(),
        &"-o",
        &art,
    ]);
    expect_code(&o, 0);
    assert!(
        stdout(&o).contains("encrypted to 1 recipient(s): sym:"),
        "{}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains("removing a recipient does not take back what it already had"),
        "{}",
        stderr(&o)
    );
    let out = d.join("bob-out");
    expect_code(&decompress(&art, &out, &pubk, Some(&bob)), 0);
    assert_restored(&out, &m);
    let o = decompress(&art, &d.join("alice-out"), &pubk, Some(&alice));
    expect_code(&o, 1);
    assert!(stderr(&o).contains("none matches"), "{}", stderr(&o));
    // Rewrapping with an identity that cannot open it fails as reading
    // does: exit 1, naming the artifact.
    let o = tic(&[
        &"rewrap",
        &art,
        &"--identity",
        &alice,
        &"--add-key",
        &bob,
        &"-o",
        &d.join("x.tic"),
    ]);
    expect_code(&o, 1);
    let want = format!("tic: error: {}: ", art.display());
    assert!(
        stderr(&o).contains(&want) && stderr(&o).contains("none matches"),
        "{}",
        stderr(&o)
    );
}

/// What writes a small file (keygen, signing-message) or restores into a
/// directory never destroys what is in the way: an existing file needs
/// --force, a symbolic link is replaced and never written through, a file
/// is never replaced by a directory, and keygen checks both of a pair
/// before writing either.
#[test]
fn outputs_in_the_way_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 13);
    let (key, pubk) = keygen(d, "k");
    let art = compile_signed(d, &m, &key, "a.tic");
    let art_bytes = std::fs::read(&art).unwrap();

    // signing-message -o onto the artifact itself, or a key.
    for target in [&art, &key] {
        let before = std::fs::read(target).unwrap();
        let o = tic(&[&"signing-message", &art, &"-o", target]);
        expect_code(&o, 2);
        assert!(
            stderr(&o).contains("already exists; pass --force"),
            "{}",
            stderr(&o)
        );
        assert_eq!(std::fs::read(target).unwrap(), before);
    }
    let msg = d.join("m.bin");
    expect_code(&tic(&[&"signing-message", &art, &"-o", &msg]), 0);
    assert_eq!(std::fs::read(&msg).unwrap().len(), 62);
    expect_code(
        &tic(&[&"signing-message", &art, &"-o", &msg, &"--force"]),
        0,
    );

    // keygen through a link: the link is replaced, its target kept.
    let victim = d.join("victim.txt");
    std::fs::write(&victim, b"keep me").unwrap();
    std::os::unix::fs::symlink(&victim, d.join("p.pub")).unwrap();
    let o = tic(&[&"keygen", &"-o", &d.join("p")]);
    expect_code(&o, 2);
    assert!(!d.join("p.key").exists(), "no half pair");
    expect_code(&tic(&[&"keygen", &"-o", &d.join("p"), &"--force"]), 0);
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(std::fs::symlink_metadata(d.join("p.pub"))
        .unwrap()
        .is_file());
    // A directory in the way, or a prefix that names one.
    std::fs::create_dir(d.join("e.pub")).unwrap();
    let o = tic(&[&"keygen", &"-o", &d.join("e"), &"--force"]);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert!(!d.join("e.key").exists(), "no half pair");
    let o = tic(&[&"keygen", &"-o", &format!("{}/", d.display())]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("names a directory; give the keys' name"),
        "{}",
        stderr(&o)
    );

    // decompress --force onto a file, or into a path through one.
    for out in [pubk.clone(), pubk.join("x")] {
        let o = tic(&[
            &"decompress",
            &art,
            &"-o",
            &out,
            &"--trusted-key",
            &pubk,
            &"--force",
        ]);
        expect_code(&o, 2);
        let want = format!("{} exists and is not a directory", pubk.display());
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
        assert!(pubk.is_file());
    }
    assert_eq!(std::fs::read(&art).unwrap(), art_bytes);
}

/// Log lines quote names from the model or the artifact: escaped like
/// everything else tic prints, so a file name cannot fake a line.
#[test]
fn log_lines_cannot_be_forged_by_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 14);
    std::fs::write(m.join("x\nverified by the release key.json"), b"{}").unwrap();
    let art = d.join("a.tic");
    expect_code(&tic(&[&"compile", &"--unsigned", &m, &"-o", &art]), 0);
    // decompress -v logs every file it restores.
    let o = tic(&[
        &"-v",
        &"decompress",
        &"--allow-unsigned",
        &art,
        &"-o",
        &d.join("out"),
    ]);
    expect_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("x\\nverified by the release key.json"),
        "{err}"
    );
    assert!(!err.lines().any(|l| l.starts_with("verified by")), "{err}");
}

/// A secret key file others can read gets a warning (as ssh gives), once
/// per file; one only its owner can read gets none.
#[test]
fn secret_key_files_open_to_others_are_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 12);
    let (key, _) = keygen(d, "k");
    let sym = d.join("sym.key");
    std::fs::write(&sym, [5u8; 32]).unwrap();
    let art = d.join("a.tic");
    let compile = |mode: u32| {
        for p in [&key, &sym] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let o = tic(&[
            &"compile",
            &m,
            &"-o",
            &art,
            &"--force",
            &"--sign",
            &key,
            &"--encrypt-key",
            &sym,
        ]);
        expect_code(&o, 0);
        stderr(&o)
    };
    let err = compile(0o644);
    for (p, what) in [(&key, "signing key"), (&sym, "symmetric key")] {
        let want = format!(
            "tic: warning: {}: this {what} file is open to other users (mode 644); `chmod 600 {}`",
            p.display(),
            p.display()
        );
        assert!(err.contains(&want), "{err}");
    }
    assert_eq!(compile(0o600), "");
    std::fs::set_permissions(&sym, std::fs::Permissions::from_mode(0o640)).unwrap();
    let o = tic(&[
        &"decompress",
        &art,
        &"-o",
        &d.join("out"),
        &"--allow-unsigned",
        &"--identity",
        &sym,
    ]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).contains("this identity file is open to other users (mode 640)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn keygen_writes_a_0600_pkcs8_key_and_its_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (key, pubk) = keygen(d, "release");
    assert_eq!(key.file_name().unwrap(), "release.key");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "private key mode {mode:o}");
    let priv_pem = std::fs::read_to_string(&key).unwrap();
    let pub_pem = std::fs::read_to_string(&pubk).unwrap();
    assert!(
        priv_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{priv_pem}"
    );
    assert!(
        pub_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"),
        "{pub_pem}"
    );
    let sk = tic_format::sign::parse_private_key_pem(&priv_pem).unwrap();
    assert_eq!(
        tic_format::sign::parse_public_key_pem(&pub_pem).unwrap(),
        sk.verifying_key()
    );
    // Two keygens make two different keys.
    let (key2, _) = keygen(d, "release2");
    assert_ne!(std::fs::read(&key).unwrap(), std::fs::read(&key2).unwrap());

    // Ed25519 in OpenSSL: 1.1.1 and later.
    if !matches!(openssl_version(), Some(v) if v >= (1, 1, 1)) {
        skip(
            "keygen_writes_a_0600_pkcs8_key_and_its_public_key",
            "no OpenSSL >= 1.1.1 on PATH; the OpenSSL cross-check of the key did not run",
        );
        return;
    }
    // OpenSSL reads tic's key and derives the same public key.
    let public = openssl(&[&"pkey", &"-in", &key, &"-pubout"]);
    assert_eq!(String::from_utf8(public).unwrap(), pub_pem);
}

#[test]
fn openssl_keys_sign_artifacts_that_verify() {
    // `pkeyutl -rawin` (pure Ed25519 over a file): OpenSSL 3.0 and later.
    if !matches!(openssl_version(), Some(v) if v >= (3, 0, 0)) {
        skip(
            "openssl_keys_sign_artifacts_that_verify",
            "no OpenSSL >= 3.0 on PATH; signing with OpenSSL keys was not tested",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 6);
    let key = d.join("ossl.pem");
    let pubk = d.join("ossl.pub");
    openssl(&[&"genpkey", &"-algorithm", &"ed25519", &"-out", &key]);
    openssl(&[&"pkey", &"-in", &key, &"-pubout", &"-out", &pubk]);
    let signed = compile_signed(d, &m, &key, "signed.tic");
    let o = tic(&[&"verify", &signed, &"--trusted-key", &pubk]);
    expect_code(&o, 0);

    // Signed outside tic, by OpenSSL, over the message tic prints: the same
    // bytes as `compile --sign`.
    let unsigned = d.join("unsigned.tic");
    expect_code(&tic(&[&"compile", &m, &"-o", &unsigned, &"--unsigned"]), 0);
    let msg = d.join("msg.bin");
    expect_code(&tic(&[&"signing-message", &unsigned, &"-o", &msg]), 0);
    assert_eq!(std::fs::metadata(&msg).unwrap().len(), 62);
    let o = tic(&[&"signing-message", &unsigned]);
    expect_code(&o, 0);
    assert_eq!(
        stdout(&o).trim(),
        tic_format::hex(&std::fs::read(&msg).unwrap())
    );
    let sig = d.join("sig.bin");
    openssl_sign(&key, &msg, &sig);
    let attached = d.join("attached.tic");
    let o = attach_signature(&unsigned, &sig, &pubk, &attached);
    expect_code(&o, 0);
    assert_eq!(
        std::fs::read(&attached).unwrap(),
        std::fs::read(&signed).unwrap()
    );
    // The same signature in base64, as KMS tools print it.
    let sig64 = d.join("sig.b64");
    openssl(&[&"base64", &"-A", &"-in", &sig, &"-out", &sig64]);
    let attached64 = d.join("attached64.tic");
    expect_code(&attach_signature(&unsigned, &sig64, &pubk, &attached64), 0);
    assert_eq!(
        std::fs::read(&attached64).unwrap(),
        std::fs::read(&signed).unwrap()
    );
    // A file that is no signature: named, with the forms it may take.
    let o = attach_signature(&unsigned, &pubk, &pubk, &d.join("never.tic"));
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains(pubk.to_str().unwrap()) && err.contains("128 hex digits"),
        "{err}"
    );
    assert!(!d.join("never.tic").exists());

    // A signature by another key is refused (verification failure).
    let other = d.join("other.pem");
    openssl(&[&"genpkey", &"-algorithm", &"ed25519", &"-out", &other]);
    openssl_sign(&other, &msg, &sig);
    let refused = d.join("refused.tic");
    let o = attach_signature(&unsigned, &sig, &pubk, &refused);
    expect_code(&o, 1);
    assert!(!refused.exists());
}

/// Attaching a signature by another key to a signed artifact replaces the
/// signer: said in a warning, since whoever trusts only the old signer
/// will refuse the result.
#[test]
fn replacing_a_signer_is_said() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 15);
    let (key_a, pub_a) = keygen(d, "a");
    let (key_b, pub_b) = keygen(d, "b");
    let by_a = compile_signed(d, &m, &key_a, "by-a.tic");
    let by_b = compile_signed(d, &m, &key_b, "by-b.tic");
    // B's signature, as its signer would hand it over: the last 64 bytes of
    // the 98-byte signature section after the header.
    let bytes = std::fs::read(&by_b).unwrap();
    let header_len = u64::from_le_bytes(bytes[16..24].try_into().unwrap()) as usize;
    let at = 48 + header_len + 34;
    let sig = d.join("b.sig");
    std::fs::write(&sig, &bytes[at..at + 64]).unwrap();
    let out = d.join("resigned.tic");
    let o = attach_signature(&by_a, &sig, &pub_b, &out);
    expect_code(&o, 0);
    let want = format!(
        "replacing the signature by {} with one by {}",
        fingerprint(&pub_a),
        fingerprint(&pub_b)
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    // The same signer again: nothing to say.
    let o = attach_signature(&by_b, &sig, &pub_b, &d.join("again.tic"));
    expect_code(&o, 0);
    assert!(!stderr(&o).contains("replacing"), "{}", stderr(&o));
}

const X25519_SPKI: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VuAyEACBwjMoxEOgz61qJf0YzVE5KCG9KHfSWx12on+eo85zc=
-----END PUBLIC KEY-----
";

/// An Ed25519 key as `openssl pkcs8 -topk8 -v2 aes-256-cbc` writes it
/// (passphrase "tic").
const ENCRYPTED_PKCS8: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----
MIGbMFcGCSqGSIb3DQEFDTBKMCkGCSqGSIb3DQEFDDAcBAiYpuLbi4wv0QICCAAw
DAYIKoZIhvcNAgkFADAdBglghkgBZQMEASoEEAe0tLXLroR82lEs3fxEnR0EQKIS
8EbggxykyMz1XhVEBDo/R9+PgGGsJQF4IaqcAXaDk+JEbecGFMDg0xzOrodS9IAd
n2mvbWOqX0i32SMtbdk=
-----END ENCRYPTED PRIVATE KEY-----
";

#[test]
fn key_file_errors_name_the_file_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 7);
    let (key, pubk) = keygen(d, "k");
    let signed = compile_signed(d, &m, &key, "a.tic");
    let check = |o: &Output, want_code: i32, file: &Path, hints: &[&str]| {
        expect_code(o, want_code);
        let e = stderr(o);
        assert!(
            e.contains(file.to_str().unwrap()),
            "names {}: {e}",
            file.display()
        );
        for h in hints {
            assert!(e.contains(h), "says {h:?}: {e}");
        }
    };

    // A public key where the signing key goes.
    let o = tic(&[&"compile", &m, &"-o", &d.join("x.tic"), &"--sign", &pubk]);
    check(&o, 2, &pubk, &["private key", "tic keygen"]);
    // (A public key may be readable by all: no warning about that.)
    assert!(
        !stderr(&o).contains("open to other users"),
        "{}",
        stderr(&o)
    );
    // A missing signing key.
    let nokey = d.join("nokey.key");
    let o = tic(&[&"compile", &m, &"-o", &d.join("x.tic"), &"--sign", &nokey]);
    check(&o, 2, &nokey, &[]);
    assert!(!d.join("x.tic").exists());

    // An X25519 key, and a private key, given as the trusted key.
    let x = d.join("x25519.pub");
    std::fs::write(&x, X25519_SPKI).unwrap();
    let o = tic(&[&"verify", &signed, &"--trusted-key", &x]);
    check(&o, 2, &x, &["Ed25519", "openssl pkey", "tic keygen"]);
    let o = tic(&[&"verify", &signed, &"--trusted-key", &key]);
    check(&o, 2, &key, &["-pubout"]);
    // A missing trusted key, and a key directory with no keys.
    let nopub = d.join("nopub.pub");
    check(
        &tic(&[&"verify", &signed, &"--trusted-key", &nopub]),
        2,
        &nopub,
        &[],
    );
    let empty = d.join("empty-keys");
    std::fs::create_dir(&empty).unwrap();
    check(
        &tic(&[&"verify", &signed, &"--trusted-key", &empty]),
        2,
        &empty,
        &["*.pub"],
    );

    // The signing key given as the decryption identity.
    let o = decompress(&signed, &d.join("o"), &pubk, Some(&key));
    check(
        &o,
        2,
        &key,
        &["not a decryption identity", "AGE-SECRET-KEY-1"],
    );
    // A passphrase-protected PEM key where the signing key goes.
    let locked = d.join("locked.key");
    std::fs::write(&locked, ENCRYPTED_PKCS8).unwrap();
    let o = tic(&[&"compile", &m, &"-o", &d.join("x.tic"), &"--sign", &locked]);
    check(
        &o,
        2,
        &locked,
        &["encrypted with a passphrase", "openssl pkey -in KEY -out"],
    );

    // Identity and symmetric key files that are neither.
    let bad = d.join("bad-identity.txt");
    std::fs::write(&bad, "not a key\n").unwrap();
    let o = decompress(&signed, &d.join("o"), &pubk, Some(&bad));
    check(&o, 2, &bad, &["32 raw bytes"]);
    let o = tic(&[
        &"compile",
        &m,
        &"-o",
        &d.join("y.tic"),
        &"--unsigned",
        &"--encrypt-key",
        &bad,
    ]);
    check(&o, 2, &bad, &["32 raw bytes"]);
    let o = tic(&[
        &"compile",
        &m,
        &"-o",
        &d.join("y.tic"),
        &"--unsigned",
        &"--encrypt-to",
        &"age1notarecipient",
    ]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains("age1notarecipient") && stderr(&o).contains("age-keygen"),
        "{}",
        stderr(&o)
    );
    // A secret key pasted where a recipient goes is refused without being
    // echoed (error output ends up in CI logs), whatever its case.
    let secret = "AGE-SECRET-KEY-1QQPQXQ8Z3H4Q7W8ZJWGYJ0J3SX6XQ8N0RXYWXQ2Q3C5J5SQ0UGS8Q3GK7K";
    let out = d.join("z.tic");
    let sym = d.join("sym.key");
    std::fs::write(&sym, [9u8; 32]).unwrap();
    for s in [secret.to_string(), secret.to_lowercase()] {
        for o in [
            tic(&[
                &"compile",
                &m,
                &"-o",
                &out,
                &"--unsigned",
                &"--encrypt-to",
                &s,
            ]),
            tic(&[
                &"rewrap",
                &signed,
                &"--identity",
                &sym,
                &"--add",
                &s,
                &"-o",
                &out,
            ]),
        ] {
            expect_code(&o, 2);
            let err = stderr(&o);
            assert!(
                err.contains("this is an age identity (secret key)"),
                "{err}"
            );
            assert!(
                !err.to_uppercase().contains(&secret[16..]),
                "the secret is echoed: {err}"
            );
        }
    }
}

/// A reader that stops early (`tic inspect m.tic | head`) gets no error
/// message on stderr, and the exit code is never 0: a failed verify must not
/// read as success when its report could not be delivered.
#[test]
fn closed_stdout_exits_141_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 3);
    let (key, pubk) = keygen(d, "signer");
    let signed = compile_signed(d, &m, &key, "signed.tic");
    let tampered = d.join("tampered.tic");
    std::fs::copy(&signed, &tampered).unwrap();
    tamper_last_byte(&tampered);
    let cases: [&[&dyn AsRef<std::ffi::OsStr>]; 4] = [
        &[&"inspect", &signed],
        &[&"inspect", &signed, &"--json"],
        &[&"verify", &signed, &"--trusted-key", &pubk],
        &[&"verify", &tampered, &"--trusted-key", &pubk, &"--json"],
    ];
    for args in cases {
        // The pipe's only reader is closed before tic starts, so its first
        // write fails with EPIPE, whatever the timing.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let o = tic_command(args).stdout(writer).output().expect("run tic");
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert_eq!(code(&o), 141, "{shown:?}: stderr:\n{}", stderr(&o));
        assert_eq!(stderr(&o), "", "{shown:?}");
    }
}

/// An output directory that does not exist fails the compile once the
/// codecs are chosen, while the input digests may still be running beside:
/// the error names the directory (exit 2), never the hashing it stops, and
/// nothing is created.
#[test]
fn compile_into_a_missing_directory_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 4);
    let art = d.join("m.tic");
    expect_code(&tic(&[&"compile", &"--unsigned", &m, &"-o", &art]), 0);
    let missing = d.join("no-such-dir");
    let out = missing.join("m.tic");
    let hint = format!(
        "{} is not an existing directory; create it first (`mkdir -p {}`)",
        missing.display(),
        missing.display()
    );
    for o in [
        tic(&[&"compile", &"--unsigned", &m, &"-o", &out]),
        tic(&[&"signing-message", &art, &"-o", &out]),
        tic(&[&"keygen", &"-o", &missing.join("k")]),
    ] {
        expect_code(&o, 2);
        let err = stderr(&o);
        assert!(err.contains(&hint), "{err}");
        assert!(!err.contains(".tic-"), "no temporary named: {err}");
    }
    // A valid signature, so that attach-signature gets as far as writing.
    let (key, pubk) = keygen(d, "k");
    let msg = d.join("msg");
    expect_code(&tic(&[&"signing-message", &art, &"-o", &msg]), 0);
    let pem = std::fs::read_to_string(&key).unwrap();
    let signing = tic_format::sign::parse_private_key_pem(&pem).unwrap();
    let sig = d.join("sig");
    use ed25519_dalek::Signer;
    std::fs::write(&sig, signing.sign(&std::fs::read(&msg).unwrap()).to_bytes()).unwrap();
    let o = attach_signature(&art, &sig, &pubk, &out);
    expect_code(&o, 2);
    assert!(stderr(&o).contains(&hint), "{}", stderr(&o));
    assert!(!missing.exists());
}

/// `keygen -o PREFIX` writes PREFIX.key and PREFIX.pub, keeping dots in
/// PREFIX; a PREFIX ending in .key or .pub is taken as the pair's name.
#[test]
fn keygen_keeps_the_whole_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (prefix, want) in [
        ("release-2026.11", "release-2026.11"),
        ("ci.key", "ci"),
        ("team.pub", "team"),
    ] {
        expect_code(&tic(&[&"keygen", &"-o", &d.join(prefix)]), 0);
        for ext in ["key", "pub"] {
            let p = d.join(format!("{want}.{ext}"));
            assert!(p.exists(), "{prefix}: {} missing", p.display());
        }
    }
    assert_eq!(
        names_in(d),
        [
            "ci.key",
            "ci.pub",
            "release-2026.11.key",
            "release-2026.11.pub",
            "team.key",
            "team.pub"
        ]
    );
}

/// The names in `dir`, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A model directory is packed without what is not the model: a cloned
/// repository's `.git` (with git-lfs, a second copy of the weights),
/// huggingface_hub's `.cache/huggingface`, an artifact written inside the
/// model it was made from (by the next compile that replaces it), and what
/// an interrupted tic left there. Other hidden files (`.gitattributes`)
/// stay. An output that is a directory gets told to name a file.
#[test]
fn a_model_directory_is_packed_without_what_is_not_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 8);
    let weights = std::fs::read(m.join("model.safetensors")).unwrap();
    for (rel, bytes) in [
        (".gitattributes", b"*.safetensors filter=lfs".to_vec()),
        (".git/lfs/objects/ab/cd/abcd", weights),
        (".git/HEAD", b"ref: refs/heads/main".to_vec()),
        (
            ".cache/huggingface/download/config.json.metadata",
            b"abc".to_vec(),
        ),
    ] {
        std::fs::create_dir_all(m.join(rel).parent().unwrap()).unwrap();
        std::fs::write(m.join(rel), bytes).unwrap();
    }
    let art = m.join("model.tic");
    let files = |art: &Path| -> Vec<String> {
        let o = tic(&[&"inspect", &art, &"--json"]);
        expect_code(&o, 0);
        let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
        v["file_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap().to_string())
            .collect()
    };
    let o = tic(&[&"compile", &"--unsigned", &m, &"-o", &art]);
    expect_code(&o, 0);
    let first = files(&art);
    assert_eq!(
        first,
        [".gitattributes", "config.json", "model.safetensors"]
    );
    let err = stderr(&o);
    assert!(!err.contains("no *.safetensors"), "{err}");
    for left_out in [".git", ".cache/huggingface"] {
        assert!(
            err.contains(&format!("leaving out {}", m.join(left_out).display())),
            "{err}"
        );
    }

    std::fs::write(m.join(".tic-Ab12Cd.partial"), b"half an artifact").unwrap();
    std::fs::create_dir(m.join(".tic-extract-Ef34Gh")).unwrap();
    std::fs::write(m.join(".tic-extract-Ef34Gh/config.json"), b"{}").unwrap();
    let o = tic(&[&"compile", &"--unsigned", &"--force", &m, &"-o", &art]);
    expect_code(&o, 0);
    assert_eq!(files(&art), first);
    let err = stderr(&o);
    for left_out in ["model.tic", ".tic-Ab12Cd.partial", ".tic-extract-Ef34Gh"] {
        assert!(
            err.contains(&format!("leaving out {}", m.join(left_out).display())),
            "{err}"
        );
    }

    // An artifact as the input is refused; one inside the model directory
    // is packed as a plain file, with a warning.
    let o = tic(&[&"compile", &"--unsigned", &art, &"-o", &d.join("again.tic")]);
    expect_code(&o, 2);
    let want = format!("{} is already a tic artifact", art.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(!d.join("again.tic").exists());
    let o = tic(&[&"compile", &"--unsigned", &m, &"-o", &d.join("outer.tic")]);
    expect_code(&o, 0);
    let want = format!(
        "tic: warning: {}: a tic artifact, packed into this one",
        art.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));

    // A directory without weights (the wrong one, say) is packed, with a
    // warning that it holds no tensors.
    let o = tic(&[
        &"compile",
        &"--unsigned",
        &m.join(".git"),
        &"-o",
        &d.join("git.tic"),
    ]);
    expect_code(&o, 0);
    let want = format!(
        "{}: no *.safetensors file in it, so no tensors: its 2 file(s) are stored as plain files",
        m.join(".git").display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));

    let o = tic(&[&"compile", &"--unsigned", &"--force", &m, &"-o", &d]);
    expect_code(&o, 2);
    let want = format!(
        "{} names a directory; give the artifact's file name, such as ",
        d.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    // A directory that does not exist yet, told by its trailing slash.
    let o = tic(&[&"compile", &"--unsigned", &m, &"-o", &"new-dir/"]);
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains(
            "new-dir/ names a directory; give the artifact's file name, such as new-dir/model.tic"
        ),
        "{}",
        stderr(&o)
    );
}

/// A full Hugging Face download holds the same weights in other formats
/// (pytorch_model.bin, tf_model.h5, onnx/): compile names them in a warning
/// with the `--exclude` flags that leave them out (a small settings file
/// such as training_args.bin is no weight file). `--exclude` leaves out
/// matching files and whole folders, says what it left out, warns about a
/// pattern that matched nothing, and the rest restores byte for byte. A
/// pattern that would leave out an indexed shard, leave nothing, or is
/// absolute is refused, with nothing written.
#[test]
fn other_weight_formats_are_named_and_exclude_leaves_them_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 12);
    let big = |n: usize, seed: u8| -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(seed) ^ (i >> 9) as u8)
            .collect()
    };
    std::fs::write(m.join("pytorch_model.bin"), big(3 << 20, 7)).unwrap();
    // As written: the suggested pattern keeps the case.
    std::fs::write(m.join("tf_model.H5"), big(2 << 20, 11)).unwrap();
    // A folder linked in (as a snapshot links files): judged by its target.
    let onnx = d.join("onnx-export");
    std::fs::create_dir(&onnx).unwrap();
    std::fs::write(onnx.join("model.onnx"), big(1 << 20, 13)).unwrap();
    std::os::unix::fs::symlink(&onnx, m.join("onnx")).unwrap();
    std::fs::write(m.join("training_args.bin"), b"small settings").unwrap();
    let art = d.join("m.tic");

    std::fs::remove_file(m.join("onnx")).unwrap();
    std::fs::create_dir(m.join("onnx")).unwrap();
    std::fs::copy(onnx.join("model.onnx"), m.join("onnx/model.onnx")).unwrap();
    let o = tic(&[&"compile", &"--unsigned", &m, &"-o", &art]);
    expect_code(&o, 0);
    let err = stderr(&o);
    let want = format!(
        "tic: warning: {} holds weights in formats other than safetensors: onnx/model.onnx (1.0 MB), \
         pytorch_model.bin (3.1 MB), tf_model.H5 (2.1 MB); 6.3 MB,",
        m.display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains("leave the others out: --exclude '*.H5' --exclude '*.bin' --exclude '*.onnx'"),
        "{err}"
    );
    std::fs::remove_dir_all(m.join("onnx")).unwrap();
    std::os::unix::fs::symlink(&onnx, m.join("onnx")).unwrap();
    assert!(!err.contains("training_args.bin"), "{err}");

    // The suggested flags, with a folder pattern and one that matches nothing.
    let o = tic(&[
        &"compile",
        &"--unsigned",
        &"--force",
        &m,
        &"-o",
        &art,
        &"--exclude",
        &"*.bin",
        &"--exclude",
        &"*.H5",
        &"--exclude",
        &"onnx/",
        &"--exclude",
        &"*.gguf",
        // Also matching: no "matched nothing" for these.
        &"--exclude",
        &"pytorch_model.bin",
        &"--exclude",
        &"onnx/*.onnx",
    ]);
    expect_code(&o, 0);
    let err = stderr(&o);
    assert!(!err.contains("formats other than safetensors"), "{err}");
    assert!(
        err.contains(&format!(
            "tic: warning: --exclude \"*.gguf\" matched nothing in {}",
            m.display()
        )),
        "{err}"
    );
    assert_eq!(err.matches("matched nothing").count(), 1, "{err}");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "left out by --exclude: onnx/, pytorch_model.bin, tf_model.H5, training_args.bin \
             (4 file(s), {} bytes)",
            (3 << 20) + (2 << 20) + (1 << 20) + 14
        )),
        "{out}"
    );
    let restored = d.join("restored");
    let o = tic(&[&"decompress", &"--allow-unsigned", &art, &"-o", &restored]);
    expect_code(&o, 0);
    assert_eq!(names_in(&restored), ["config.json", "model.safetensors"]);
    assert_restored(&restored, &m);

    // A link to a file that is not there: named, and --exclude leaves it out.
    let compile_excluding = |out: &Path, patterns: &[&str]| -> Output {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"compile", &"--unsigned", &m, &"-o", &out];
        for p in patterns {
            args.push(&"--exclude");
            args.push(p);
        }
        tic(&args)
    };
    std::os::unix::fs::symlink(d.join("gone.bin"), m.join("unfinished.bin")).unwrap();
    let o = compile_excluding(&d.join("dangling.tic"), &["onnx"]);
    expect_code(&o, 2);
    let want = format!(
        "{}: a symbolic link to a file that is not there (a download that did not finish?); \
         fetch the file again, or leave the link out with --exclude unfinished.bin",
        m.join("unfinished.bin").display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let o = compile_excluding(&d.join("dangling.tic"), &["onnx", "unfinished.bin"]);
    expect_code(&o, 0);
    std::fs::remove_file(m.join("unfinished.bin")).unwrap();

    // Two links that point at each other: named as a loop, not as an I/O
    // error, and --exclude leaves them out.
    std::os::unix::fs::symlink("loop-b.bin", m.join("loop-a.bin")).unwrap();
    std::os::unix::fs::symlink("loop-a.bin", m.join("loop-b.bin")).unwrap();
    let o = compile_excluding(&d.join("loop.tic"), &["onnx"]);
    expect_code(&o, 2);
    let want = format!(
        "{}: a symbolic link that leads back to itself (a loop of links, too many levels to \
         follow); point it at the file it stands for, or leave it out with --exclude loop-a.bin",
        m.join("loop-a.bin").display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert!(!d.join("loop.tic").exists());
    let o = compile_excluding(&d.join("loop.tic"), &["onnx", "loop-?.bin"]);
    expect_code(&o, 0);
    for link in ["loop-a.bin", "loop-b.bin"] {
        std::fs::remove_file(m.join(link)).unwrap();
    }

    // Refused, with nothing written.
    let o = compile_excluding(&d.join("linked.tic"), &["*.bin"]);
    expect_code(&o, 2);
    let want = format!(
        "{}: symbolic links to directories are not followed; copy the directory's contents in \
         instead, or leave it out with --exclude onnx/",
        m.join("onnx").display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    std::fs::remove_file(m.join("onnx")).unwrap();
    std::fs::write(
        m.join("model.safetensors.index.json"),
        r#"{"weight_map":{"a.weight":"model.safetensors","b.bias":"model.safetensors"}}"#,
    )
    .unwrap();
    let fresh = d.join("fresh.tic");
    for (pattern, want) in [
        (
            "*.safetensors",
            format!(
                "{} places tensors in model.safetensors, which --exclude \"*.safetensors\" leaves out",
                m.join("model.safetensors.index.json").display()
            ),
        ),
        (
            "*",
            format!("{}: contains no files to compile (", m.display()),
        ),
        (
            "/onnx",
            "--exclude \"/onnx\": patterns are relative to the model directory; drop the leading `/`"
                .to_string(),
        ),
        ("./", "--exclude \"./\": the pattern is empty".to_string()),
    ] {
        let o = tic(&[&"compile", &"--unsigned", &m, &"-o", &fresh, &"--exclude", &pattern]);
        expect_code(&o, 2);
        assert!(stderr(&o).contains(&want), "{pattern}: {}", stderr(&o));
        assert!(!fresh.exists(), "{pattern}");
    }
}

/// A shard index that does not match its shards, or is no index, is named
/// in a warning; the files are packed as they are.
#[test]
fn a_stale_or_unreadable_shard_index_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 11);
    let index = m.join("model.safetensors.index.json");
    for (text, want) in [
        (
            r#"{"weight_map":{"a.weight":"model.safetensors","gone.weight":"model.safetensors"}}"#,
            "places 1 tensor(s) in shards that do not hold them, such as `gone.weight` in model.safetensors",
        ),
        (r#"{"weight_map":["#, "not checked against the shards: not a weight_map index"),
        (
            r#"{"weight_map":{"a.weight":"../model.safetensors"}}"#,
            r#"not checked against the shards: it names "../model.safetensors", which is not a file name"#,
        ),
    ] {
        std::fs::write(&index, text).unwrap();
        let o = tic(&[&"compile", &"--unsigned", &"--force", &m, &"-o", &d.join("m.tic")]);
        expect_code(&o, 0);
        let want = format!("tic: warning: {}: {want}", index.display());
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
}

/// An output that is one of the model's own files (a slip of `-o`) is
/// refused even with --force, and the file is left as it was; an old
/// artifact in the model directory is still replaced.
#[test]
fn compiling_over_a_file_of_the_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 9);
    let weights = m.join("model.safetensors");
    let config = m.join("config.json");
    let before = (
        std::fs::read(&weights).unwrap(),
        std::fs::read(&config).unwrap(),
    );
    for (input, output) in [(&weights, &weights), (&m, &config), (&m, &weights)] {
        let o = tic(&[&"compile", &"--unsigned", &"--force", input, &"-o", output]);
        expect_code(&o, 2);
        let want = format!(
            "{} is one of the files being compiled, not an artifact",
            output.display()
        );
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    assert_eq!(
        (
            std::fs::read(&weights).unwrap(),
            std::fs::read(&config).unwrap()
        ),
        before
    );
    assert_eq!(names_in(&m), ["config.json", "model.safetensors"]);
    let art = m.join("model.tic");
    for _ in 0..2 {
        let o = tic(&[&"compile", &"--unsigned", &"--force", &m, &"-o", &art]);
        expect_code(&o, 0);
    }
}

/// `decompress --force` replaces the output directory, deleting what was
/// in it: it refuses when that holds the artifact being read or the
/// directory it runs in, and leaves everything as it was.
#[test]
fn decompress_force_keeps_the_artifact_and_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 9);
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    let art = out.join("m.tic");
    expect_code(&tic(&[&"compile", &"--unsigned", &m, &"-o", &art]), 0);
    let before = std::fs::read(&art).unwrap();
    let (in_d, in_out) = (names_in(d), names_in(&out));

    let o = tic(&[
        &"decompress",
        &"--allow-unsigned",
        &"--force",
        &art,
        &"-o",
        &out,
    ]);
    expect_code(&o, 2);
    let want = format!("{} holds the artifact being restored", out.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));

    let elsewhere = d.join("m.tic");
    std::fs::copy(&art, &elsewhere).unwrap();
    let o = tic_command(&[
        &"decompress",
        &"--allow-unsigned",
        &"--force",
        &elsewhere,
        &"-o",
        &".",
    ])
    .current_dir(&out)
    .output()
    .unwrap();
    expect_code(&o, 2);
    assert!(
        stderr(&o).contains(". holds the current directory"),
        "{}",
        stderr(&o)
    );
    std::fs::remove_file(&elsewhere).unwrap();
    assert_eq!((names_in(d), names_in(&out)), (in_d, in_out));
    assert_eq!(std::fs::read(&art).unwrap(), before);
}

/// An existing empty directory is filled without --force (a volume mounted
/// for the model, which cannot be renamed, included), through a link too;
/// --force replaces a directory's contents in place; nothing of tic's
/// temporaries is left.
#[test]
fn decompress_fills_an_existing_empty_directory_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 10);
    let art = d.join("m.tic");
    expect_code(&tic(&[&"compile", &"--unsigned", &m, &"-o", &art]), 0);
    let restore = |out: &Path, force: bool| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"decompress", &"--allow-unsigned", &art, &"-o", &out];
        if force {
            args.push(&"--force");
        }
        tic(&args)
    };
    let model_files = ["config.json", "model.safetensors"];

    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    expect_code(&restore(&out, false), 0);
    assert_restored(&out, &m);
    assert_eq!(names_in(&out), model_files);
    // Not empty now: --force is needed, and replaces the contents.
    let o = restore(&out, false);
    expect_code(&o, 2);
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    std::fs::write(out.join("extra.txt"), b"old").unwrap();
    std::fs::create_dir(out.join("sub")).unwrap();
    expect_code(&restore(&out, true), 0);
    assert_restored(&out, &m);
    assert_eq!(names_in(&out), model_files);
    assert_eq!(names_in(d), ["m.tic", "model10", "out"]);

    // Empty but for what a killed restore left inside: filled, and the
    // leftover goes.
    let killed = d.join("killed");
    std::fs::create_dir_all(killed.join(".tic-extract-AbC123")).unwrap();
    std::fs::write(killed.join(".tic-extract-AbC123/config.json"), b"{").unwrap();
    expect_code(&restore(&killed, false), 0);
    assert_restored(&killed, &m);
    assert_eq!(names_in(&killed), model_files);
    std::fs::remove_dir_all(&killed).unwrap();

    // A link to an empty directory: filled through the link, which stays.
    let target = d.join("target");
    std::fs::create_dir(&target).unwrap();
    let link = d.join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    expect_code(&restore(&link, false), 0);
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_restored(&target, &m);

    // A mount point, in a private mount namespace (where one can be made).
    let vol = d.join("vol");
    std::fs::create_dir(&vol).unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs '{v}' || exit 99; '{tic}' decompress --allow-unsigned '{a}' -o '{v}' >/dev/null && ls -A '{v}'",
        v = vol.display(),
        tic = env!("CARGO_BIN_EXE_tic"),
        a = art.display()
    );
    match Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
    {
        Ok(o) if o.status.code() == Some(0) => {
            let listed: Vec<_> = stdout(&o).lines().map(str::to_string).collect();
            assert_eq!(listed, model_files, "{}", stderr(&o));
        }
        Ok(o) if o.status.code() != Some(99) && o.status.code() != Some(1) => {
            panic!("decompress onto a mount point failed: {}", stderr(&o))
        }
        _ => skip(
            "decompress_fills_an_existing_empty_directory_in_place",
            "cannot mount a tmpfs in a user namespace here; the mount point case was not tested",
        ),
    }
}

/// `tic ARGS` run by `sh` after the shell commands `setup` (limits).
fn tic_after(setup: &str, args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(r#"{setup} && exec "$0" "$@""#))
        .arg(env!("CARGO_BIN_EXE_tic"))
        .args(args.iter().map(|a| a.as_ref()))
        .env_remove("TIC_LOG")
        .output()
        .expect("run sh")
}

/// Files limited to 64 blocks with SIGXFSZ ignored: a write past 32 KiB
/// (64 KiB where the shell counts 1 KiB blocks) fails with EFBIG, as a
/// full disk fails with ENOSPC.
const SMALL_FILE_LIMIT: &str = r#"trap "" XFSZ; ulimit -f 64"#;

/// A model of many files compiles under a low soft limit on open files
/// (tic raises it to the hard limit: every input stays open during a
/// compile); under a low hard limit the error says to raise it.
#[test]
fn a_model_of_many_files_compiles_under_a_low_open_files_limit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 10);
    for i in 0..300 {
        std::fs::write(m.join(format!("part{i:03}.txt")), format!("{i}\n")).unwrap();
    }
    let art = d.join("m.tic");
    let o = tic_after(
        "ulimit -S -n 64",
        &[&"compile", &"--unsigned", &m, &"-o", &art],
    );
    expect_code(&o, 0);
    expect_code(&tic(&[&"verify", &"--allow-unsigned", &art]), 0);

    let art2 = d.join("m2.tic");
    let o = tic_after(
        "ulimit -n 64",
        &[&"compile", &"--unsigned", &m, &"-o", &art2],
    );
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("too many files open at once (the model has 302 files")
            && err.contains("ulimit -n 366"),
        "{err}"
    );
    assert!(!art2.exists());
}

/// A write that fails (a full disk) names the output, not a temporary
/// file, says what to check, and leaves nothing at the output nor beside it.
#[test]
fn a_failed_write_names_the_output_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 6);
    // Random bytes: stored raw, so the artifact and the restored model both
    // pass the limit.
    let noise: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(m.join("tokenizer.json"), noise).unwrap();
    let out_dir = d.join("out");
    std::fs::create_dir(&out_dir).unwrap();
    let art = out_dir.join("m.tic");
    let temporaries = |dir: &Path| {
        names_in(dir)
            .iter()
            .filter(|n| n.starts_with(".tic-"))
            .count()
    };

    let o = tic_after(
        SMALL_FILE_LIMIT,
        &[&"compile", &"--unsigned", &m, &"-o", &art],
    );
    expect_code(&o, 2);
    let err = stderr(&o);
    let want = format!("{}: cannot write the artifact: ", art.display());
    assert!(err.contains(&want), "{err}");
    assert!(
        err.contains("File too large") && err.contains("free space"),
        "{err}"
    );
    assert!(!art.exists());
    assert_eq!(temporaries(&out_dir), 0);

    expect_code(&tic(&[&"compile", &"--unsigned", &m, &"-o", &art]), 0);
    let restored = out_dir.join("restored");
    let o = tic_after(
        SMALL_FILE_LIMIT,
        &[&"decompress", &"--allow-unsigned", &art, &"-o", &restored],
    );
    expect_code(&o, 2);
    let err = stderr(&o);
    let want = format!(
        "{}: cannot write the restored file: ",
        restored.join("tokenizer.json").display()
    );
    assert!(err.contains(&want), "{err}");
    assert!(!restored.exists());
    assert_eq!(temporaries(&out_dir), 0);
}

/// Logs go to stderr, plain text when it is not a terminal: warnings only by
/// default (as `tic: warning: ...` lines), the phases with `-v`, every tensor's codec with `-vv`, and
/// `TIC_LOG` overrides both; a `TIC_LOG` that is not a filter is named in a
/// warning and does not stop the command.
#[test]
fn verbosity_flags_and_tic_log_choose_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 5);
    let art = d.join("m.tic");
    let compile = |pre: &[&dyn AsRef<std::ffi::OsStr>], env: Option<&str>| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = pre.to_vec();
        args.extend([
            &"compile" as &dyn AsRef<_>,
            &"--unsigned",
            &"--force",
            &m,
            &"-o",
            &art,
        ]);
        let mut c = tic_command(&args);
        if let Some(v) = env {
            c.env("TIC_LOG", v);
        }
        let o = c.output().expect("run tic");
        expect_code(&o, 0);
        stderr(&o)
    };

    let quiet = compile(&[], None);
    assert!(
        !quiet.contains("INFO") && !quiet.contains("DEBUG"),
        "{quiet}"
    );

    // Warnings alone read like the error lines: no timestamp, no level column.
    let plain = d.join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join("config.json"), b"{}").unwrap();
    let o = tic(&[&"compile", &"--unsigned", &plain, &"-o", &d.join("p.tic")]);
    expect_code(&o, 0);
    assert!(
        stderr(&o).starts_with(&format!(
            "tic: warning: {}: no *.safetensors file",
            plain.display()
        )),
        "{}",
        stderr(&o)
    );

    let info = compile(&[&"-v"], None);
    assert!(
        !info.contains('\x1b'),
        "no colour codes in a pipe: {info:?}"
    );
    for want in [
        "2 files (1 safetensors), 2 tensors",
        "hashed 2 files",
        "chose the codecs of",
        "encoded",
        "wrote",
    ] {
        assert!(info.contains(want), "`{want}` missing from:\n{info}");
    }
    assert!(info.contains(" INFO "), "{info}");
    assert!(!info.contains("DEBUG"), "{info}");

    let debug = compile(&[&"-vv"], None);
    assert!(
        debug.contains("tensor `a.weight`: F32 [2, 3], 24 bytes in 1 chunks ->"),
        "{debug}"
    );
    assert!(debug.contains("config.json whole file"), "{debug}");

    let from_env = compile(&[], Some("debug"));
    assert!(from_env.contains("tensor `b.bias`: BF16 [4]"), "{from_env}");
    let only_runtime = compile(&[&"-vv"], Some("tic_runtime=debug,error"));
    assert!(!only_runtime.contains("tensor `b.bias`"), "{only_runtime}");

    let bad = compile(&[], Some("debug=[=="));
    assert!(
        bad.contains("TIC_LOG=`debug=[==` is not a log filter"),
        "{bad}"
    );

    let out = d.join("restored");
    let o = tic(&[&"-v", &"decompress", &"--allow-unsigned", &art, &"-o", &out]);
    expect_code(&o, 0);
    let err = stderr(&o);
    assert!(
        err.contains("opened") && err.contains("unsigned; not encrypted"),
        "{err}"
    );
    assert!(
        err.contains("restored model.safetensors (") && err.contains("SHA-256 matches"),
        "{err}"
    );
}

/// Names read from an artifact (file paths, tensor names) can hold terminal
/// escapes, newlines and bidirectional overrides; `inspect`, `verify` and
/// error messages print them escaped, and `--json` keeps them exact.
#[test]
fn names_with_control_characters_are_printed_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = d.join("model");
    std::fs::create_dir(&m).unwrap();
    let file = "clear\u{1b}[2J\nfake\u{202e}txt.json";
    std::fs::write(m.join(file), b"{}").unwrap();
    // One BF16 tensor whose name is an escape sequence and a newline.
    let tensor = "\u{1b}[31mevil\nname";
    let mut json = format!(
        r#"{{"{}":{{"dtype":"BF16","shape":[64],"data_offsets":[0,128]}}}}"#,
        tensor.replace('\u{1b}', "\\u001b").replace('\n', "\\n")
    );
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut st = (json.len() as u64).to_le_bytes().to_vec();
    st.extend_from_slice(json.as_bytes());
    st.extend((0..128u32).map(|i| (i * 37 % 251) as u8));
    std::fs::write(m.join("model.safetensors"), st).unwrap();
    let art = d.join("a.tic");
    let o = tic(&[
        &"compile",
        &m,
        &"-o",
        &art,
        &"--unsigned",
        &"--lossy",
        &"*evil*=mantissa:3",
        &"-q",
    ]);
    expect_code(&o, 0);

    let shown_file = r"clear\u{1b}[2J\nfake\u{202e}txt.json";
    let shown_tensor = r"\u{1b}[31mevil\nname";
    let clean = |what: &str, bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            !text.contains(['\u{1b}', '\u{202e}']),
            "{what} prints raw control characters: {text:?}"
        );
    };
    let o = tic(&[&"inspect", &art]);
    expect_code(&o, 0);
    clean("inspect", &o.stdout);
    let out = stdout(&o);
    assert!(out.contains(shown_file), "{out}");
    assert!(out.contains(shown_tensor), "{out}");

    let o = tic(&[&"verify", &art, &"--allow-unsigned", &"--require-lossless"]);
    expect_code(&o, 1);
    clean("verify's error", &o.stderr);
    assert!(stderr(&o).contains(shown_tensor), "{}", stderr(&o));

    let o = tic(&[&"inspect", &art, &"--json"]);
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let files: Vec<&str> = v["file_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    assert!(files.contains(&file), "{files:?}");
    assert_eq!(v["tensor_list"][0]["name"], tensor);
}

/// `tic load` loads every tensor (or the named ones), checks each against
/// its SHA-256 and reports each stage; it lands on the CPU, and says so,
/// when the GPU it was asked for cannot be used.
#[test]
fn load_reports_each_stage_and_the_device_it_landed_on() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let m = model(d, 6);
    let (key, pubk) = keygen(d, "signer");
    let art = compile_signed(d, &m, &key, "m.tic");

    let o = tic(&[&"load", &art, &"--trusted-key", &pubk, &"--device", &"cpu"]);
    expect_code(&o, 0);
    let out = stdout(&o);
    assert!(
        out.starts_with("loaded 2 tensors (0.00 MB) onto cpu\n"),
        "{out}"
    );
    assert!(out.contains(&fingerprint(&pubk)), "{out}");
    for stage in ["open + signature:", "load:", "check digests:"] {
        assert!(out.contains(stage), "{stage} missing: {out}");
    }
    assert!(!out.contains("GPU + kernels"), "{out}");

    // The default device is cuda:0: on a machine without a usable GPU the
    // load falls back, warns, and the report says where it went.
    let o = tic(&[
        &"load",
        &art,
        &"--trusted-key",
        &pubk,
        &"--json",
        &"--tensor",
        &"b.bias",
    ]);
    expect_code(&o, 0);
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["tensors"].as_u64(), v["bytes"].as_u64()),
        (Some(1), Some(8))
    );
    assert_eq!(v["device_requested"], "cuda:0");
    assert_eq!(v["signature"]["status"], "verified");
    let o = tic(&[&"load", &art, &"--trusted-key", &pubk]);
    expect_code(&o, 0);
    let out = stdout(&o);
    if v["device"] == "cpu" {
        assert!(
            stderr(&o).contains("decoding on the CPU instead"),
            "{}",
            stderr(&o)
        );
        assert!(
            out.contains("onto cpu (asked for cuda:0; see the warning above)"),
            "{out}"
        );
        assert!(out.contains("looking for a usable GPU, in vain"), "{out}");
    } else {
        assert_eq!(v["device"], "cuda:0");
        assert!(out.contains("compile the kernels with NVRTC"), "{out}");
    }

    // A name the artifact does not hold: a usage error that says where to look.
    let o = tic(&[
        &"load",
        &art,
        &"--trusted-key",
        &pubk,
        &"--tensor",
        &"c.weight",
    ]);
    expect_code(&o, 2);
    let err = stderr(&o);
    assert!(
        err.contains("no tensor named \"c.weight\"") && err.contains("tic inspect"),
        "{err}"
    );
}
