//! The recipients section: the file key wrapped to each recipient, in a
//! section outside the signature so recipients can change without re-signing.

use std::fmt;
use std::io::{Read, Write};
use std::iter;
use std::str::FromStr;

use base64::Engine;
use zeroize::{Zeroize, Zeroizing};

use super::keys::{fill_random, hkdf32};
use super::{aead_open, aead_seal, CryptoError, FileKey, PayloadKey, FILE_KEY_LEN, NONCE_LEN};
use super::{check_commitment, SALT_LEN, TAG_LEN};

/// Magic bytes at the start of a recipients section.
pub const RECIPIENTS_MAGIC: &[u8; 4] = b"TICR";
/// Entry kind: an age v1 file to one X25519 recipient.
pub const KIND_AGE: u8 = 1;
/// Entry kind: the file key sealed under a KEK derived from a raw 32-byte key.
pub const KIND_SYMMETRIC: u8 = 2;
/// Most entries a section may hold.
pub const MAX_RECIPIENTS: usize = 1024;
/// Longest label, in bytes.
pub const MAX_LABEL_LEN: usize = 256;
/// Longest entry body, in bytes.
pub const MAX_BODY_LEN: usize = 64 * 1024;
/// Longest recipients section, in bytes.
pub const MAX_SECTION_LEN: usize = 1024 * 1024;
/// HKDF `info` of the symmetric key-encryption key.
pub const SYMMETRIC_WRAP_INFO: &[u8] = b"tic v1 symmetric wrap";
/// HKDF `info` of the symmetric key id.
pub const SYMMETRIC_KEY_ID_INFO: &[u8] = b"tic v1 symmetric key id";
/// AEAD associated data of the symmetric wrap.
pub const SYMMETRIC_WRAP_AAD: &[u8] = b"tic v1 file key";
/// Length of a symmetric entry's body: nonce ‖ sealed file key ‖ tag.
pub const SYMMETRIC_BODY_LEN: usize = NONCE_LEN + FILE_KEY_LEN + TAG_LEN;
/// Prefix of a symmetric entry's label.
pub const SYMMETRIC_LABEL_PREFIX: &str = "sym:";

const SYMMETRIC_KEY_LEN: usize = 32;

/// A raw 32-byte symmetric key (e.g. a data key from a KMS) that can both
/// wrap and unwrap file keys. Zeroed on drop; `Debug` prints only its key id.
#[derive(Clone)]
pub struct SymmetricKey([u8; SYMMETRIC_KEY_LEN]);

impl SymmetricKey {
    /// Exactly 32 bytes.
    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let arr: [u8; SYMMETRIC_KEY_LEN] =
            b.try_into().map_err(|_| CryptoError::BadSymmetricKey {
                reason: format!("got {} bytes, need exactly 32", b.len()),
            })?;
        Ok(SymmetricKey(arr))
    }

    /// `"sym:"` followed by the lowercase hex of the first 8 bytes of
    /// HKDF-SHA256(salt = empty, IKM = key, info = "tic v1 symmetric key id").
    pub fn key_id_label(&self) -> String {
        let id = hkdf32(b"", &self.0, SYMMETRIC_KEY_ID_INFO);
        format!("{SYMMETRIC_LABEL_PREFIX}{}", hex(&id[..8]))
    }

    fn kek(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(hkdf32(b"", &self.0, SYMMETRIC_WRAP_INFO))
    }
}

impl Drop for SymmetricKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for SymmetricKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SymmetricKey({})", self.key_id_label())
    }
}

/// Someone to wrap the file key to.
#[derive(Clone)]
pub enum Recipient {
    /// An age X25519 recipient (`age1…`).
    Age(age::x25519::Recipient),
    /// A raw symmetric key.
    Symmetric(SymmetricKey),
}

