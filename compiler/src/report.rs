//! What `tic inspect` and `tic verify` print, for people and for pipelines
//! (`--json`; the fields are documented in the README).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tic_format::{FileKind, Header, TensorEntry};
use tic_runtime::{Artifact, Head, OpenOptions, SignatureStatus, Trust};

/// A policy of `tic verify` that an artifact whose signature and chunks
/// checked out does not meet (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum PolicyFailure {
    /// `--require-lossless` found lossy tensors.
    #[error("{count} tensor(s) are lossy but --require-lossless was given: {names}")]
    Lossy { count: usize, names: String },
    /// `--against` found the artifact's files and the model's differ.
    #[error("the artifact does not hold the model at {}: {what}", model.display())]
    NotTheModel { model: PathBuf, what: String },
}

/// What `--against` found different, for the error message.
fn differences(c: &tic_compiler::Comparison) -> String {
    let mut parts = Vec::new();
    if !c.different.is_empty() {
        let names: Vec<String> = c
            .different
            .iter()
            .map(|d| {
                let mut s = d.path.clone();
                if d.artifact_size != d.model_size {
                    s.push_str(&format!(
                        " ({} bytes in the artifact, {} in the model)",
                        d.artifact_size, d.model_size
                    ));
                }
                if d.lossy {
                    s.push_str(
                        " (holds lossy tensors, so the artifact restores it changed, by design)",
                    );
                }
                s
            })
            .collect();
        parts.push(format!(
            "{} file(s) differ: {}",
            names.len(),
            first_names(&names, "")
        ));
    }
    if !c.missing.is_empty() {
        parts.push(format!(
            "{} file(s) are not in the model: {}",
            c.missing.len(),
            first_names(&c.missing, "")
        ));
    }
    if !c.extra.is_empty() {
        parts.push(format!(
            "{} file(s) of the model are not in the artifact: {} (compiled with --exclude? give the same patterns)",
            c.extra.len(),
            first_names(&c.extra, "")
        ));
    }
    parts.join("; ")
}

/// `s` made safe to print on a terminal: control characters (ESC, newline,
/// carriage return, ...) and the characters that reorder bidirectional text
/// are written as Rust escapes (`\u{1b}`), so that a name read from an
/// untrusted artifact can neither move the cursor, recolour or hide what is
/// shown, nor fake a line of output. Other text, non-ASCII letters included,
/// is kept as it is.
pub(crate) fn printable(s: &str) -> Cow<'_, str> {
    let bad = |c: char| {
        c.is_control()
            || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if bad(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The first five of `names`, made printable and joined, then how many
/// more there are followed by `more` (a hint where the rest are listed).
pub(crate) fn first_names<S: AsRef<str>>(names: &[S], more: &str) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| printable(n.as_ref()).into_owned())
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more{more}", names.len() - SHOWN));
    }
    s
}

/// [`first_names`] of tensors: a large model can have thousands of lossy
/// tensors, and `tic inspect` lists them all.
pub(crate) fn some_names<S: AsRef<str>>(names: &[S]) -> String {
    first_names(names, " (`tic inspect` lists them)")
}

/// A progress bar on stderr.
pub struct Bar(indicatif::ProgressBar);

/// The bar being drawn, if any: log lines are written around it.
static DRAWN: std::sync::Mutex<Option<indicatif::ProgressBar>> = std::sync::Mutex::new(None);

/// Where log lines go: stderr, with the bar being drawn (if any) taken
/// off the screen while the line is written and drawn again below it, so
/// that `-v` on a terminal leaves neither torn bars nor torn lines.
pub struct LogWriter;

