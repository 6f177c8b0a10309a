//! `tic`: the command line. Glue only: parse arguments, call the compiler
//! and runtime libraries, print, and map errors to exit codes:
//! 0 success (verified), 1 verification failed, 2 usage or I/O error,
//! 3 internal error; Ctrl-C during a command that writes output ends it by
//! that signal once it has removed its partial output (see `signals`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use tic_compiler::{AmendError, CompileError, CompileOptions};
use tic_runtime::{Artifact, ErrorKind, OpenOptions, RuntimeError, Trust};

/// `println!` that returns the error (a closed pipe) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout(), $($arg)*)
    };
}

mod report;
mod signals;

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "tic",
    version,
    about = "Compile, sign, encrypt and verify model weight artifacts"
)]
struct Cli {
    /// More log output (-v info, -vv debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, help_heading = GLOBAL)]
    verbose: u8,
    /// No progress bars.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    quiet: bool,
    /// Worker threads (default: all cores).
    #[arg(long, global = true, help_heading = GLOBAL)]
    threads: Option<usize>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Args)]
pub(crate) struct TrustArgs {
    /// Trusted Ed25519 public key (PEM), or a directory of *.pub keys; repeatable.
    #[arg(long = "trusted-key", value_name = "KEY")]
    pub(crate) trusted_keys: Vec<PathBuf>,
    /// Accept an unsigned artifact (or skip the signature check when no key is given).
    #[arg(long)]
    pub(crate) allow_unsigned: bool,
}