impl Recipient {
    /// The label its entry carries: the `age1…` string, or `sym:<key id>`.
    pub fn label(&self) -> String {
        match self {
            Recipient::Age(r) => r.to_string(),
            Recipient::Symmetric(k) => k.key_id_label(),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({})", self.label())
    }
}

/// Something that can unwrap the file key.
#[derive(Clone)]
pub enum Identity {
    /// An age X25519 identity (`AGE-SECRET-KEY-1…`).
    Age(age::x25519::Identity),
    /// A raw symmetric key.
    Symmetric(SymmetricKey),
}

impl Identity {
    /// Its public name: the `age1…` recipient, or `sym:<key id>`. Safe to print.
    pub fn public_label(&self) -> String {
        match self {
            Identity::Age(i) => i.to_public().to_string(),
            Identity::Symmetric(k) => k.key_id_label(),
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.public_label())
    }
}

/// What an error about a would-be recipient may quote of it: the value
/// itself only when it looks public (an `age1…` or SSH key) or like a file
/// name (a `.` in it, which no secret key format has); otherwise nothing,
/// since a symmetric key (hex, base64) or a secret pasted in the wrong place
/// must not end up in a terminal or a CI log.
fn quotable(t: &str) -> String {
    let public = t.starts_with("age1") || is_ssh_public_key(t.as_bytes());
    let file_name = t.contains('.')
        && !t.contains(char::is_whitespace)
        && !t.to_ascii_uppercase().contains("SECRET")
        && !t.starts_with("-----");
    if public || file_name {
        t.chars().take(120).collect()
    } else {
        "(the value, not shown in case it is secret)".to_owned()
    }
}

/// How SSH public keys begin.
const SSH_PREFIXES: [&str; 5] = [
    "ssh-ed25519 ",
    "ssh-rsa ",
    "ecdsa-sha2-",
    "sk-ssh-",
    "sk-ecdsa-",
];

/// Whether `text` is an OpenSSH public key (`ssh-ed25519 AAAA...`), which
/// users give where an age recipient or a PEM key goes.
pub fn is_ssh_public_key(text: &[u8]) -> bool {
    SSH_PREFIXES.iter().any(|p| text.starts_with(p.as_bytes()))
}

/// Parses an `age1…` X25519 recipient (surrounding whitespace and a byte
/// order mark ignored). A rejected value is quoted in the error only when
/// it looks public (an age or SSH key) or like a file name; an age secret
/// key anywhere in it is named as such and never quoted.
pub fn parse_recipient(s: &str) -> Result<Recipient, CryptoError> {
    let t = s.trim_start_matches('\u{feff}').trim();
    let bad = |reason: &str| CryptoError::BadRecipient {
        input: quotable(t),
        reason: reason.to_owned(),
    };
    if t.to_ascii_uppercase().contains("AGE-SECRET-KEY-") {
        // Never echo a secret key back.
        return Err(CryptoError::BadRecipient {
            input: "AGE-SECRET-KEY-1…".to_owned(),
            reason: "this is an age identity (secret key), not a recipient; give its public \
                     key (age-keygen -y) instead"
                .to_owned(),
        });
    }
    if is_ssh_public_key(t.as_bytes()) {
        return Err(bad(
            "this is an SSH public key, and tic encrypts to age X25519 recipients only; \
             the recipient makes one with `age-keygen -o key.txt` and sends its \
             `# public key:` line",
        ));
    }
    if t.starts_with("-----BEGIN") {
        return Err(bad(
            "this is a PEM key (a signing key?), not an age recipient",
        ));
    }
    if !t.starts_with("age1") {
        if read_symmetric_key_file(t.as_bytes()).is_ok() {
            return Err(bad(
                "this looks like a 32-byte symmetric key, which is given as a file \
                 (--encrypt-key FILE), never on the command line",
            ));
        }
        return Err(bad("does not start with \"age1\""));
    }
    age::x25519::Recipient::from_str(t)
        .map(Recipient::Age)
        .map_err(|e| {
            if t[4..].contains('1') {
                // Bech32 data never contains '1': this is age1<plugin>1… or similar.
                bad("plugin and post-quantum age recipients are not supported, only X25519")
            } else {
                bad(e)
            }
        })
}

/// Parses a recipients file as `age -R` reads one: an `age1…` recipient
/// per line; blank lines and lines starting with `#` are ignored. At least
/// one recipient is required.
pub fn parse_recipients_file(text: &str) -> Result<Vec<Recipient>, CryptoError> {
    let mut recipients = Vec::new();
    for (n, line) in text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .enumerate()
    {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r = parse_recipient(line).map_err(|e| CryptoError::BadRecipientsFile {
            line: n + 1,
            reason: match e {
                CryptoError::BadRecipient { input, reason } => format!("{input:?}: {reason}"),
                other => other.to_string(),
            },
        })?;
        recipients.push(r);
    }
    if recipients.is_empty() {
        return Err(CryptoError::BadRecipientsFile {
            line: 0,
            reason: "it holds no recipient".to_owned(),
        });
    }
    Ok(recipients)
}

/// Parses age-keygen output: `AGE-SECRET-KEY-1…` lines; blank lines and
/// lines starting with `#` are ignored. At least one identity is required.
pub fn parse_identity_file(text: &str) -> Result<Vec<Identity>, CryptoError> {
    let mut ids = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| CryptoError::BadIdentityFile {
            line: n + 1,
            reason: reason.to_owned(),
        };
        if line.starts_with("AGE-PLUGIN-") {
            return Err(bad("age plugin identities are not supported, only X25519"));
        }
        if !line.starts_with("AGE-SECRET-KEY-1") {
            return Err(bad(
                "not an \"AGE-SECRET-KEY-1…\" line or a comment (passphrase-encrypted or SSH \
                 identity files are not supported)",
            ));
        }
        let id = age::x25519::Identity::from_str(line)
            .map_err(|e| bad(&format!("not a valid age X25519 secret key ({e})")))?;
        ids.push(Identity::Age(id));
    }
    if ids.is_empty() {
        return Err(CryptoError::BadIdentityFile {
            line: 0,
            reason: "no \"AGE-SECRET-KEY-1…\" line found".to_owned(),
        });
    }
    Ok(ids)
}