/// The log line format when only warnings are shown (no `-v`, no
/// `TIC_LOG`): `tic: warning: MESSAGE`, like tic's error lines, without a
/// timestamp.
pub struct PlainLog;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainLog
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            tracing::Level::DEBUG => "debug",
            tracing::Level::TRACE => "trace",
        };
        write!(w, "tic: {level}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// One log event, written out whole when dropped.
pub struct LogLine(Vec<u8>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogLine;
    fn make_writer(&'a self) -> LogLine {
        LogLine(Vec::new())
    }
}

impl Write for LogLine {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LogLine {
    fn drop(&mut self) {
        // A log line can quote names from an artifact or a model directory
        // (a file called "x\n tic: verified", a bidi override): escaped as
        // everything tic prints is, so one event is one honest line.
        let text = String::from_utf8_lossy(&self.0);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let line = format!("{}\n", printable(body));
        // Nowhere to report a failed log write: it is dropped like eprintln's.
        let write = || drop(std::io::stderr().write_all(line.as_bytes()));
        let bar = DRAWN.lock().ok().and_then(|b| b.clone());
        match bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }
}

impl Drop for Bar {
    /// An operation that failed or was interrupted did not finish its bar:
    /// it is taken off the screen before the error is printed.
    fn drop(&mut self) {
        if !self.0.is_finished() {
            tic_runtime::Progress::finish(self);
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Bar(indicatif::ProgressBar::hidden())
    }
}

impl tic_runtime::Progress for Bar {
    fn start(&self, what: &str, total: u64) {
        // Styled before it is shown: the first frame used to be drawn in
        // indicatif's default style.
        self.0.set_style(
            indicatif::ProgressStyle::with_template(
                "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.0.set_length(total);
        self.0.set_position(0);
        self.0.set_message(what.to_string());
        self.0
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        if let Ok(mut d) = DRAWN.lock() {
            *d = Some(self.0.clone());
        }
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }
    fn finish(&self) {
        if let Ok(mut d) = DRAWN.lock() {
            *d = None;
        }
        self.0.finish_and_clear();
    }
}

pub struct Report<'a> {
    art: &'a Head,
}

fn stored_len(h: &Header, t: &TensorEntry) -> u64 {
    h.tensor_chunks(t).map(|(_, c)| c.stored_len).sum()
}

fn signature_json(s: &SignatureStatus) -> Value {
    match s {
        SignatureStatus::Verified { fingerprint } => {
            json!({"status": "verified", "signer": fingerprint})
        }
        SignatureStatus::NotChecked { fingerprint } => {
            json!({"status": "not_checked", "signer": fingerprint})
        }
        SignatureStatus::Unsigned => json!({"status": "unsigned", "signer": null}),
    }
}

fn signature_text(s: &SignatureStatus) -> String {
    match s {
        SignatureStatus::Verified { fingerprint } => {
            format!("verified, signed by {fingerprint} (trusted)")
        }
        SignatureStatus::NotChecked { fingerprint } => {
            format!("signed by {fingerprint} (not checked: pass --trusted-key to verify)")
        }
        SignatureStatus::Unsigned => "unsigned".into(),
    }
}

fn lossy_json(t: &TensorEntry) -> Value {
    let l = t.lossy.as_ref().expect("lossy tensor");
    json!({
        "name": t.name, "codec": t.codec.name(),
        "bound_kind": match l.bound_kind { 1 => "relative", 2 => "absolute", _ => "unknown" },
        "bound": l.bound, "max_abs_error": l.max_abs, "max_rel_error": l.max_rel,
        "mean_rel_error": l.mean_rel, "rms_rel_error": l.rms_rel,
    })
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

impl<'a> Report<'a> {
    pub fn new(art: &'a Head) -> Self {
        Report { art }
    }

    fn codecs(&self) -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for t in &self.art.header().tensors {
            *m.entry(t.codec.name()).or_insert(0) += 1;
        }
        m
    }

    fn encryption_json(&self) -> Value {
        match self.art.recipients() {
            None => json!({"encrypted": false, "recipients": 0, "labels": []}),
            Some(r) => json!({
                "encrypted": true,
                "recipients": r.entries.len(),
                "labels": r.entries.iter().map(|e| e.label.clone()).collect::<Vec<_>>(),
            }),
        }
    }

    fn encryption_text(&self) -> String {
        match self.art.recipients() {
            None => "none".into(),
            Some(r) => format!(
                "ChaCha20-Poly1305, encrypted to {} recipient(s): {}",
                r.entries.len(),
                r.entries
                    .iter()
                    .map(|e| e.label.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// The fields `inspect --json` and `verify --json` share.
    fn summary_json(&self) -> Value {
        let h = self.art.header();
        let p = self.art.preamble();
        let original: u64 = h.files.iter().map(|f| f.size).sum();
        let lossy: Vec<Value> = h
            .tensors
            .iter()
            .filter(|t| t.lossy.is_some())
            .map(lossy_json)
            .collect();
        json!({
            "artifact": self.art.path().display().to_string(),
            "format_version": format!("{}.{}", p.major, p.minor),
            "creator": h.creator,
            "signature": signature_json(self.art.signature()),
            "encryption": self.encryption_json(),
            "files": h.files.len(),
            "tensors": h.tensors.iter().filter(|t| !t.name.is_empty()).count(),
            "chunks": h.chunks.len(),
            "original_bytes": original,
            // Opening checked it against the file's (or stream's) length.
            "artifact_bytes": p.total_len().unwrap_or(0),
            "codecs": self.codecs(),
            "lossless": h.all_lossless(),
            "lossy_tensors": lossy,
        })
    }

    pub fn inspect_json(&self) -> Value {
        let h = self.art.header();
        let mut v = self.summary_json();
        v["file_list"] = h
            .files
            .iter()
            .map(|f| {
                json!({
                    "path": f.path,
                    "kind": match f.kind { FileKind::Blob => "file", FileKind::Safetensors => "safetensors" },
                    "size": f.size, "sha256": tic_format::hex(&f.sha256),
                    "stored_bytes": h.file_tensors(f).iter().map(|t| stored_len(h, t)).sum::<u64>(),
                })
            })
            .collect();
        v["tensor_list"] = h
            .files
            .iter()
            .flat_map(|f| h.file_tensors(f).iter().map(move |t| (f, t)))
            .filter(|(_, t)| !t.name.is_empty())
            .map(|(f, t)| {
                json!({
                    "file": f.path, "name": t.name, "dtype": t.dtype.name(), "shape": t.shape,
                    "codec": t.codec.name(), "lossless": t.lossy.is_none(),
                    "original_bytes": t.orig_len, "stored_bytes": stored_len(h, t),
                    "chunks": t.chunk_count, "sha256": tic_format::hex(&t.sha256),
                })
            })
            .collect();
        v
    }

    pub fn print_inspect(&self, w: &mut dyn Write) -> std::io::Result<()> {
        let h = self.art.header();
        let p = self.art.preamble();
        writeln!(w, "artifact:   {}", self.art.path().display())?;
        writeln!(
            w,
            "format:     {}.{} (written by {})",
            p.major,
            p.minor,
            printable(&h.creator)
        )?;
        writeln!(w, "signature:  {}", signature_text(self.art.signature()))?;
        writeln!(w, "encryption: {}", self.encryption_text())?;
        writeln!(w)?;
        writeln!(
            w,
            "{:<48} {:>12} {:>12} {:>7}  kind",
            "file", "original", "stored", "ratio"
        )?;
        for f in &h.files {
            let stored: u64 = h
                .file_tensors(f)
                .iter()
                .map(|t| stored_len(h, t))
                .sum::<u64>()
                + f.st_header.len() as u64;
            writeln!(
                w,
                "{:<48} {:>12} {:>12} {:>6.2}%  {}",
                printable(&f.path),
                f.size,
                stored,
                pct(stored, f.size),
                if f.kind == FileKind::Safetensors {
                    "safetensors"
                } else {
                    "file"
                }
            )?;
        }
        writeln!(w)?;
        // Lossy codec names and some dtype names (F8_E4M3FNUZ) are long:
        // widen those columns to the longest.
        let width = |f: fn(&TensorEntry) -> usize, min: usize| {
            h.tensors.iter().map(f).max().unwrap_or(0).max(min)
        };
        let cw = width(|t| t.codec.name().len(), 22);
        let dw = width(|t| t.dtype.name().len(), 8);
        writeln!(
            w,
            "{:<52} {:<dw$} {:<16} {:<cw$} {:>11} {:>11} {:>7}",
            "tensor", "dtype", "shape", "codec", "original", "stored", "ratio"
        )?;
        let (mut to, mut ts) = (0u64, 0u64);
        for t in h.tensors.iter().filter(|t| !t.name.is_empty()) {
            let s = stored_len(h, t);
            to += t.orig_len;
            ts += s;
            writeln!(
                w,
                "{:<52} {:<dw$} {:<16} {:<cw$} {:>11} {:>11} {:>6.2}%{}",
                printable(&t.name),
                t.dtype.name(),
                format!("{:?}", t.shape),
                t.codec.name(),
                t.orig_len,
                s,
                pct(s, t.orig_len),
                if t.lossy.is_some() { "  lossy" } else { "" }
            )?;
        }
        let lossy: Vec<&TensorEntry> = h.tensors.iter().filter(|t| t.lossy.is_some()).collect();
        if !lossy.is_empty() {
            // The bound each lossy tensor was coded to, and the errors
            // measured when the artifact was made.
            writeln!(w)?;
            writeln!(
                w,
                "{:<52} {:<20} {:>11} {:>11} {:>11}",
                "lossy tensor", "bound", "max rel", "mean rel", "max abs"
            )?;
            for t in lossy {
                let Some(l) = &t.lossy else { continue };
                let bound = match l.bound_kind {
                    1 => format!("relative <= {:.3e}", l.bound),
                    2 => format!("absolute <= {:.3e}", l.bound),
                    k => format!("kind {k} <= {:.3e}", l.bound),
                };
                writeln!(
                    w,
                    "{:<52} {:<20} {:>10.4}% {:>10.4}% {:>11.3e}",
                    printable(&t.name),
                    bound,
                    100.0 * l.max_rel,
                    100.0 * l.mean_rel,
                    l.max_abs
                )?;
            }
        }
        let total_orig: u64 = h.files.iter().map(|f| f.size).sum();
        // Opening checked it against the file's length.
        let art_len = p.total_len().unwrap_or(0);
        writeln!(w)?;
        writeln!(
            w,
            "tensors: {} in {} files, {} -> {} ({:.2}%)",
            h.tensors.iter().filter(|t| !t.name.is_empty()).count(),
            h.files.len(),
            mb(to),
            mb(ts),
            pct(ts, to)
        )?;
        writeln!(
            w,
            "artifact: {} of {} original ({:.2}%), {} chunks, {}",
            mb(art_len),
            mb(total_orig),
            pct(art_len, total_orig),
            h.chunks.len(),
            if h.all_lossless() {
                "every tensor lossless"
            } else {
                "SOME TENSORS LOSSY"
            }
        )?;
        Ok(())
    }
}

fn pct(a: u64, b: u64) -> f64 {
    if b == 0 {
        100.0
    } else {
        100.0 * a as f64 / b as f64
    }
}

/// How messages and reports name an artifact read from standard input.
const STDIN_NAME: &str = "(standard input)";

/// For `tic COMMAND -`: standard input carries the artifact, so the key
/// files of `flag` (`--trusted-key`, `--identity`) cannot come from it too.
pub fn stdin_keys_check(command: &str, flag: &str, keys: &[PathBuf]) -> Result<(), crate::Failure> {
    match keys.iter().find(|k| is_stdin(k)) {
        Some(k) => Err(anyhow::anyhow!(
            "{flag} {}: standard input carries the artifact (`tic {command} -`); \
             give the key as a file",
            k.display()
        )
        .into()),
        None => Ok(()),
    }
}

/// Whether `path` names this process's standard input: `-`, `/dev/stdin`,
/// or on Unix any other name of the same file or pipe (`/dev/fd/0`,
/// `/proc/self/fd/0`).
fn is_stdin(path: &Path) -> bool {
    if path == Path::new("-") || path == Path::new("/dev/stdin") {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::MetadataExt;
        let stdin = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| std::fs::File::from(fd).metadata());
        if let (Ok(s), Ok(m)) = (stdin, std::fs::metadata(path)) {
            return (s.dev(), s.ino()) == (m.dev(), m.ino());
        }
    }
    false
}

/// Standard input, for `tic COMMAND -`, unless it is a terminal.
pub fn stdin_artifact(command: &str) -> Result<std::io::StdinLock<'static>, crate::Failure> {
    let stdin = std::io::stdin().lock();
    if std::io::IsTerminal::is_terminal(&stdin) {
        return Err(anyhow::anyhow!(
            "`tic {command} -` reads the artifact from standard input, which is a terminal; \
             pipe one in (`curl -sS URL | tic {command} - ...`) or give its file name"
        )
        .into());
    }
    Ok(stdin)
}

/// `tic decompress -`: restores the artifact streaming in on standard
/// input into `output`. Returns what was restored.
pub fn decompress_stdin(
    opts: &tic_runtime::OpenOptions,
    output: &Path,
    force: bool,
    progress: &dyn tic_runtime::Progress,
) -> Result<tic_runtime::ExtractReport, crate::Failure> {
    drop(stdin_artifact("decompress")?);
    // Standard input redirected from a file (`< dir/m.tic`) is named by
    // that file, as the artifact it is: `--force` then refuses to empty a
    // directory holding it, as for a named artifact.
    let file = Path::new("/proc/self/fd/0")
        .canonicalize()
        .ok()
        .filter(|p| p.is_file());
    let name = file.as_deref().unwrap_or(Path::new(STDIN_NAME));
    let mut stdin = StoppableStdin::new(progress);
    Ok(tic_runtime::extract_stream(
        &mut stdin, name, opts, output, force, progress,
    )?)
}

/// Standard input, read on a thread of its own so that a stop signal does
/// not wait on a stalled stream (a hung download): a read waits 100 ms at
/// a time and fails once `progress` is cancelled.
struct StoppableStdin<'a> {
    blocks: std::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
    block: Vec<u8>,
    at: usize,
    ended: bool,
    progress: &'a dyn tic_runtime::Progress,
}

impl<'a> StoppableStdin<'a> {
    /// Bytes read ahead: blocks of at most this many, this many blocks.
    const BLOCK: usize = 256 << 10;
    const AHEAD: usize = 4;

    fn new(progress: &'a dyn tic_runtime::Progress) -> Self {
        let (tx, blocks) = std::sync::mpsc::sync_channel(Self::AHEAD);
        let reader = move || {
            let mut stdin = std::io::stdin();
            loop {
                let mut b = vec![0u8; Self::BLOCK];
                let r = match std::io::Read::read(&mut stdin, &mut b) {
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Ok(n) => {
                        b.truncate(n);
                        Ok(b)
                    }
                    Err(e) => Err(e),
                };
                // The end (an empty block) or an error ends the thread, as
                // does the reader going away.
                let last = !matches!(&r, Ok(b) if !b.is_empty());
                if tx.send(r).is_err() || last {
                    return;
                }
            }
        };
        // Should the thread not start, the reads fail at once.
        let _ = std::thread::Builder::new()
            .name("tic-stdin".into())
            .spawn(reader);
        StoppableStdin {
            blocks,
            block: Vec::new(),
            at: 0,
            ended: false,
            progress,
        }
    }
}

impl std::io::Read for StoppableStdin<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        use std::sync::mpsc::RecvTimeoutError;
        while self.at == self.block.len() && !self.ended {
            match self
                .blocks
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                Ok(Ok(b)) => {
                    self.ended = b.is_empty();
                    (self.block, self.at) = (b, 0);
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) if self.progress.cancelled() => {
                    return Err(std::io::Error::other(
                        "stopped by a signal while waiting for standard input",
                    ))
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(std::io::Error::other(
                        "the thread reading standard input ended",
                    ))
                }
            }
        }
        let n = out.len().min(self.block.len() - self.at);
        out[..n].copy_from_slice(&self.block[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// `tic inspect -`: the front of the artifact streaming in on standard input,
/// read and checked as `tic inspect FILE` reads it, without its payload.
pub fn inspect_stdin(trust: Trust, json_out: bool) -> Result<u8, crate::Failure> {
    let mut stdin = stdin_artifact("inspect")?;
    let head = tic_runtime::read_head(&mut stdin, Path::new(STDIN_NAME), &trust)?;
    let rep = Report::new(&head);
    if json_out {
        let mut v = rep.inspect_json();
        // As given, as `tic verify - --json` has it.
        v["artifact"] = json!("-");
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        rep.print_inspect(&mut std::io::stdout().lock())?;
    }
    // Said on stderr, so that the JSON on stdout stays whole.
    eprintln!(
        "note: only the front of the artifact was read from standard input (header and \
         signature); its payload was not, so no chunk digest was checked: `tic verify -` checks them. \
         The command feeding tic may report a broken pipe (curl: exit 23): tic stopped reading"
    );
    Ok(0)
}

/// `tic verify`: signature, every chunk digest, policies. Returns the exit code.
#[allow(clippy::too_many_arguments)]
pub fn verify(
    path: &Path,
    trusted: &[PathBuf],
    allow_unsigned: bool,
    require_lossless: bool,
    against: Option<&Path>,
    exclude: &[tic_compiler::Exclude],
    json_out: bool,
    quiet: bool,
) -> Result<u8, crate::Failure> {
    // Ok: the artifact checked out (its summary), and a policy it broke.
    let result = (|| -> Result<(Value, Option<PolicyFailure>), crate::Failure> {
        if path == Path::new("-") {
            stdin_keys_check("verify", "--trusted-key", trusted)?;
        }
        // A model that is not there is found before the artifact is read.
        if let Some(model) = against {
            anyhow::Context::with_context(std::fs::metadata(model), || {
                format!("--against {}", model.display())
            })?;
        }
        let keys = tic_runtime::read_trusted_keys(trusted)?;
        let trust = Trust {
            keys,
            allow_unsigned,
        };
        let bar = crate::progress(quiet || json_out);
        // `-`: verify the artifact as it streams in on standard input.
        let (opened, streamed);
        let art: &Head = if path == Path::new("-") {
            let mut stdin = stdin_artifact("verify")?;
            streamed = tic_runtime::verify_stream(
                &mut stdin,
                Path::new(STDIN_NAME),
                &trust,
                bar.as_ref(),
            )?;
            &streamed
        } else {
            opened = Artifact::open(
                path,
                &OpenOptions {
                    trust,
                    identities: Vec::new(),
                },
            )?;
            opened.verify_chunks(bar.as_ref())?;
            opened.head()
        };
        let rep = Report::new(art);
        let mut v = rep.summary_json();
        // As given (`-` for standard input), as the failure report has it.
        v["artifact"] = json!(path.display().to_string());
        let path = art.path();
        v["chunks_checked"] = json!(art.header().chunks.len());
        if require_lossless && !art.header().all_lossless() {
            let names = art.header().lossy_tensor_names();
            let failure = PolicyFailure::Lossy {
                count: names.len(),
                names: some_names(&names),
            };
            return Ok((v, Some(failure)));
        }
        let mut model_line = None;
        if let Some(model) = against {
            let artifact = (path != Path::new(STDIN_NAME)).then_some(path);
            let c = tic_compiler::compare_with_model(art.header(), model, exclude, artifact)?;
            v["against"] = json!({
                "model": model.display().to_string(),
                "match": c.is_match(),
                "matched": c.matched,
                "different": c.different.iter().map(|d| json!({
                    "path": d.path,
                    "artifact_size": d.artifact_size,
                    "model_size": d.model_size,
                    "lossy": d.lossy,
                })).collect::<Vec<_>>(),
                "missing": c.missing,
                "extra": c.extra,
            });
            if !c.is_match() {
                let failure = PolicyFailure::NotTheModel {
                    model: model.to_path_buf(),
                    what: differences(&c),
                };
                return Ok((v, Some(failure)));
            }
            model_line = Some(format!(
                "all {} files match {}, byte for byte",
                c.matched.len(),
                model.display()
            ));
        }
        // Only a signature by a trusted key makes an artifact verified;
        // --allow-unsigned accepts it (exit 0) without calling it verified.
        let signed = matches!(art.signature(), SignatureStatus::Verified { .. });
        v["verified"] = json!(signed);
        v["accepted"] = json!(true);
        if !json_out {
            let h = art.header();
            let p = art.preamble();
            if signed {
                outln!("verified: {}", path.display())?;
            } else {
                outln!(
                    "accepted, NOT verified (no trusted signature; allowed by --allow-unsigned): {}",
                    path.display()
                )?;
            }
            outln!("  signature:  {}", signature_text(art.signature()))?;
            outln!(
                "  format:     {}.{} (written by {})",
                p.major,
                p.minor,
                printable(&h.creator)
            )?;
            outln!(
                "  contents:   {} files, {} tensors, {} chunks, {} original",
                h.files.len(),
                v["tensors"],
                h.chunks.len(),
                mb(v["original_bytes"].as_u64().unwrap_or(0))
            )?;
            let codecs: Vec<String> = rep
                .codecs()
                .iter()
                .map(|(k, n)| format!("{k} x{n}"))
                .collect();
            outln!("  codecs:     {}", codecs.join(", "))?;
            outln!(
                "  lossless:   {}",
                if h.all_lossless() {
                    "yes, every tensor decodes bit for bit".to_string()
                } else {
                    format!(
                        "NO: {} lossy tensor(s): {}",
                        h.tensors.iter().filter(|t| t.lossy.is_some()).count(),
                        some_names(&h.lossy_tensor_names())
                    )
                }
            )?;
            outln!("  encryption: {}", rep.encryption_text())?;
            outln!(
                "  integrity:  all {} chunk digests match the signed header",
                h.chunks.len()
            )?;
            if let Some(line) = model_line {
                outln!("  model:      {line}")?;
            }
        }
        Ok((v, None))
    })();
    match result {
        Ok((v, None)) => {
            if json_out {
                outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
            }
            Ok(0)
        }
        // The signature and every chunk checked out but a policy failed: the
        // JSON report keeps the whole summary (which tensors are lossy).
        Ok((mut v, Some(policy))) if json_out => {
            let f = crate::Failure::from(policy);
            v["verified"] = json!(false);
            v["accepted"] = json!(false);
            v["exit_code"] = json!(f.code);
            v["error"] = json!(crate::message(&f.err));
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
            eprintln!("tic: error: {}", crate::message(&f.err));
            Ok(f.code)
        }
        Ok((_, Some(policy))) => Err(policy.into()),
        Err(f) if json_out => {
            let v = json!({
                "artifact": path.display().to_string(),
                "verified": false,
                "accepted": false,
                "exit_code": f.code,
                "error": crate::message(&f.err),
            });
            outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
            eprintln!("tic: error: {}", crate::message(&f.err));
            Ok(f.code)
        }
        Err(f) => Err(f),
    }
}

/// `tic load`: open (signature), load onto the device, check every loaded
/// tensor against the SHA-256 recorded at compile time; times each stage.
pub fn load(
    path: &Path,
    trust: &crate::TrustArgs,
    identities: &[PathBuf],
    device: &str,
    names: &[String],
    json_out: bool,
) -> Result<u8, crate::Failure> {
    use std::time::Instant;
    let device: tic_runtime::Device = device.parse().map_err(anyhow::Error::msg)?;
    let t0 = Instant::now();
    let art = crate::open_with(path, trust, identities)?;
    let t_open = t0.elapsed().as_secs_f64();
    // Opening the GPU and compiling its kernels is paid once per process:
    // its own stage, so that `load` is what each further model would cost.
    let t1 = Instant::now();
    if let tic_runtime::Device::Cuda(n) = device {
        if let Err(why) = tic_runtime::probe_cuda(n) {
            tracing::debug!("cuda:{n} cannot be used: {why}");
        }
    }
    let t_gpu = t1.elapsed().as_secs_f64();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut opts = tic_runtime::LoadOptions::new(device);
    opts.verify = false; // checked below, as its own stage
    let t1 = Instant::now();
    let loaded = art.load_with(if names.is_empty() { None } else { Some(&names) }, &opts)?;
    let t_load = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    art.check_loaded(&loaded)?;
    let bytes: u64 = loaded.iter().map(|t| t.len() as u64).sum();
    let t_check = t2.elapsed().as_secs_f64();
    let landed = loaded.first().map_or(device, |t| t.device());
    let v = json!({
        "artifact": path.display().to_string(),
        "signature": signature_json(art.signature()),
        "device_requested": device.to_string(),
        "device": landed.to_string(),
        "tensors": loaded.len(),
        "bytes": bytes,
        "seconds": {"open_and_verify_signature": t_open, "open_gpu_and_compile_kernels": t_gpu, "load": t_load, "check_digests": t_check},
        "load_GBps": bytes as f64 / t_load.max(1e-9) / 1e9,
    });
    if json_out {
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default())?;
    } else {
        outln!(
            "loaded {} tensors ({}) onto {}{}",
            loaded.len(),
            mb(bytes),
            landed,
            if landed != device {
                format!(" (asked for {device}; see the warning above)")
            } else {
                String::new()
            }
        )?;
        outln!("  signature:        {}", signature_text(art.signature()))?;
        outln!("  open + signature: {:8.2} ms", t_open * 1e3)?;
        if let tic_runtime::Device::Cuda(_) = device {
            outln!(
                "  GPU + kernels:    {:8.2} ms  ({})",
                t_gpu * 1e3,
                if landed == device {
                    "open the device, compile the kernels with NVRTC; once per process"
                } else {
                    "looking for a usable GPU, in vain"
                }
            )?;
        }
        outln!(
            "  load:             {:8.2} ms  (read, chunk digests, decrypt, decode, transfer; {:.2} GB/s)",
            t_load * 1e3,
            bytes as f64 / t_load.max(1e-9) / 1e9
        )?;
        outln!(
            "  check digests:    {:8.2} ms  (every tensor against its SHA-256 from compile time)",
            t_check * 1e3
        )?;
    }
    Ok(0)
}