impl TrustArgs {
    /// The trust these flags give: the keys read, and whether unsigned
    /// artifacts pass.
    pub(crate) fn trust(&self) -> Result<Trust, Failure> {
        Ok(Trust {
            keys: tic_runtime::read_trusted_keys(&self.trusted_keys)?,
            allow_unsigned: self.allow_unsigned,
        })
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile a safetensors file or model directory into an artifact.
    Compile {
        /// A .safetensors file, or a model directory (shards, index, config,
        /// tokenizer and any other files, sub-folders included).
        input: PathBuf,
        /// The artifact to write (written beside it, then renamed into place).
        #[arg(short, long)]
        output: PathBuf,
        /// Sign with this Ed25519 private key (PKCS#8 PEM).
        #[arg(long, value_name = "KEY", conflicts_with = "unsigned")]
        sign: Option<PathBuf>,
        /// Leave the artifact unsigned on purpose (to sign later with an HSM or KMS).
        #[arg(long)]
        unsigned: bool,
        /// Encrypt to an age X25519 recipient (age1...), or to each in a
        /// file of them (one per line, as `age -R` reads); repeatable.
        #[arg(long = "encrypt-to", value_name = "RECIPIENT")]
        encrypt_to: Vec<String>,
        /// Encrypt to a raw 32-byte symmetric key file (raw, hex or base64); repeatable.
        #[arg(long = "encrypt-key", value_name = "FILE")]
        encrypt_key: Vec<PathBuf>,
        /// Original bytes per chunk.
        #[arg(long, default_value_t = tic_compiler::DEFAULT_CHUNK_BYTES)]
        chunk_size: u64,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
        /// Lossy coding with guaranteed error bounds, opt-in (default: every
        /// tensor lossless). RULES: `preset:safe`, or PATTERN=SETTING items
        /// separated by commas (first match wins), SETTING one of lossless,
        /// mantissa:K, abs:EB, rel:EB. See --help.
        #[arg(long, value_name = "RULES", long_help = lossy_long_help())]
        lossy: Option<String>,
        /// Leave out of a model directory the files and folders whose path
        /// (relative to it, `/`-separated) matches this glob, as
        /// `huggingface-cli download --exclude` does; repeatable.
        #[arg(
            long,
            value_name = "PATTERN",
            long_help = "Leave out of a model directory the files and folders whose path, relative to it and `/`-separated, \
                         matches this glob (`*` any characters, `/` included; `?` one; no `[...]` classes), as \
                         `huggingface-cli download --exclude` matches such patterns; repeatable. A matching folder is left out whole; a pattern ending in `/` matches folders only. \
                         For example, to ship only the safetensors weights of a full Hugging Face download: \
                         --exclude '*.bin' --exclude '*.h5' --exclude '*.ot' --exclude onnx/ --exclude openvino/"
        )]
        exclude: Vec<String>,
    },
    /// Restore the original files after verifying: byte for byte, or for
    /// lossy tensors within their recorded bounds.
    Decompress {
        /// The artifact to restore, or - to restore one as it streams in on
        /// standard input (`curl -sS URL | tic decompress - -o DIR ...`;
        /// the files are put in place only once the whole stream checked out).
        artifact: PathBuf,
        /// The directory to restore the files into: new or empty (a non-empty one needs --force).
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Identity to decrypt with: an age identity file or a symmetric key file.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// Replace the contents of a non-empty output directory (only once the restore is complete).
        #[arg(long)]
        force: bool,
    },
    /// Show what an artifact holds.
    Inspect {
        /// The artifact to show, or - to read one's front (header and
        /// signature, not the payload) from standard input
        /// (`curl -sS URL | tic inspect -`; tic stops reading there, so
        /// the sender may report a broken pipe).
        artifact: PathBuf,
        /// Check the signature against these keys too.
        #[arg(long = "trusted-key", value_name = "KEY")]
        trusted_keys: Vec<PathBuf>,
        /// Print the listing as JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Verify signature and every chunk's digest (no decryption key needed).
    Verify {
        /// The artifact to verify, or - to verify one as it streams in on
        /// standard input (`curl -sS URL | tic verify - ...`).
        artifact: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Fail if any tensor is lossy.
        #[arg(long)]
        require_lossless: bool,
        /// Fail unless the artifact restores exactly the files of this model
        /// (a directory or a .safetensors file): compared by size and SHA-256
        /// with the signed header, nothing decrypted.
        #[arg(long, value_name = "MODEL")]
        against: Option<PathBuf>,
        /// With --against: leave out of the model what compile's --exclude
        /// left out; repeatable.
        #[arg(long, value_name = "PATTERN", requires = "against")]
        exclude: Vec<String>,
        /// Print the report as JSON (also when verification fails).
        #[arg(long)]
        json: bool,
    },
    /// Load every tensor (or the named ones) onto a device, check each against
    /// its SHA-256, and report the time of each stage.
    Load {
        /// The artifact to load.
        artifact: PathBuf,
        #[command(flatten)]
        trust: TrustArgs,
        /// Identity to decrypt with: an age identity file or a symmetric key file.
        #[arg(long, value_name = "FILE")]
        identity: Vec<PathBuf>,
        /// cpu, cuda or cuda:N (falls back to the CPU, with a warning, when no GPU can be used).
        #[arg(long, default_value = "cuda:0")]
        device: String,
        /// Load only this tensor; repeatable.
        #[arg(long = "tensor", value_name = "NAME")]
        tensors: Vec<String>,
        /// Print the timings as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make an Ed25519 signing key pair: PREFIX.key (0600) and PREFIX.pub.
    Keygen {
        /// Where to write: PREFIX.key and PREFIX.pub.
        #[arg(short, long, value_name = "PREFIX")]
        output: PathBuf,
        /// Replace existing key files.
        #[arg(long)]
        force: bool,
    },
    /// Print the exact 62 bytes to sign with an external Ed25519 key (HSM, KMS).
    SigningMessage {
        /// The artifact to be signed.
        artifact: PathBuf,
        /// Write the raw bytes here instead of printing hex.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Replace the output file if it exists.
        #[arg(long, requires = "output")]
        force: bool,
    },
    /// Add or remove recipients of an encrypted artifact; the payload and the
    /// signature stay as they are.
    #[command(group(
        clap::ArgGroup::new("change")
            .required(true)
            .multiple(true)
            .args(["add", "add_key", "remove"])
    ))]
    Rewrap {
        /// The encrypted artifact.
        artifact: PathBuf,
        /// An identity that can open the artifact now (age identity or key file).
        #[arg(long, value_name = "FILE", required = true)]
        identity: Vec<PathBuf>,
        /// Add an age recipient (age1...), or each in a file of them (one per
        /// line, as `age -R` reads); repeatable.
        #[arg(long = "add", value_name = "RECIPIENT")]
        add: Vec<String>,
        /// Add a symmetric key file; repeatable.
        #[arg(long = "add-key", value_name = "FILE")]
        add_key: Vec<PathBuf>,
        /// Remove a recipient by its label (as `tic inspect` shows it); repeatable.
        #[arg(long = "remove", value_name = "LABEL")]
        remove: Vec<String>,
        /// The artifact to write; may be the input itself (replaced in place).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Attach an externally made Ed25519 signature (64 bytes: raw, hex or base64).
    AttachSignature {
        /// The artifact the signature was made for (see signing-message).
        artifact: PathBuf,
        /// The Ed25519 signature over the signing message: 64 raw bytes, or their hex or base64.
        #[arg(long, value_name = "FILE")]
        signature: PathBuf,
        /// The signer's public key (PEM); the signature must verify with it.
        #[arg(long, value_name = "KEY")]
        public_key: PathBuf,
        /// The signed artifact to write; may be the input itself (replaced in place).
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
}

/// The long help of `compile --lossy`, with the built-in presets.
fn lossy_long_help() -> String {
    let mut h = String::from(
        "Lossy coding with guaranteed error bounds, opt-in: without --lossy every tensor is \
         lossless. RULES is comma-separated items, each PATTERN=SETTING or preset:NAME (the \
         preset's rules, in place). The first rule whose glob PATTERN (`*` any characters, `?` \
         one) matches the whole tensor name decides; unmatched tensors stay lossless. Lossy \
         settings apply to BF16, F16 and F32 tensors only; others stay lossless.\n\n\
         SETTING:\n  \
         lossless      keep the tensor bit for bit\n  \
         mantissa:K    round to K mantissa bits, ties to even: pointwise relative error <= 2^-(K+1)\n  \
         abs:EB        absolute error <= EB (error-bounded quantization, SZ-style)\n  \
         rel:EB        pointwise relative error <= EB, 0 < EB < 1\n\n\
         Zeros, signs, infinities and NaNs are kept exactly. Each lossy tensor's bound and \
         measured errors are recorded in the artifact; `tic decompress` then restores values \
         within the bounds, not the original bytes, and `tic verify --require-lossless` fails.\n\n\
         Presets:\n",
    );
    for (name, rules, what) in tic_compiler::PRESETS {
        h.push_str(&format!("  preset:{name}\n      {what}\n      = {rules}\n"));
    }
    h.push_str("\nExample: --lossy '*LayerNorm*=lossless,*.bias=lossless,*embeddings*=lossless,*.weight=mantissa:4'");
    h
}

/// Exit codes, documented in the README.
const EXIT_VERIFY_FAILED: u8 = 1;
const EXIT_USAGE_OR_IO: u8 = 2;
const EXIT_INTERNAL: u8 = 3;
/// Open files a compile asks for: the format's most files, and some more.
const MAX_OPEN_FILES: u64 = tic_format::limits::MAX_FILES as u64 + 256;
/// 128 + SIGPIPE.
const EXIT_BROKEN_PIPE: u8 = 141;

/// An error with the exit code it maps to.
struct Failure {
    code: u8,
    err: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let err: anyhow::Error = e.into();
        Failure {
            code: exit_code(&err),
            err,
        }
    }
}