/// Reads a symmetric key file: exactly 32 raw bytes; or 64 hex characters;
/// or the standard base64 (padded or not) of 32 bytes. The text forms may be
/// followed by one newline (`\n` or `\r\n`).
pub fn read_symmetric_key_file(bytes: &[u8]) -> Result<SymmetricKey, CryptoError> {
    if bytes.len() == SYMMETRIC_KEY_LEN {
        return SymmetricKey::from_bytes(bytes);
    }
    let bad = |reason: String| CryptoError::BadSymmetricKey { reason };
    let text = bytes
        .strip_suffix(b"\r\n")
        .or_else(|| bytes.strip_suffix(b"\n"))
        .unwrap_or(bytes);
    if text.len() == 64 && text.iter().all(u8::is_ascii_hexdigit) {
        let mut key = Zeroizing::new([0u8; SYMMETRIC_KEY_LEN]);
        for (i, pair) in text.chunks_exact(2).enumerate() {
            key[i] = (hex_val(pair[0]) << 4) | hex_val(pair[1]);
        }
        return SymmetricKey::from_bytes(&key[..]);
    }
    if (text.len() == 43 || text.len() == 44)
        && text
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        let engine = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let decoded = Zeroizing::new(
            engine
                .decode(text)
                .map_err(|_| bad("looks like base64 but does not decode".to_owned()))?,
        );
        return SymmetricKey::from_bytes(&decoded).map_err(|_| {
            bad(format!(
                "base64 decodes to {} bytes, need 32",
                decoded.len()
            ))
        });
    }
    Err(bad(format!(
        "the file is {} bytes and is none of these forms",
        bytes.len()
    )))
}

fn hex_val(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c - b'A' + 10,
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// One wrapped copy of the file key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientEntry {
    /// [`KIND_AGE`] or [`KIND_SYMMETRIC`].
    pub kind: u8,
    /// `age1…` or `sym:<16 hex>`.
    pub label: String,
    /// The wrapped key (binary age file, or nonce ‖ sealed key).
    pub body: Vec<u8>,
}

