//! Recipients section: wrapping, unwrapping, rewrap, parsing, key files.

use age::secrecy::ExposeSecret;

use crate::crypto::*;

fn age_pair() -> (Identity, Recipient) {
    let id = age::x25519::Identity::generate();
    let r = id.to_public();
    (Identity::Age(id), Recipient::Age(r))
}

fn sym(seed: u8) -> SymmetricKey {
    SymmetricKey::from_bytes(&[seed; 32]).unwrap()
}

fn fk() -> FileKey {
    random_file_key().unwrap()
}

#[test]
fn wrap_unwrap_one_age_recipient() {
    let key = fk();
    let (id, r) = age_pair();
    let s = RecipientsSection::wrap(&key, std::slice::from_ref(&r)).unwrap();
    assert_eq!(s.entries.len(), 1);
    assert_eq!(s.entries[0].kind, KIND_AGE);
    assert_eq!(s.entries[0].label, r.label());
    assert!(s.entries[0].label.starts_with("age1"));
    // A binary age v1 file, not armored.
    assert!(s.entries[0]
        .body
        .starts_with(b"age-encryption.org/v1\n-> X25519 "));
    let bytes = s.to_bytes();
    assert_eq!(&bytes[..4], b"TICR");
    assert_eq!(&bytes[4..6], &[1, 0]);
    let parsed = RecipientsSection::parse(&bytes).unwrap();
    assert_eq!(parsed, s);
    let got = parsed.unwrap(&[id]).unwrap();
    assert_eq!(got.expose_secret(), key.expose_secret());
}

