//! The clean-room reader in `tests/independent_reader/` (Python, standard
//! library only, written from `format-spec/*.md` without reading this
//! project's code) decodes the spec's test vectors and what today's
//! compiler writes: if the writer and the written spec drift apart, these
//! tests fail.
//!
//! They need `python3`. Without it they say SKIPPED, except under CI
//! (`CI=true`), where a missing interpreter is a failure.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::*;
use tic_compiler::{compile, CompileOptions};
use tic_format::crypto::{parse_recipient, read_symmetric_key_file, Recipient};
use tic_runtime::NoProgress;

fn reader() -> PathBuf {
    repo_root().join("tests/independent_reader/tic_reader.py")
}

/// `python3` if it runs; `None` (after saying so) when the test must skip.
fn python() -> Option<&'static str> {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some("python3");
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "python3 is required under CI to run the independent reader"
    );
    eprintln!("SKIPPED: python3 not found; the independent reader was not run");
    None
}

fn run(py: &str, args: &[&Path]) -> Output {
    Command::new(py)
        .arg(reader())
        .args(args)
        .output()
        .expect("running the independent reader")
}

fn text(o: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn spec_test_vectors_pass_the_independent_readers_self_test() {
    let Some(py) = python() else { return };
    let vectors = repo_root().join("format-spec/test-vectors");
    let o = run(py, &["--self-test".as_ref(), &vectors]);
    assert!(o.status.success(), "{}", text(&o));
}

/// Compiles the adversarial model signed and encrypted to an age recipient
/// and a symmetric key, and has the independent reader verify, decrypt
/// (with each key in turn), decode and restore it.
#[test]
fn independent_reader_restores_what_the_compiler_writes() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = adversarial_model(dir.path());
    let vectors = repo_root().join("format-spec/test-vectors/artifacts");
    let key = tic_format::sign::generate_key().unwrap();
    let public = dir.path().join("signing.pub");
    std::fs::write(
        &public,
        tic_format::sign::public_key_pem(&key.verifying_key()).unwrap(),
    )
    .unwrap();
    let age_file = vectors.join("recipient.agekey");
    let sym_file = vectors.join("recipient.symkey");
    let age_public = std::fs::read_to_string(&age_file).unwrap();
    let age_public = age_public
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("the age key file names its public key");
    let sym = read_symmetric_key_file(&std::fs::read(&sym_file).unwrap()).unwrap();
    let art = dir.path().join("a.tic");
    compile(
        &model,
        &art,
        &CompileOptions {
            signing_key: Some(key),
            recipients: vec![
                parse_recipient(age_public).unwrap(),
                Recipient::Symmetric(sym),
            ],
            // Several chunks per tensor, and tensors of more than one tile.
            chunk_bytes: 256 << 10,
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();

    for (flag, file) in [("--symkey", &sym_file), ("--identity", &age_file)] {
        let out = dir.path().join(format!("out{flag}"));
        let o = run(
            py,
            &[
                &art,
                "--trust".as_ref(),
                &public,
                flag.as_ref(),
                file,
                "--out".as_ref(),
                &out,
            ],
        );
        assert!(o.status.success(), "{flag}: {}", text(&o));
        assert_eq!(
            digests(&model),
            digests(&out),
            "the independent reader's restore ({flag}) differs from the model"
        );
    }

    // It really checks: one flipped payload byte makes it fail.
    let len = std::fs::metadata(&art).unwrap().len();
    tic_tests::xor_byte(&art, len - 100, 0x01);
    let o = run(
        py,
        &[
            &art,
            "--trust".as_ref(),
            &public,
            "--symkey".as_ref(),
            &sym_file,
        ],
    );
    assert!(
        !o.status.success(),
        "a damaged artifact was accepted: {}",
        text(&o)
    );
}

/// Lossy tensors (codec 2 and both modes of codec 3) in an unsigned
/// artifact: the independent reader restores the same bytes as tic.
#[test]
fn independent_reader_restores_lossy_tensors_as_tic_does() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (model, _) = adversarial_model(dir.path());
    let art = dir.path().join("lossy.tic");
    let rules = "f16.all_patterns=mantissa:4,bf16.weights_odd=abs:0.001,f32.mixed=rel:0.01";
    compile(
        &model,
        &art,
        &CompileOptions {
            lossy: Some(tic_compiler::LossyRules::parse(rules).unwrap()),
            ..Default::default()
        },
        &NoProgress,
    )
    .unwrap();
    let opened = tic_runtime::Artifact::open(
        &art,
        &tic_runtime::OpenOptions {
            trust: tic_runtime::Trust {
                keys: Vec::new(),
                allow_unsigned: true,
            },
            identities: Vec::new(),
        },
    )
    .unwrap();
    let codecs: Vec<String> = opened
        .header()
        .tensors
        .iter()
        .filter(|t| t.lossy.is_some())
        .map(|t| t.codec.name())
        .collect();
    for kind in ["mantissa(", ",abs=", ",rel="] {
        assert!(
            codecs.iter().any(|c| c.contains(kind)),
            "codec 2 and both modes of codec 3 are used: {codecs:?}"
        );
    }
    let by_tic = dir.path().join("by-tic");
    opened.extract(&by_tic, false, &NoProgress).unwrap();

    let by_reader = dir.path().join("by-reader");
    let o = run(
        py,
        &[
            &art,
            "--allow-unsigned".as_ref(),
            "--out".as_ref(),
            &by_reader,
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let restored = digests(&by_tic);
    assert_eq!(restored, digests(&by_reader));
    assert_ne!(
        restored["model.safetensors"],
        digests(&model)["model.safetensors"],
        "the lossy tensors changed the restored file"
    );
}

/// Single-byte changes of `section` (each byte flipped in its lowest, its
/// 0x20 (ASCII case) and its highest bit, set to 0x00 and to 0xff) and
/// truncations, labelled.
fn damaged(name: &str, section: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut cases = Vec::new();
    for i in 0..section.len() {
        let changes = [
            section[i] ^ 0x01,
            section[i] ^ 0x20,
            section[i] ^ 0x80,
            0x00,
            0xff,
        ];
        for v in changes.into_iter().filter(|&v| v != section[i]) {
            let mut s = section.to_vec();
            s[i] = v;
            cases.push((format!("{name}: byte {i} = {v:#04x}"), s));
        }
    }
    for n in (0..section.len()).step_by(7) {
        cases.push((format!("{name}: cut to {n} bytes"), section[..n].to_vec()));
    }
    cases
}

/// Has the independent reader judge every case (`flag`: its
/// `--check-headers` or `--check-recipients` mode) and asserts that its
/// verdicts and tic's (`tic_parse`) agree, and that a fair share of the
/// cases are rejections (digests and the like take any value, so not all
/// are), or the comparison would be vacuous.
fn same_verdicts(
    py: &str,
    flag: &str,
    cases: &[(String, Vec<u8>)],
    tic_parse: impl Fn(&[u8]) -> Result<(), String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let records = dir.path().join("sections.bin");
    let mut bytes = Vec::new();
    for (_, s) in cases {
        bytes.extend_from_slice(&(s.len() as u32).to_le_bytes());
        bytes.extend_from_slice(s);
    }
    std::fs::write(&records, bytes).unwrap();
    let o = run(py, &[flag.as_ref(), &records]);
    assert!(o.status.success(), "{}", text(&o));
    let verdicts: Vec<String> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(verdicts.len(), cases.len());
    let mut disagree = Vec::new();
    let mut rejected = 0;
    for ((what, s), verdict) in cases.iter().zip(&verdicts) {
        let tic = tic_parse(s);
        rejected += usize::from(tic.is_err());
        if tic.is_ok() != (verdict == "ok") {
            disagree.push(format!("{what}: tic {tic:?}, reader {verdict}"));
        }
    }
    assert!(
        disagree.is_empty(),
        "{flag}: {} of {} verdicts differ:\n{}",
        disagree.len(),
        cases.len(),
        disagree[..disagree.len().min(10)].join("\n")
    );
    assert!(
        rejected > cases.len() / 3 && rejected < cases.len(),
        "{flag}: {rejected} of {} rejected",
        cases.len()
    );
}

/// The rejection side, differentially: damaged headers of both vector
/// artifacts, and damaged recipients sections of the encrypted one, get the
/// same verdict from tic's parsers and from the independent reader's (MUST
/// rules of SPEC.md §4, §6, §7 and ENCRYPTION.md §5.4).
#[test]
fn independent_reader_and_tic_reject_the_same_damaged_sections() {
    let Some(py) = python() else { return };
    let vectors = repo_root().join("format-spec/test-vectors/artifacts");
    let signed = tic_tests::Parts::read(&vectors.join("small-signed.tic"));
    let encrypted = tic_tests::Parts::read(&vectors.join("small-encrypted.tic"));
    let mut headers = damaged("small-signed.tic header", &signed.header);
    headers.extend(damaged("small-encrypted.tic header", &encrypted.header));
    same_verdicts(py, "--check-headers", &headers, |s| {
        tic_format::Header::parse(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    let recipients = damaged("small-encrypted.tic recipients", &encrypted.recipients);
    same_verdicts(py, "--check-recipients", &recipients, |s| {
        tic_format::crypto::RecipientsSection::parse(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
}