/// The unsigned recipients section (see ENCRYPTION.md, "Recipients section").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientsSection {
    /// 1..=1024 entries with distinct labels.
    pub entries: Vec<RecipientEntry>,
}

/// A little-endian cursor that refuses to read past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], CryptoError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < n {
            return Err(CryptoError::Malformed {
                what: format!(
                    "recipients section: truncated in {what} at byte {} (need {n} bytes, {} left)",
                    self.pos,
                    rest.len()
                ),
            });
        }
        self.pos += n;
        Ok(&rest[..n])
    }
    fn u8(&mut self, what: &str) -> Result<u8, CryptoError> {
        Ok(self.take(1, what)?[0])
    }
    fn u16(&mut self, what: &str) -> Result<u16, CryptoError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self, what: &str) -> Result<u32, CryptoError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

fn malformed(what: String) -> CryptoError {
    CryptoError::Malformed { what }
}

fn check_entry(e: &RecipientEntry, i: usize) -> Result<(), CryptoError> {
    if e.label.len() > MAX_LABEL_LEN {
        return Err(CryptoError::TooLarge {
            what: "recipient label",
            len: e.label.len() as u64,
            max: MAX_LABEL_LEN as u64,
        });
    }
    if e.body.len() > MAX_BODY_LEN {
        return Err(CryptoError::TooLarge {
            what: "recipient entry body",
            len: e.body.len() as u64,
            max: MAX_BODY_LEN as u64,
        });
    }
    match e.kind {
        KIND_AGE => {
            if !e.label.starts_with("age1") || age::x25519::Recipient::from_str(&e.label).is_err() {
                return Err(malformed(format!(
                    "recipients entry {i}: kind 1 (age) label is not an age1… X25519 recipient"
                )));
            }
            if age::Decryptor::new_buffered(&e.body[..]).is_err() {
                return Err(malformed(format!(
                    "recipients entry {i} ({}): body is not a binary age v1 file",
                    e.label
                )));
            }
        }
        KIND_SYMMETRIC => {
            let id = e.label.strip_prefix(SYMMETRIC_LABEL_PREFIX);
            if !id.is_some_and(|h| {
                h.len() == 16 && h.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
            }) {
                return Err(malformed(format!(
                    "recipients entry {i}: kind 2 (symmetric) label is not \"sym:\" + 16 \
                     lowercase hex digits"
                )));
            }
            if e.body.len() != SYMMETRIC_BODY_LEN {
                return Err(malformed(format!(
                    "recipients entry {i} ({}): symmetric body is {} bytes, must be {}",
                    e.label,
                    e.body.len(),
                    SYMMETRIC_BODY_LEN
                )));
            }
        }
        k => {
            return Err(malformed(format!(
                "recipients entry {i}: unknown kind {k} (this reader knows 1 = age, 2 = symmetric)"
            )))
        }
    }
    Ok(())
}

/// Why one entry did not yield a key for one identity.
enum Miss {
    /// Not addressed to this identity.
    NotMine,
    /// Addressed to it (or unreadable by anyone), but broken.
    Corrupt(String),
}