#[test]
fn wrap_unwrap_three_age_recipients_and_a_symmetric_key() {
    let key = fk();
    let pairs: Vec<_> = (0..3).map(|_| age_pair()).collect();
    let k = sym(0x42);
    let mut rs: Vec<Recipient> = pairs.iter().map(|p| p.1.clone()).collect();
    rs.push(Recipient::Symmetric(k.clone()));
    let s = RecipientsSection::wrap(&key, &rs).unwrap();
    let s = RecipientsSection::parse(&s.to_bytes()).unwrap();
    assert_eq!(s.entries.len(), 4);
    assert_eq!(s.entries[3].kind, KIND_SYMMETRIC);
    assert_eq!(s.entries[3].label, k.key_id_label());
    assert_eq!(s.entries[3].body.len(), SYMMETRIC_BODY_LEN);
    for (id, _) in &pairs {
        let got = s.unwrap(std::slice::from_ref(id)).unwrap();
        assert_eq!(got.expose_secret(), key.expose_secret());
    }
    let got = s.unwrap(&[Identity::Symmetric(k)]).unwrap();
    assert_eq!(got.expose_secret(), key.expose_secret());

    // Wrong identities: the error counts and names the recipients.
    let (stranger, stranger_r) = age_pair();
    let err = s
        .unwrap(&[stranger, Identity::Symmetric(sym(1))])
        .unwrap_err();
    match &err {
        CryptoError::NoMatchingIdentity {
            count,
            labels,
            identity,
        } => {
            assert_eq!(*count, 4);
            assert_eq!(labels, &s.labels());
            assert!(identity.contains(&stranger_r.label()));
            assert!(identity.contains(&sym(1).key_id_label()));
        }
        e => panic!("{e:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("encrypted to 4 recipient"), "{msg}");
    assert!(msg.contains("none matches identity"), "{msg}");
    assert!(msg.contains(&pairs[0].1.label()), "{msg}");
}

#[test]
fn checked_unwrap_and_commitment() {
    let key = fk();
    let salt = random_salt().unwrap();
    let (payload, commitment) = derive(&key, &salt);
    let (id, r) = age_pair();
    let s = RecipientsSection::wrap(&key, &[r]).unwrap();
    let (k2, p2) = s.unwrap_checked(&[id], &salt, &commitment).unwrap();
    assert_eq!(k2.expose_secret(), key.expose_secret());
    assert_eq!(p2.expose_secret(), payload.expose_secret());
}

#[test]
fn a_section_for_another_file_key_fails_the_commitment() {
    let key = fk();
    let salt = random_salt().unwrap();
    let (_, commitment) = derive(&key, &salt);
    let (id, r) = age_pair();
    let k = sym(3);
    // An attacker (or an accident) puts in a section wrapping a different key.
    let other = fk();
    let swapped =
        RecipientsSection::wrap(&other, &[r.clone(), Recipient::Symmetric(k.clone())]).unwrap();
    for ident in [id.clone(), Identity::Symmetric(k.clone())] {
        let unwrapped = swapped.unwrap(std::slice::from_ref(&ident)).unwrap();
        let err = check_commitment(&unwrapped, &salt, &commitment).unwrap_err();
        assert!(matches!(err, CryptoError::CommitmentMismatch));
        assert!(err.to_string().contains("replaced or corrupted"));
        assert!(matches!(
            swapped.unwrap_checked(std::slice::from_ref(&ident), &salt, &commitment),
            Err(CryptoError::CommitmentMismatch)
        ));
    }
    // One bad entry does not stop a good one for the same identity set.
    let mut mixed = swapped.clone();
    mixed.remove(&k.key_id_label()).unwrap();
    let good = RecipientsSection::wrap(&key, &[Recipient::Symmetric(k.clone())]).unwrap();
    mixed.entries.extend(good.entries);
    mixed.validate().unwrap();
    let (got, _) = mixed
        .unwrap_checked(&[id, Identity::Symmetric(k)], &salt, &commitment)
        .unwrap();
    assert_eq!(got.expose_secret(), key.expose_secret());
}

#[test]
fn add_and_remove() {
    let key = fk();
    let (id1, r1) = age_pair();
    let (id2, r2) = age_pair();
    let k = sym(9);
    let mut s = RecipientsSection::wrap(&key, std::slice::from_ref(&r1)).unwrap();
    s.add(&key, &[r2.clone(), Recipient::Symmetric(k.clone())])
        .unwrap();
    assert_eq!(s.labels(), vec![r1.label(), r2.label(), k.key_id_label()]);
    s.unwrap(std::slice::from_ref(&id2)).unwrap();

    // Adding someone already there changes nothing.
    let before = s.clone();
    assert!(matches!(
        s.add(&key, &[age_pair().1, r2.clone()]),
        Err(CryptoError::DuplicateRecipient { .. })
    ));
    assert_eq!(s, before);

    s.remove(&r2.label()).unwrap();
    let s = RecipientsSection::parse(&s.to_bytes()).unwrap();
    let mut s = s;
    assert!(matches!(
        s.unwrap(std::slice::from_ref(&id2)),
        Err(CryptoError::NoMatchingIdentity { count: 2, .. })
    ));
    s.unwrap(&[id1]).unwrap();
    s.unwrap(&[Identity::Symmetric(k.clone())]).unwrap();

    match s.remove(&r2.label()) {
        Err(CryptoError::RecipientNotFound { labels, .. }) => assert_eq!(labels.len(), 2),
        r => panic!("{r:?}"),
    }
    s.remove(&k.key_id_label()).unwrap();
    assert!(matches!(
        s.remove(&r1.label()),
        Err(CryptoError::LastRecipient { .. })
    ));
    assert_eq!(s.entries.len(), 1);
    assert!(matches!(
        RecipientsSection::wrap(&key, &[]),
        Err(CryptoError::NoRecipients)
    ));
}

#[test]
fn corrupted_entries_are_reported() {
    let key = fk();
    let (id, r) = age_pair();
    let k = sym(5);
    let s = RecipientsSection::wrap(&key, &[r, Recipient::Symmetric(k.clone())]).unwrap();

    // Symmetric body tampered: the key id matches, so this is corruption.
    let mut t = s.clone();
    t.entries[1].body[20] ^= 1;
    let t = RecipientsSection::parse(&t.to_bytes()).unwrap();
    assert!(matches!(
        t.unwrap(&[Identity::Symmetric(k)]),
        Err(CryptoError::RecipientEntryCorrupt { .. })
    ));

    // age body tampered anywhere: rejected at parse, or fails to unwrap,
    // never yields a key other than the real one.
    let body_len = s.entries[0].body.len();
    for i in (0..body_len).step_by(7) {
        let mut t = s.clone();
        t.entries[0].body[i] ^= 0x04;
        if let Ok(p) = RecipientsSection::parse(&t.to_bytes()) {
            if let Ok(got) = p.unwrap(std::slice::from_ref(&id)) {
                panic!(
                    "tampered byte {i} still unwrapped (same key: {})",
                    got.expose_secret() == key.expose_secret()
                );
            }
        }
    }
}

fn section_bytes() -> Vec<u8> {
    let key = fk();
    RecipientsSection::wrap(&key, &[age_pair().1, Recipient::Symmetric(sym(1))])
        .unwrap()
        .to_bytes()
}

fn is_malformed_or_too_large(r: Result<RecipientsSection, CryptoError>) -> bool {
    matches!(
        r,
        Err(CryptoError::Malformed { .. }
            | CryptoError::TooLarge { .. }
            | CryptoError::TooManyRecipients { .. })
    )
}

#[test]
fn malformed_sections_are_rejected_without_panicking() {
    let good = section_bytes();
    RecipientsSection::parse(&good).unwrap();
    // Every truncation.
    for n in 0..good.len() {
        assert!(
            is_malformed_or_too_large(RecipientsSection::parse(&good[..n])),
            "prefix {n}"
        );
    }
    // Trailing bytes.
    let mut t = good.clone();
    t.push(0);
    assert!(is_malformed_or_too_large(RecipientsSection::parse(&t)));
    // Bad magic.
    let mut t = good.clone();
    t[0] = b'X';
    assert!(is_malformed_or_too_large(RecipientsSection::parse(&t)));
    // Zero and too many entries.
    assert!(is_malformed_or_too_large(RecipientsSection::parse(
        b"TICR\0\0"
    )));
    assert!(matches!(
        RecipientsSection::parse(b"TICR\x01\x04"),
        Err(CryptoError::TooManyRecipients {
            requested: 1025,
            ..
        })
    ));
    assert!(matches!(
        RecipientsSection::parse(b"TICR\xff\xff"),
        Err(CryptoError::TooManyRecipients { .. })
    ));
    // Huge label length: refused before reading or allocating it.
    assert!(matches!(
        RecipientsSection::parse(b"TICR\x01\x00\x01\xff\xffage1"),
        Err(CryptoError::TooLarge {
            what: "recipient label",
            len: 65535,
            ..
        })
    ));
    // Huge body length.
    let mut t = b"TICR\x01\x00\x02\x14\x00sym:0011223344556677".to_vec();
    t.extend_from_slice(&u32::MAX.to_le_bytes());
    assert!(matches!(
        RecipientsSection::parse(&t),
        Err(CryptoError::TooLarge {
            what: "recipient entry body",
            len: 4294967295,
            ..
        })
    ));
    // A body length within the limit but past the end of the input.
    let mut t = b"TICR\x01\x00\x02\x14\x00sym:0011223344556677".to_vec();
    t.extend_from_slice(&(64u32 * 1024).to_le_bytes());
    t.extend_from_slice(&[0; 60]);
    assert!(matches!(
        RecipientsSection::parse(&t),
        Err(CryptoError::Malformed { .. })
    ));
    // Section over 1 MiB.
    let big = vec![0u8; MAX_SECTION_LEN + 1];
    assert!(matches!(
        RecipientsSection::parse(&big),
        Err(CryptoError::TooLarge {
            what: "recipients section",
            ..
        })
    ));
    // Unknown kind, non-UTF-8 label, bad labels, wrong symmetric body length.
    let sym_entry = |kind: u8, label: &[u8], body_len: usize| {
        let mut t = b"TICR\x01\x00".to_vec();
        t.push(kind);
        t.extend_from_slice(&(label.len() as u16).to_le_bytes());
        t.extend_from_slice(label);
        t.extend_from_slice(&(body_len as u32).to_le_bytes());
        t.extend_from_slice(&vec![0; body_len]);
        RecipientsSection::parse(&t)
    };
    assert!(sym_entry(2, b"sym:0011223344556677", 60).is_ok());
    for (kind, label, len) in [
        (3u8, &b"sym:0011223344556677"[..], 60usize),
        (0, b"sym:0011223344556677", 60),
        (2, b"sym:0011223344556677", 59),
        (2, b"sym:00112233445566", 60),
        (2, b"sym:00112233445566AA", 60),
        (2, b"sym:\xff\xfe", 60),
        (1, b"sym:0011223344556677", 60),
        (1, b"age1notarecipient", 60),
    ] {
        assert!(is_malformed_or_too_large(sym_entry(kind, label, len)));
    }
    // An age entry whose body is not an age file.
    let (_, r) = age_pair();
    assert!(is_malformed_or_too_large(sym_entry(
        1,
        r.label().as_bytes(),
        200
    )));
    // Duplicate labels.
    let mut t = b"TICR\x02\x00".to_vec();
    for _ in 0..2 {
        t.extend_from_slice(b"\x02\x14\x00sym:0011223344556677\x3c\x00\x00\x00");
        t.extend_from_slice(&[0; 60]);
    }
    assert!(is_malformed_or_too_large(RecipientsSection::parse(&t)));
}

#[test]
fn fuzzish_mutations_never_panic() {
    let good = section_bytes();
    let mut state = 0x1234_5678_9abc_def0u64;
    for _ in 0..3000 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut t = good.clone();
        let pos = (state as usize) % t.len();
        t[pos] = (state >> 32) as u8;
        let cut = ((state >> 16) as usize) % (t.len() + 1);
        let _ = RecipientsSection::parse(&t[..cut]);
        let _ = RecipientsSection::parse(&t);
    }
}

#[test]
fn identity_files() {
    let id = age::x25519::Identity::generate();
    let secret = id.to_string();
    let public = id.to_public().to_string();
    let text = format!(
        "# created: 2026-01-01T00:00:00Z\n# public key: {public}\n{}\n",
        secret.expose_secret()
    );
    let ids = parse_identity_file(&text).unwrap();
    assert_eq!(ids.len(), 1);
    assert_eq!(ids[0].public_label(), public);
    // CRLF and several keys.
    let id2 = age::x25519::Identity::generate();
    let text2 = format!(
        "{}\r\n\r\n# second\r\n  {}  \r\n",
        secret.expose_secret(),
        id2.to_string().expose_secret()
    );
    assert_eq!(parse_identity_file(&text2).unwrap().len(), 2);
    // Debug shows the public half only.
    let d = format!("{:?}", ids[0]);
    assert!(d.contains(&public) && !d.contains("AGE-SECRET-KEY"), "{d}");

    // Errors: name the line, never echo the secret.
    // Change the last checksum character to a different one (whatever the
    // random key ended with), so the bech32 checksum must fail.
    let mut broken = secret.expose_secret().to_string();
    let last = broken.pop();
    broken.push(if last == Some('Q') { 'P' } else { 'Q' });
    assert_ne!(broken, secret.expose_secret());
    for (t, line) in [
        (format!("# c\n{broken}\n"), 2),
        ("# only comments\n\n".to_string(), 0),
        (format!("{public}\n"), 1),
        ("AGE-PLUGIN-YUBIKEY-1QQQ\n".to_string(), 1),
        ("-----BEGIN OPENSSH PRIVATE KEY-----\n".to_string(), 1),
    ] {
        match parse_identity_file(&t) {
            Err(e @ CryptoError::BadIdentityFile { line: l, .. }) => {
                assert_eq!(l, line, "{e}");
                let m = e.to_string();
                assert!(!m.contains(&broken[20..]), "{m}");
                assert!(m.contains("AGE-SECRET-KEY-1"), "{m}");
            }
            r => panic!("{r:?}"),
        }
    }
}

#[test]
fn recipients_strings() {
    let (_, r) = age_pair();
    let label = r.label();
    let parsed = parse_recipient(&format!(" {label}\n")).unwrap();
    assert_eq!(parsed.label(), label);
    for bad in [
        "",
        "age1",
        "age1xyz",
        "ssh-ed25519 AAAA",
        "age1yubikey1qqqq",
    ] {
        assert!(matches!(
            parse_recipient(bad),
            Err(CryptoError::BadRecipient { .. })
        ));
    }
    let id = age::x25519::Identity::generate();
    let sk = id.to_string();
    let e = parse_recipient(sk.expose_secret()).unwrap_err();
    assert!(!e.to_string().contains(&sk.expose_secret()[20..]), "{e}");
}

#[test]
fn symmetric_key_files() {
    let raw: Vec<u8> = (0u8..32).collect();
    let want = SymmetricKey::from_bytes(&raw).unwrap().key_id_label();
    let hex_lower = super::hex(&raw);
    let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for form in [
        raw.clone(),
        hex_lower.clone().into_bytes(),
        format!("{hex_lower}\n").into_bytes(),
        format!("{}\r\n", hex_lower.to_uppercase()).into_bytes(),
        b64.as_bytes().to_vec(),
        format!("{b64}\n").into_bytes(),
        b64.trim_end_matches('=').as_bytes().to_vec(),
    ] {
        assert_eq!(
            read_symmetric_key_file(&form).unwrap().key_id_label(),
            want,
            "{form:?}"
        );
    }
    for bad in [
        vec![0u8; 31],
        vec![0u8; 33],
        format!("{hex_lower}\n\n").into_bytes(),
        hex_lower.as_bytes()[..62].to_vec(),
        format!("{}zz", &hex_lower[..62]).into_bytes(),
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==".to_vec(), // 31 bytes
        b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd@h8=".to_vec(),
        Vec::new(),
    ] {
        match read_symmetric_key_file(&bad) {
            Err(e @ CryptoError::BadSymmetricKey { .. }) => {
                let m = e.to_string();
                assert!(
                    m.contains("32 raw bytes") && m.contains("64 hex") && m.contains("base64"),
                    "{m}"
                );
            }
            r => panic!("{bad:?}: {r:?}"),
        }
    }
    // Label shape and Debug.
    let k = SymmetricKey::from_bytes(&raw).unwrap();
    let l = k.key_id_label();
    assert!(l.starts_with("sym:") && l.len() == 20, "{l}");
    let mut id = [0u8; 8];
    hkdf_sha256(b"", &raw, b"tic v1 symmetric key id", &mut id).unwrap();
    assert_eq!(l, format!("sym:{}", super::hex(&id)));
    assert_eq!(format!("{k:?}"), format!("SymmetricKey({l})"));
    assert!(SymmetricKey::from_bytes(&[0; 16]).is_err());
}

#[test]
fn a_secret_key_given_as_recipient_is_never_quoted() {
    let (Identity::Age(id), _) = age_pair() else {
        unreachable!()
    };
    let secret = id.to_string().expose_secret().to_string();
    for s in [
        secret.clone(),
        secret.to_lowercase(),
        format!("  {secret}\n"),
        format!("\u{feff}{secret}"),
        format!("\"{secret}\""),
        format!("export KEY={secret}"),
    ] {
        let err = parse_recipient(&s).unwrap_err().to_string();
        assert!(err.contains("secret key"), "{err}");
        assert!(!err.to_uppercase().contains(&secret[16..]), "{err}");
    }
    // Other secrets are not quoted either: a symmetric key (hex, base64),
    // the start of a key cut short, a PEM private key.
    let hex = super::hex(&[0xa5; 32]);
    let b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    for (s, why) in [
        (hex.as_str(), "symmetric key"),
        (b64, "symmetric key"),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA",
            "PEM key",
        ),
        ("a3925b010e82a3925b010e82", "does not start with"),
    ] {
        let err = parse_recipient(s).unwrap_err().to_string();
        assert!(err.contains(why), "{err}");
        assert!(err.contains("not shown"), "{err}");
        assert!(!err.contains(&s[..12]), "{err}");
    }
    let err = parse_recipient(&secret[..28]).unwrap_err().to_string();
    assert!(
        err.contains("secret key") && !err.contains(&secret[16..28]),
        "{err}"
    );
    // What looks public or like a file name is quoted, to say what was wrong.
    let err = parse_recipient("recipients.txt").unwrap_err().to_string();
    assert!(err.contains("\"recipients.txt\""), "{err}");
    // A byte order mark in front of a recipient is ignored.
    let (_, r) = age_pair();
    assert_eq!(
        parse_recipient(&format!("\u{feff}{}", r.label()))
            .unwrap()
            .label(),
        r.label()
    );
    // Multi-byte text around byte 15 is just not a recipient (no panic).
    for s in ["AGE-SECRET-KEY\u{e9}1x", "age1é", "éééééééééé"] {
        assert!(matches!(
            parse_recipient(s),
            Err(CryptoError::BadRecipient { .. })
        ));
    }
}