fn exit_code(err: &anyhow::Error) -> u8 {
    let from_kind = |k: ErrorKind| match k {
        ErrorKind::Verification => EXIT_VERIFY_FAILED,
        ErrorKind::Internal => EXIT_INTERNAL,
        _ => EXIT_USAGE_OR_IO,
    };
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<RuntimeError>() {
            return from_kind(e.kind());
        }
        if let Some(e) = cause.downcast_ref::<AmendError>() {
            return match e {
                AmendError::Runtime(r) => from_kind(r.kind()),
                AmendError::Sign(_) => EXIT_VERIFY_FAILED,
                _ => EXIT_USAGE_OR_IO,
            };
        }
        if let Some(CompileError::Internal(_)) = cause.downcast_ref::<CompileError>() {
            return EXIT_INTERNAL;
        }
        if cause.downcast_ref::<report::PolicyFailure>().is_some() {
            return EXIT_VERIFY_FAILED;
        }
    }
    EXIT_USAGE_OR_IO
}

/// Logs go to stderr: `-v` info, `-vv` debug, or the filter in `TIC_LOG`
/// (`debug`, `tic_runtime=debug,warn`, ...), which takes precedence.
fn init_logging(verbose: u8) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    let level = match verbose {
        0 => LevelFilter::WARN,
        1 => LevelFilter::INFO,
        _ => LevelFilter::DEBUG,
    };
    let mut bad = None;
    let filter = match std::env::var("TIC_LOG").map(|v| v.parse::<Targets>().map_err(|e| (v, e))) {
        Ok(Ok(t)) => t,
        Ok(Err(why)) => {
            bad = Some(why);
            Targets::new().with_default(level)
        }
        Err(_) => Targets::new().with_default(level),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(report::LogWriter)
        // No colour codes: every line is escaped whole (see `LogLine`).
        .with_ansi(false)
        .with_target(false);
    // Warnings alone read like tic's error lines; asked-for logs get times.
    let layer = if verbose == 0 && std::env::var_os("TIC_LOG").is_none() {
        layer
            .event_format(report::PlainLog)
            .with_filter(filter)
            .boxed()
    } else {
        layer.with_filter(filter).boxed()
    };
    tracing_subscriber::registry().with(layer).init();
    if let Some((v, e)) = bad {
        tracing::warn!(
            "TIC_LOG=`{v}` is not a log filter ({e}); logging at {level} instead. \
             Use a level (`debug`) or targets (`tic_runtime=debug,warn`)"
        );
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    if let Some(n) = cli.threads {
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
        {
            eprintln!("tic: cannot start {n} threads: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    }
    let result = run(cli);
    // A stop signal arrived while a command was writing and it stopped and
    // cleaned up: end as the signal would have. One that arrived after the
    // work was done and in place changes nothing: the command succeeded.
    if let (Some(sig), Err(f)) = (signals::received(), &result) {
        eprintln!("tic: {}", message(&f.err));
        signals::die_by(sig);
    }
    match result {
        Ok(code) => ExitCode::from(code),
        // The reader of our output went away (`tic inspect m.tic | head`):
        // nobody is left to tell. The code is the one a shell reports for a
        // tool stopped by SIGPIPE, never 0: the output (a verify report, say)
        // was not all delivered.
        Err(f) if is_broken_pipe(&f.err) => ExitCode::from(EXIT_BROKEN_PIPE),
        Err(f) => {
            eprintln!("tic: error: {}", message(&f.err));
            ExitCode::from(f.code)
        }
    }
}

/// Whether writing our output failed because its reader closed the pipe
/// (a bare I/O error: the libraries' I/O errors name their file).
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// The error and its causes, skipping a cause whose text the message
/// already holds (library errors include their source in their message),
/// made safe to print on a terminal: it may quote names read from an
/// untrusted artifact or safetensors file.
pub(crate) fn message(err: &anyhow::Error) -> String {
    let mut msg = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !msg.contains(&c) {
            msg.push_str(": ");
            msg.push_str(&c);
        }
    }
    report::printable(&msg).into_owned()
}

fn progress(quiet: bool) -> Box<dyn tic_runtime::Progress> {
    if quiet || !std::io::stderr().is_terminal() {
        Box::new(tic_runtime::NoProgress)
    } else {
        Box::new(report::Bar::default())
    }
}

/// [`progress`] for a command that writes output: from now on Ctrl-C,
/// SIGTERM and SIGHUP stop it cleanly (see [`signals`]).
fn stoppable_progress(quiet: bool) -> Result<Box<dyn tic_runtime::Progress>, Failure> {
    signals::install().context("installing the Ctrl-C handler")?;
    Ok(Box::new(signals::Stoppable(progress(quiet))))
}

pub(crate) fn open_with(
    path: &Path,
    trust: &TrustArgs,
    identities: &[PathBuf],
) -> Result<Artifact, Failure> {
    let trust = trust.trust()?;
    let ids = read_identities(identities)?;
    Ok(Artifact::open(
        path,
        &OpenOptions {
            trust,
            identities: ids,
        },
    )?)
}

/// `tic inspect --trusted-key` on an unsigned artifact: the runtime's hint
/// (`--allow-unsigned`) names a flag inspect does not have, so say what
/// inspect can do instead. Other failures pass through.
fn inspect_unsigned(f: Failure) -> Failure {
    match f.err.chain().find_map(|c| c.downcast_ref::<RuntimeError>()) {
        Some(RuntimeError::Unsigned { path }) => Failure {
            code: f.code,
            err: anyhow::anyhow!(
                "{}: the artifact is not signed, so --trusted-key has no signature to check; \
                 leave --trusted-key out to list it anyway",
                path.display()
            ),
        },
        _ => f,
    }
}

/// The line after a compile's summary that says what `--exclude` left out.
fn excluded_line(excluded: &[tic_compiler::Excluded]) -> String {
    let names: Vec<String> = excluded
        .iter()
        .map(|e| format!("{}{}", e.rel, if e.dir { "/" } else { "" }))
        .collect();
    let files: u64 = excluded.iter().map(|e| e.files).sum();
    let bytes: u64 = excluded.iter().map(|e| e.size).sum();
    format!(
        "left out by --exclude: {} ({files} file(s), {bytes} bytes)",
        report::first_names(&names, "")
    )
}

fn run(cli: Cli) -> Result<u8, Failure> {
    let quiet = cli.quiet;
    match cli.cmd {
        Cmd::Compile {
            input,
            output,
            sign,
            unsigned,
            encrypt_to,
            encrypt_key,
            chunk_size,
            force,
            lossy,
            exclude,
        } => {
            let signing_key = match &sign {
                Some(p) => Some(read_signing_key(p)?),
                None => None,
            };
            let recipients = read_recipients(&encrypt_to, &encrypt_key)?;
            if signing_key.is_none() && !unsigned {
                tracing::warn!("the artifact will be unsigned: pass --sign KEY to sign it, or --unsigned to say this is intended");
            }
            if chunk_size == 0 || chunk_size > tic_format::limits::MAX_CHUNK_ORIG_LEN / 2 {
                return Err(anyhow::anyhow!("--chunk-size must be between 1 and 32 MiB").into());
            }
            let lossy = match &lossy {
                Some(r) => Some(tic_compiler::LossyRules::parse(r)?),
                None => None,
            };
            let opts = CompileOptions {
                signing_key,
                recipients,
                chunk_bytes: chunk_size,
                force,
                lossy,
                exclude: tic_compiler::Exclude::parse_all(&exclude)?,
            };
            // Every input file stays open during a compile: take the open
            // files the system allows (the soft limit is often 1024, or 256
            // on macOS; the format allows 65536 files).
            if let Err(e) = rlimit::increase_nofile_limit(MAX_OPEN_FILES) {
                tracing::debug!("could not raise the open-files limit: {e}");
            }
            let bar = stoppable_progress(quiet)?;
            let start = std::time::Instant::now();
            let r = tic_compiler::compile(&input, &output, &opts, bar.as_ref())?;
            let secs = start.elapsed().as_secs_f64();
            outln!(
                "{}: {} files, {} tensors, {} -> {} bytes ({:.2}%), {:.1} MB/s{}{}",
                r.output.display(),
                r.files,
                r.tensors,
                r.original_bytes,
                r.artifact_bytes,
                100.0 * r.artifact_bytes as f64 / r.original_bytes.max(1) as f64,
                r.original_bytes as f64 / secs / 1e6,
                r.signer
                    .map(|s| format!(", signed by {s}"))
                    .unwrap_or_else(|| ", unsigned".into()),
                if r.recipients > 0 {
                    format!(", encrypted to {} recipient(s)", r.recipients)
                } else {
                    String::new()
                }
            )?;
            if !r.excluded.is_empty() {
                outln!("{}", excluded_line(&r.excluded))?;
            }
            if !r.lossy.is_empty() {
                let max_rel = r.lossy.iter().map(|l| l.2.max_rel).fold(0.0, f64::max);
                let max_abs = r.lossy.iter().map(|l| l.2.max_abs).fold(0.0, f64::max);
                let mean_rel =
                    r.lossy.iter().map(|l| l.2.mean_rel).sum::<f64>() / r.lossy.len() as f64;
                outln!(
                    "lossy: {} tensor(s), pointwise relative error mean {:.3}% (average over tensors), max {:.3}%, max absolute error {:.3e}; `tic inspect` lists them",
                    r.lossy.len(),
                    100.0 * mean_rel,
                    100.0 * max_rel,
                    max_abs
                )?;
            }
            Ok(0)
        }
        Cmd::Decompress {
            artifact,
            output,
            trust,
            identity,
            force,
        } => {
            let start = std::time::Instant::now();
            let r = if artifact == Path::new("-") {
                report::stdin_keys_check("decompress", "--trusted-key", &trust.trusted_keys)?;
                report::stdin_keys_check("decompress", "--identity", &identity)?;
                let opts = OpenOptions {
                    trust: trust.trust()?,
                    identities: read_identities(&identity)?,
                };
                let bar = stoppable_progress(quiet)?;
                report::decompress_stdin(&opts, &output, force, bar.as_ref())?
            } else {
                let art = open_with(&artifact, &trust, &identity)?;
                let bar = stoppable_progress(quiet)?;
                art.extract(&output, force, bar.as_ref())?
            };
            let secs = start.elapsed().as_secs_f64();
            outln!(
                "restored {} files ({} bytes) into {}, {:.1} MB/s",
                r.files.len(),
                r.bytes,
                output.display(),
                r.bytes as f64 / secs / 1e6
            )?;
            if !r.lossy_tensors.is_empty() {
                let lossy: Vec<&str> = r.lossy_tensors.iter().map(String::as_str).collect();
                outln!(
                    "note: the output is not byte-identical to the original: {} tensor(s) were lossy-coded: {}",
                    lossy.len(),
                    report::some_names(&lossy)
                )?;
            }
            Ok(0)
        }
        Cmd::Inspect {
            artifact,
            trusted_keys,
            json,
        } => {
            let trust = TrustArgs {
                allow_unsigned: trusted_keys.is_empty(),
                trusted_keys,
            };
            if artifact == Path::new("-") {
                report::stdin_keys_check("inspect", "--trusted-key", &trust.trusted_keys)?;
                return report::inspect_stdin(trust.trust()?, json).map_err(inspect_unsigned);
            }
            let art = open_with(&artifact, &trust, &[]).map_err(inspect_unsigned)?;
            let rep = report::Report::new(art.head());
            if json {
                outln!("{}", serde_json::to_string_pretty(&rep.inspect_json())?)?;
            } else {
                rep.print_inspect(&mut std::io::stdout().lock())?;
            }
            Ok(0)
        }
        Cmd::Verify {
            artifact,
            trust,
            require_lossless,
            against,
            exclude,
            json,
        } => {
            let exclude = tic_compiler::Exclude::parse_all(&exclude)?;
            report::verify(
                &artifact,
                &trust.trusted_keys,
                trust.allow_unsigned,
                require_lossless,
                against.as_deref(),
                &exclude,
                json,
                quiet,
            )
        }
        Cmd::Load {
            artifact,
            trust,
            identity,
            device,
            tensors,
            json,
        } => report::load(&artifact, &trust, &identity, &device, &tensors, json),
        Cmd::Keygen { output, force } => {
            let named_dir = output.as_os_str().as_encoded_bytes().ends_with(b"/")
                || output.file_name().is_none()
                || output.is_dir();
            if named_dir {
                return Err(anyhow::anyhow!(
                    "{} names a directory; give the keys' name, such as {}",
                    output.display(),
                    output.join("signing").display()
                )
                .into());
            }
            let (priv_path, pub_path) = key_paths(&output);
            tic_compiler::output_dir(&priv_path)?;
            // Both checked before either is written: never half a pair.
            check_new(&priv_path, force)?;
            check_new(&pub_path, force)?;
            let key = tic_format::sign::generate_key()?;
            let public = tic_format::sign::public_key_pem(&key.verifying_key())?;
            write_file(
                &priv_path,
                tic_format::sign::private_key_pem(&key)?.as_bytes(),
                0o600,
            )?;
            write_file(&pub_path, public.as_bytes(), 0o644)?;
            outln!(
                "wrote {} and {} (key {})",
                priv_path.display(),
                pub_path.display(),
                tic_format::sign::fingerprint(&key.verifying_key())
            )?;
            Ok(0)
        }
        Cmd::SigningMessage {
            artifact,
            output,
            force,
        } => {
            let m = tic_compiler::signing_message(&artifact)?;
            match output {
                Some(p) => {
                    check_new(&p, force)?;
                    write_file(&p, &m, 0o644)?
                }
                None => outln!("{}", tic_format::hex(&m))?,
            }
            Ok(0)
        }
        Cmd::Rewrap {
            artifact,
            identity,
            add,
            add_key,
            remove,
            output,
            force,
        } => {
            let ids = read_identities(&identity)?;
            let add = read_recipients(&add, &add_key)?;
            let bar = stoppable_progress(quiet)?;
            let labels =
                tic_compiler::rewrap(&artifact, &ids, &add, &remove, &output, force, bar.as_ref())?;
            if !remove.is_empty() {
                tracing::warn!(
                    "removing a recipient does not take back what it already had: a copy of the \
                     old artifact still opens with its identity; to cut it off, compile the model \
                     again (a new file key) and ship only the new artifact"
                );
            }
            outln!(
                "{}: encrypted to {} recipient(s): {}",
                output.display(),
                labels.len(),
                labels.join(", ")
            )?;
            Ok(0)
        }
        Cmd::AttachSignature {
            artifact,
            signature,
            public_key,
            output,
            force,
        } => {
            let sig = read_signature(&signature)?;
            let key = tic_runtime::read_public_key(&public_key)?;
            let bar = stoppable_progress(quiet)?;
            let fp = tic_compiler::attach_signature(
                &artifact,
                &sig,
                &key,
                &output,
                force,
                bar.as_ref(),
            )?;
            outln!("{}: signed by {fp}", output.display())?;
            Ok(0)
        }
    }
}

/// The recipients of `--encrypt-to`/`--add` (age) and `--encrypt-key`/
/// `--add-key` (symmetric key files). A recipient's error quotes it itself,
/// and never a secret key pasted in by mistake: it is not echoed here.
fn read_recipients(
    age: &[String],
    key_files: &[PathBuf],
) -> anyhow::Result<Vec<tic_format::crypto::Recipient>> {
    let mut recipients = Vec::new();
    for r in age {
        // A file of recipients, as `age -R` reads (a pipe such as
        // /dev/stdin or <(...) too): a recipient itself (`age1…`) never
        // names a file.
        let path = Path::new(r);
        if !r.trim_start().starts_with("age1") && path.exists() && !path.is_dir() {
            recipients.extend(tic_runtime::read_recipients_file(path)?);
        } else {
            recipients.push(tic_format::crypto::parse_recipient(r)?);
        }
    }
    for p in key_files {
        let key = tic_runtime::read_symmetric_key(p)?;
        warn_if_exposed(p, "symmetric key");
        recipients.push(tic_format::crypto::Recipient::Symmetric(key));
    }
    Ok(recipients)
}

/// Reads an externally made signature file (raw, hex or base64).
fn read_signature(path: &Path) -> anyhow::Result<[u8; 64]> {
    // Capped as every key file is, from a file or a pipe alike.
    let bytes = tic_runtime::read_key_file(path)?;
    anyhow::ensure!(
        bytes.len() <= 4096,
        "{}: over 4096 bytes, too large to be a signature file (64 raw bytes, hex or base64)",
        path.display()
    );
    tic_format::sign::read_signature_file(&bytes).with_context(|| path.display().to_string())
}

/// The decryption identities in `paths` (age identity or symmetric key files).
fn read_identities(paths: &[PathBuf]) -> Result<Vec<tic_format::crypto::Identity>, Failure> {
    let mut ids = Vec::new();
    for p in paths {
        ids.extend(tic_runtime::read_identities(p)?);
        warn_if_exposed(p, "identity");
    }
    Ok(ids)
}

/// Warns, as ssh does, when a secret key file can be read or written by
/// others than its owner: whoever else can read it can sign or decrypt.
fn warn_if_exposed(path: &Path, what: &str) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if meta.is_file() && mode & 0o077 != 0 {
            tracing::warn!(
                "{}: this {what} file is open to other users (mode {mode:03o}); \
                 `chmod 600 {}` so that only its owner can read it",
                path.display(),
                path.display()
            );
        }
    }
}

fn read_signing_key(path: &Path) -> anyhow::Result<ed25519_dalek::SigningKey> {
    let bytes = tic_runtime::read_key_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| {
        anyhow::anyhow!(
            "{}: not text, so not a PEM signing key; make one with `tic keygen` or \
             `openssl genpkey -algorithm ed25519`",
            path.display()
        )
    })?;
    let key = tic_format::sign::parse_private_key_pem(&text)
        .with_context(|| path.display().to_string())?;
    // Only a file that is a private key is worth the warning.
    warn_if_exposed(path, "signing key");
    Ok(key)
}