impl RecipientsSection {
    /// Parses and fully validates a section. Every length is checked against
    /// the bytes present and the format's limits before anything is
    /// allocated; trailing bytes are an error.
    pub fn parse(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() > MAX_SECTION_LEN {
            return Err(CryptoError::TooLarge {
                what: "recipients section",
                len: bytes.len() as u64,
                max: MAX_SECTION_LEN as u64,
            });
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(4, "magic")? != RECIPIENTS_MAGIC {
            return Err(malformed(
                "recipients section: bad magic (expected \"TICR\")".to_owned(),
            ));
        }
        let count = usize::from(r.u16("entry count")?);
        if count == 0 {
            return Err(malformed(
                "recipients section: zero entries (at least one is required)".to_owned(),
            ));
        }
        if count > MAX_RECIPIENTS {
            return Err(CryptoError::TooManyRecipients {
                requested: count,
                max: MAX_RECIPIENTS,
            });
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let kind = r.u8("entry kind")?;
            let label_len = usize::from(r.u16("label length")?);
            if label_len > MAX_LABEL_LEN {
                return Err(CryptoError::TooLarge {
                    what: "recipient label",
                    len: label_len as u64,
                    max: MAX_LABEL_LEN as u64,
                });
            }
            let label = std::str::from_utf8(r.take(label_len, "label")?)
                .map_err(|_| malformed(format!("recipients entry {i}: label is not UTF-8")))?
                .to_owned();
            let body_len = r.u32("body length")? as usize;
            if body_len > MAX_BODY_LEN {
                return Err(CryptoError::TooLarge {
                    what: "recipient entry body",
                    len: body_len as u64,
                    max: MAX_BODY_LEN as u64,
                });
            }
            let body = r.take(body_len, "body")?.to_vec();
            entries.push(RecipientEntry { kind, label, body });
        }
        if r.pos != bytes.len() {
            return Err(malformed(format!(
                "recipients section: {} trailing bytes after the last entry",
                bytes.len() - r.pos
            )));
        }
        let section = RecipientsSection { entries };
        section.validate()?;
        Ok(section)
    }

    /// Checks everything [`parse`](Self::parse) checks: entry count, limits,
    /// labels, body shapes, distinct labels, total size.
    pub fn validate(&self) -> Result<(), CryptoError> {
        if self.entries.is_empty() {
            return Err(malformed(
                "recipients section: zero entries (at least one is required)".to_owned(),
            ));
        }
        if self.entries.len() > MAX_RECIPIENTS {
            return Err(CryptoError::TooManyRecipients {
                requested: self.entries.len(),
                max: MAX_RECIPIENTS,
            });
        }
        for (i, e) in self.entries.iter().enumerate() {
            check_entry(e, i)?;
            if self.entries[..i].iter().any(|p| p.label == e.label) {
                return Err(malformed(format!(
                    "recipients section: label {} appears twice",
                    e.label
                )));
            }
        }
        let len = self.encoded_len();
        if len > MAX_SECTION_LEN {
            return Err(CryptoError::TooLarge {
                what: "recipients section",
                len: len as u64,
                max: MAX_SECTION_LEN as u64,
            });
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        6 + self
            .entries
            .iter()
            .map(|e| 1 + 2 + e.label.len() + 4 + e.body.len())
            .sum::<usize>()
    }

    /// Encodes the section. The entries must satisfy [`validate`](Self::validate)
    /// (as those built by `parse`, `wrap`, `add` and `remove` do); a length
    /// that does not fit its field is written saturated, which `parse` rejects.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(RECIPIENTS_MAGIC);
        out.extend_from_slice(
            &u16::try_from(self.entries.len())
                .unwrap_or(u16::MAX)
                .to_le_bytes(),
        );
        for e in &self.entries {
            out.push(e.kind);
            out.extend_from_slice(
                &u16::try_from(e.label.len())
                    .unwrap_or(u16::MAX)
                    .to_le_bytes(),
            );
            out.extend_from_slice(e.label.as_bytes());
            out.extend_from_slice(
                &u32::try_from(e.body.len())
                    .unwrap_or(u32::MAX)
                    .to_le_bytes(),
            );
            out.extend_from_slice(&e.body);
        }
        out
    }

    /// Wraps `file_key` to each recipient, one entry each, in order.
    pub fn wrap(file_key: &FileKey, recipients: &[Recipient]) -> Result<Self, CryptoError> {
        if recipients.is_empty() {
            return Err(CryptoError::NoRecipients);
        }
        let mut s = RecipientsSection {
            entries: Vec::new(),
        };
        s.add(file_key, recipients)?;
        Ok(s)
    }

    /// Wraps `file_key` to more recipients. The caller must have checked
    /// `file_key` against the header commitment (it came from
    /// [`unwrap_checked`](Self::unwrap_checked) or from the writer). Nothing is
    /// added if any recipient is already present or a limit would be exceeded.
    pub fn add(&mut self, file_key: &FileKey, recipients: &[Recipient]) -> Result<(), CryptoError> {
        let total = self.entries.len() + recipients.len();
        if total > MAX_RECIPIENTS {
            return Err(CryptoError::TooManyRecipients {
                requested: total,
                max: MAX_RECIPIENTS,
            });
        }
        let mut new = Vec::with_capacity(recipients.len());
        for r in recipients {
            let label = r.label();
            if self.entries.iter().chain(&new).any(|e| e.label == label) {
                return Err(CryptoError::DuplicateRecipient { label });
            }
            new.push(wrap_one(file_key, r, label)?);
        }
        let mut next = self.clone();
        next.entries.extend(new);
        next.validate()?;
        *self = next;
        Ok(())
    }

    /// Removes the entry labelled `label`. Refuses to remove the last entry.
    pub fn remove(&mut self, label: &str) -> Result<(), CryptoError> {
        let Some(pos) = self.entries.iter().position(|e| e.label == label) else {
            return Err(CryptoError::RecipientNotFound {
                label: label.to_owned(),
                labels: self.labels(),
            });
        };
        if self.entries.len() == 1 {
            return Err(CryptoError::LastRecipient {
                label: label.to_owned(),
            });
        }
        self.entries.remove(pos);
        Ok(())
    }

    /// The entries' labels, in order.
    pub fn labels(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.label.clone()).collect()
    }

