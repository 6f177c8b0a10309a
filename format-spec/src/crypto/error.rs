//! The one error type of the encryption constructions.

/// Everything that can go wrong in [`crate::crypto`].
///
/// Each message says what is wrong and what to do about it. No message ever
/// contains key material: identities are named by their public half (an
/// `age1…` recipient or a `sym:…` key id), key files only by their shape.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// The operating system's random number generator failed.
    #[error(
        "the system random number generator failed; no key, salt or nonce was produced \
         (check that the OS entropy source is available and retry)"
    )]
    Rng,

    /// A file key opened from the recipients section does not match the key
    /// commitment in the signed header.
    #[error(
        "the file key unwrapped from the recipients section does not match the key commitment \
         in the signed header: the recipients section was replaced or corrupted (it wraps a key \
         for a different artifact); restore the recipients section from a good copy of this \
         artifact, or ask its publisher to re-wrap it"
    )]
    CommitmentMismatch,

    /// A stored chunk failed Poly1305 authentication.
    #[error(
        "chunk {index} failed authentication (its Poly1305 tag does not match): the chunk was \
         corrupted or tampered with, or it is being opened with the wrong index, wrong \
         last-chunk flag or wrong key; its plaintext was not released"
    )]
    ChunkAuthFailed {
        /// 0-based global chunk index.
        index: u64,
    },

    /// A stored chunk is shorter than the 16-byte tag.
    #[error(
        "chunk {index} is {len} bytes long, shorter than the 16-byte Poly1305 tag every stored \
         chunk ends with: the chunk table or payload is truncated or corrupted"
    )]
    ChunkTooShort {
        /// 0-based global chunk index.
        index: u64,
        /// Its stored length.
        len: usize,
    },

    /// The raw AEAD primitive rejected a ciphertext.
    #[error(
        "ChaCha20-Poly1305 authentication failed: the ciphertext, tag, nonce, associated data \
         or key is wrong; nothing was decrypted"
    )]
    AeadAuthFailed,

    /// An output buffer has the wrong length.
    #[error(
        "output buffer is {got} bytes but must be exactly {expected} bytes (the stored length \
         minus the 16-byte tag)"
    )]
    OutputLength {
        /// Required length.
        expected: usize,
        /// Length supplied.
        got: usize,
    },

    /// HKDF-SHA256 was asked for more output than it can produce.
    #[error(
        "HKDF-SHA256 can produce at most {max} bytes (255 × 32) but {requested} were requested"
    )]
    HkdfOutputTooLong {
        /// Requested output length.
        requested: usize,
        /// 255 × 32.
        max: usize,
    },

    /// No identity opens any entry of the recipients section.
    #[error(
        "the artifact is encrypted to {count} recipient(s) ({labels}), none matches identity \
         {identity}; pass the identity file (or symmetric key) of one of those recipients, or \
         ask the publisher to add yours",
        labels = labels.join(", ")
    )]
    NoMatchingIdentity {
        /// Number of entries in the recipients section.
        count: usize,
        /// Their labels (public: `age1…` recipients, `sym:…` key ids).
        labels: Vec<String>,
        /// The identities tried, by their public half, comma-separated.
        identity: String,
    },

    /// An identity was meant for an entry but the entry does not open.
    #[error(
        "recipients entry {label} is corrupted ({reason}) and no other entry matches identity \
         {identity}; restore the recipients section from a good copy of this artifact"
    )]
    RecipientEntryCorrupt {
        /// The entry's label.
        label: String,
        /// What failed.
        reason: String,
        /// The identities tried.
        identity: String,
    },

    /// A recipient string could not be parsed.
    #[error(
        "cannot parse recipient {input:?}: {reason}; expected an age X25519 recipient \
         (\"age1…\", as printed by `age-keygen -y` or in the `# public key:` line of an \
         age-keygen identity file)"
    )]
    BadRecipient {
        /// The string given (public, safe to print).
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A recipients file could not be parsed.
    #[error(
        "cannot read recipients file (line {line}): {reason}; expected one \"age1…\" \
         recipient per line (blank lines and \"#\" comments allowed), as `age -R` reads"
    )]
    BadRecipientsFile {
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        /// Why it was rejected (never contains secret key text).
        reason: String,
    },

    /// An identity file could not be parsed.
    #[error(
        "cannot read identity file (line {line}): {reason}; expected age-keygen output: \
         \"AGE-SECRET-KEY-1…\" lines, blank lines and \"#\" comments"
    )]
    BadIdentityFile {
        /// 1-based line number (0 when the problem is the file as a whole).
        line: usize,
        /// Why it was rejected (never contains the key text).
        reason: String,
    },

    /// A symmetric key (file) has the wrong shape.
    #[error(
        "invalid symmetric key: {reason}; a symmetric key file must hold exactly 32 raw bytes, \
         or 64 hex characters, or the base64 of 32 bytes (44 characters with padding), \
         optionally followed by a newline"
    )]
    BadSymmetricKey {
        /// Why it was rejected (never contains key bytes).
        reason: String,
    },

    /// A structure is malformed.
    #[error("malformed {what}; the artifact is corrupted or was not written by a tic v1 writer")]
    Malformed {
        /// What is malformed, and how.
        what: String,
    },

    /// A length exceeds a hard limit of the format.
    #[error("{what} is {len} bytes, over the limit of {max} bytes; the artifact is corrupted or hostile")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// The length found or requested.
        len: u64,
        /// The limit.
        max: u64,
    },

    /// The recipients section would exceed its entry-count limit.
    #[error("a recipients section holds at most {max} entries; {requested} were requested")]
    TooManyRecipients {
        /// Entries that would result.
        requested: usize,
        /// 1024.
        max: usize,
    },

    /// Wrapping to no recipients at all.
    #[error(
        "no recipients given: an encrypted artifact needs at least one recipient (an age1… \
         recipient or a symmetric key)"
    )]
    NoRecipients,

    /// A recipient is given twice, or is already in the section.
    #[error("recipient {label} is given twice, or is already a recipient of the artifact; each may appear once (nothing was added)")]
    DuplicateRecipient {
        /// Its label.
        label: String,
    },

    /// `remove` was asked for a label that is not there.
    #[error(
        "no recipient {label} in the recipients section; it has: {labels}",
        labels = labels.join(", ")
    )]
    RecipientNotFound {
        /// The label asked for.
        label: String,
        /// The labels present.
        labels: Vec<String>,
    },

    /// `remove` would leave the section empty.
    #[error(
        "refusing to remove {label}: it is the only recipient and nobody could decrypt the \
         artifact afterwards; add another recipient first"
    )]
    LastRecipient {
        /// The label asked for.
        label: String,
    },

    /// The `age` library failed to encrypt a file key.
    #[error("age encryption of the file key failed: {reason}")]
    AgeEncrypt {
        /// age's error.
        reason: String,
    },
}