/// `keygen -o PREFIX`'s files: PREFIX.key and PREFIX.pub (a PREFIX that
/// already ends in .key or .pub loses it first; other dots are kept).
fn key_paths(prefix: &Path) -> (PathBuf, PathBuf) {
    let base = match prefix.extension().and_then(|e| e.to_str()) {
        Some("key" | "pub") => prefix.with_extension(""),
        _ => prefix.to_path_buf(),
    };
    let with = |ext: &str| {
        let mut name = base.clone().into_os_string();
        name.push(".");
        name.push(ext);
        PathBuf::from(name)
    };
    (with("key"), with("pub"))
}

/// Writes a private key readable by its owner only, atomically.
/// Refuses to write `path` when something is there, unless `force` (and
/// never over a directory). A symbolic link counts as there: it is
/// replaced, never written through.
fn check_new(path: &Path, force: bool) -> anyhow::Result<()> {
    match path.symlink_metadata() {
        Ok(m) if m.is_dir() => Err(anyhow::anyhow!(
            "{} is a directory; give a file name",
            path.display()
        )),
        Ok(_) if !force => Err(anyhow::anyhow!(
            "{} already exists; pass --force to replace it",
            path.display()
        )),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` with permissions `mode`: into a temporary file
/// beside it (`.tic-key-*`), then renamed into place, so that a crash
/// leaves the old file or the new one, never half of one.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = tic_compiler::output_dir(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tic-key-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(&dir)
        .with_context(|| format!("creating a file in {}", dir.display()))?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every argument of every command says what it is for in `--help`, and
    /// clap's own consistency checks pass.
    #[test]
    fn every_argument_has_help() {
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        for cmd in cli.get_subcommands().chain([&cli]) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{} {id}", cmd.get_name()));
                }
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