    /// Tries each identity on each entry of its kind and returns the first
    /// file key that opens. The result is NOT yet checked against the header:
    /// pass it to [`check_commitment`] before use (or call
    /// [`unwrap_checked`](Self::unwrap_checked)).
    pub fn unwrap(&self, identities: &[Identity]) -> Result<FileKey, CryptoError> {
        let mut corrupt = None;
        for id in identities {
            for e in &self.entries {
                match try_unwrap(e, id) {
                    Ok(k) => return Ok(k),
                    Err(Miss::NotMine) => {}
                    Err(Miss::Corrupt(reason)) => {
                        corrupt.get_or_insert((e.label.clone(), reason));
                    }
                }
            }
        }
        Err(self.no_match(identities, corrupt))
    }

    /// Like [`unwrap`](Self::unwrap), but also checks each opened key against
    /// the header's `salt` and `commitment`, going on to the next entry on a
    /// mismatch, and returns the file key with its payload key. Fails with
    /// [`CryptoError::CommitmentMismatch`] if keys opened but none matched.
    pub fn unwrap_checked(
        &self,
        identities: &[Identity],
        salt: &[u8; SALT_LEN],
        commitment: &[u8; 32],
    ) -> Result<(FileKey, PayloadKey), CryptoError> {
        let mut corrupt = None;
        let mut mismatched = false;
        for id in identities {
            for e in &self.entries {
                match try_unwrap(e, id) {
                    Ok(k) => match check_commitment(&k, salt, commitment) {
                        Ok(p) => return Ok((k, p)),
                        Err(_) => mismatched = true,
                    },
                    Err(Miss::NotMine) => {}
                    Err(Miss::Corrupt(reason)) => {
                        corrupt.get_or_insert((e.label.clone(), reason));
                    }
                }
            }
        }
        if mismatched {
            return Err(CryptoError::CommitmentMismatch);
        }
        Err(self.no_match(identities, corrupt))
    }