#[test]
fn recipients_files_as_age_reads_them() {
    let (_, a) = age_pair();
    let (Identity::Age(id), b) = age_pair() else {
        unreachable!()
    };
    let text = format!("# team A\n{}\n\n  {}  \r\n# end\n", a.label(), b.label());
    let got: Vec<String> = parse_recipients_file(&text)
        .unwrap()
        .iter()
        .map(|r| r.label())
        .collect();
    assert_eq!(got, [a.label(), b.label()]);

    // The line at fault is named; a secret key on it is never quoted.
    let secret = id.to_string().expose_secret().to_string();
    let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPd3PfxiI user@host";
    for (text, line, want) in [
        (format!("{}\n{secret}\n", a.label()), 2, "secret key"),
        (format!("# x\n{ssh}\n"), 2, "SSH public key"),
        ("-----BEGIN PUBLIC KEY-----\n".to_string(), 1, "PEM key"),
        ("# only a comment\n\n".to_string(), 0, "holds no recipient"),
    ] {
        match parse_recipients_file(&text) {
            Err(e @ CryptoError::BadRecipientsFile { line: l, .. }) => {
                let m = e.to_string();
                assert_eq!(l, line, "{m}");
                assert!(m.contains(want) && m.contains("age -R"), "{m}");
                assert!(!m.to_uppercase().contains(&secret[16..]), "{m}");
            }
            r => panic!("{text:?}: {r:?}"),
        }
    }
    let e = parse_recipient(ssh).unwrap_err().to_string();
    assert!(e.contains("age-keygen -o key.txt"), "{e}");
}
