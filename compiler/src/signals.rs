//! Ctrl-C, SIGTERM and SIGHUP during the commands that write output
//! (`compile`, `decompress`, `rewrap`, `attach-signature`). The first such
//! signal asks the running operation to stop: it stops at its next chunk,
//! removes its temporary output and returns an `Interrupted` error, and the
//! process then ends by that signal, as if it had not been caught. A second
//! Ctrl-C ends the process at once, as a user pressing it twice expects
//! (what was being written may then stay behind as a hidden `.tic-*` file or
//! directory beside the output, or for a restore into directories yet to be
//! made, in the nearest one that exists; the output path itself is never
//! half written). A repeated SIGTERM or SIGHUP does not: programs send those
//! more than once without meaning "now" (GNU `timeout` signals tic, then
//! its whole process group), and escalate with SIGKILL. Other commands keep
//! the default handlers: they write nothing.
//! A signal that was ignored when tic started stays ignored: `nohup tic
//! compile ...` must survive the terminal closing (SIGHUP), and a
//! background job of a script Ctrl-C meant for the foreground (SIGINT).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::flag;
use tic_runtime::Progress;

/// The signals that ask a command to stop.
const STOP_SIGNALS: [i32; 3] = [SIGINT, SIGTERM, SIGHUP];

/// What the handlers record.
struct Received {
    /// Set by the first stop signal.
    any: Arc<AtomicBool>,
    /// Set by the first SIGINT; arms the immediate end on the second.
    interrupt: Arc<AtomicBool>,
    /// The number of the last stop signal, 0 for none.
    which: Arc<AtomicUsize>,
}

static RECEIVED: OnceLock<Received> = OnceLock::new();

/// Installs the handlers for the rest of the process (once; later calls
/// do nothing).
pub fn install() -> std::io::Result<()> {
    if RECEIVED.get().is_some() {
        return Ok(());
    }
    let r = Received {
        any: Arc::new(AtomicBool::new(false)),
        interrupt: Arc::new(AtomicBool::new(false)),
        which: Arc::new(AtomicUsize::new(0)),
    };
    let ignored = ignored_signals();
    for sig in STOP_SIGNALS {
        if ignored.is_some_and(|mask| mask >> (sig - 1) & 1 == 1) {
            continue;
        }
        if sig == SIGINT {
            // Registered first, so that it acts from the second Ctrl-C on:
            // the first sets `interrupt` only after it has looked.
            flag::register_conditional_default(sig, Arc::clone(&r.interrupt))?;
            flag::register(sig, Arc::clone(&r.interrupt))?;
        }
        flag::register(sig, Arc::clone(&r.any))?;
        flag::register_usize(sig, Arc::clone(&r.which), sig as usize)?;
    }
    let _ = RECEIVED.set(r);
    Ok(())
}

/// The set of signals this process ignores (bit `n - 1` for signal `n`),
/// from `/proc/self/status`; None where that is not available (not Linux),
/// and the handlers are then installed for all three.
fn ignored_signals() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("SigIgn:"))?;
    u64::from_str_radix(line.trim(), 16).ok()
}

/// The stop signal that arrived, if the handlers are installed and one did.
pub fn received() -> Option<i32> {
    let r = RECEIVED.get()?;
    match r.which.load(Ordering::SeqCst) {
        0 => None,
        n => i32::try_from(n).ok(),
    }
}

/// Ends the process the way the signal `sig` would have ended it had it
/// not been caught, so that a shell sees "killed by SIGINT" and stops a
/// script; exits with 128 + `sig` should that not work.
pub fn die_by(sig: i32) -> ! {
    let _ = signal_hook::low_level::emulate_default_handler(sig);
    std::process::exit(128 + sig)
}

/// A [`Progress`] that reports through `inner` and is cancelled once a stop
/// signal has arrived.
pub struct Stoppable(pub Box<dyn Progress>);

impl Progress for Stoppable {
    fn start(&self, what: &str, total: u64) {
        self.0.start(what, total);
    }
    fn advance(&self, n: u64) {
        self.0.advance(n);
    }
    fn finish(&self) {
        self.0.finish();
    }
    fn cancelled(&self) -> bool {
        RECEIVED.get().is_some_and(|r| r.any.load(Ordering::SeqCst))
    }
}