    fn no_match(&self, identities: &[Identity], corrupt: Option<(String, String)>) -> CryptoError {
        let identity = if identities.is_empty() {
            "(none given)".to_owned()
        } else {
            identities
                .iter()
                .map(Identity::public_label)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match corrupt {
            Some((label, reason)) => CryptoError::RecipientEntryCorrupt {
                label,
                reason,
                identity,
            },
            None => CryptoError::NoMatchingIdentity {
                count: self.entries.len(),
                labels: self.labels(),
                identity,
            },
        }
    }
}

fn wrap_one(
    file_key: &FileKey,
    r: &Recipient,
    label: String,
) -> Result<RecipientEntry, CryptoError> {
    match r {
        Recipient::Age(rec) => {
            let age_err = |e: &dyn fmt::Display| CryptoError::AgeEncrypt {
                reason: e.to_string(),
            };
            let enc = age::Encryptor::with_recipients(iter::once(rec as &dyn age::Recipient))
                .map_err(|e| age_err(&e))?;
            let mut body = Vec::new();
            let mut w = enc.wrap_output(&mut body).map_err(|e| age_err(&e))?;
            w.write_all(file_key.expose_secret())
                .map_err(|e| age_err(&e))?;
            w.finish().map_err(|e| age_err(&e))?;
            Ok(RecipientEntry {
                kind: KIND_AGE,
                label,
                body,
            })
        }
        Recipient::Symmetric(k) => {
            let mut nonce = [0u8; NONCE_LEN];
            fill_random(&mut nonce)?;
            let mut body = Vec::with_capacity(SYMMETRIC_BODY_LEN);
            body.extend_from_slice(&nonce);
            body.extend_from_slice(&aead_seal(
                &k.kek(),
                &nonce,
                SYMMETRIC_WRAP_AAD,
                file_key.expose_secret(),
            ));
            Ok(RecipientEntry {
                kind: KIND_SYMMETRIC,
                label,
                body,
            })
        }
    }
}

fn key_from_plaintext(pt: &[u8], label: &str) -> Result<FileKey, Miss> {
    let arr: [u8; FILE_KEY_LEN] = pt.try_into().map_err(|_| {
        Miss::Corrupt(format!(
            "entry {label} opened but holds {} bytes instead of a 32-byte file key",
            pt.len()
        ))
    })?;
    Ok(FileKey::from_bytes(arr))
}

fn try_unwrap(e: &RecipientEntry, id: &Identity) -> Result<FileKey, Miss> {
    match (e.kind, id) {
        (KIND_AGE, Identity::Age(ident)) => {
            let dec = age::Decryptor::new_buffered(&e.body[..])
                .map_err(|err| Miss::Corrupt(format!("not a valid age file: {err}")))?;
            let mut reader = match dec.decrypt(iter::once(ident as &dyn age::Identity)) {
                Ok(r) => r,
                Err(age::DecryptError::NoMatchingKeys) => return Err(Miss::NotMine),
                Err(err) => return Err(Miss::Corrupt(format!("age: {err}"))),
            };
            // One byte more than a file key, to notice a longer plaintext
            // without reading an unbounded one.
            let mut pt = Zeroizing::new(Vec::with_capacity(FILE_KEY_LEN + 1));
            (&mut reader)
                .take(FILE_KEY_LEN as u64 + 1)
                .read_to_end(&mut pt)
                .map_err(|err| Miss::Corrupt(format!("age payload: {err}")))?;
            key_from_plaintext(&pt, &e.label)
        }
        (KIND_SYMMETRIC, Identity::Symmetric(k)) => {
            if e.body.len() != SYMMETRIC_BODY_LEN {
                return Err(Miss::Corrupt(
                    "symmetric body has the wrong length".to_owned(),
                ));
            }
            let (nonce, sealed) = e.body.split_at(NONCE_LEN);
            let mut n = [0u8; NONCE_LEN];
            n.copy_from_slice(nonce);
            match aead_open(&k.kek(), &n, SYMMETRIC_WRAP_AAD, sealed) {
                Ok(pt) => key_from_plaintext(&Zeroizing::new(pt), &e.label),
                // The key id matches, so this entry was meant for this key.
                Err(_) if e.label == k.key_id_label() => Err(Miss::Corrupt(
                    "the key id matches but the wrapped key fails authentication".to_owned(),
                )),
                Err(_) => Err(Miss::NotMine),
            }
        }
        _ => Err(Miss::NotMine),
    }
}
