//! Early write-back of large outputs.
//!
//! Outputs are made durable with `fsync` before they are renamed into place.
//! Left alone, the kernel writes a freshly written file to disk only at that
//! `fsync`, so the command waits for the whole file at the end. An
//! [`EarlyWriteback`] asks for the write-back of what is already written
//! (`fdatasync` on a second handle, from a helper thread that only waits on
//! the disk) every [`STEP`] bytes, so the disk works while the CPU still
//! decodes or encodes, and the final `fsync` waits only for the tail.
//! Failures are ignored here: the final `fsync` reports them.

use std::fs::File;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::thread::JoinHandle;

/// Bytes written between write-back requests.
pub const STEP: u64 = 8 << 20;

/// Requests write-back of a file every [`STEP`] bytes written to it.
pub struct EarlyWriteback {
    file: Option<File>,
    pending: u64,
    helper: Option<(SyncSender<()>, JoinHandle<()>)>,
}

impl EarlyWriteback {
    /// Watches `file` (a second handle is opened on first use; if that
    /// fails, nothing is done early).
    pub fn new(file: &File) -> Self {
        EarlyWriteback {
            file: file.try_clone().ok(),
            pending: 0,
            helper: None,
        }
    }

    /// Notes `n` more bytes written; past [`STEP`], asks the helper for a
    /// write-back unless one is still running.
    pub fn wrote(&mut self, n: u64) {
        self.pending += n;
        if self.pending < STEP {
            return;
        }
        if self.helper.is_none() {
            let Some(file) = self.file.take() else {
                return;
            };
            let (tx, rx) = sync_channel::<()>(1);
            let spawned = std::thread::Builder::new()
                .name("tic-writeback".into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        let _ = file.sync_data();
                    }
                });
            match spawned {
                Ok(h) => self.helper = Some((tx, h)),
                Err(_) => return,
            }
        }
        if let Some((tx, _)) = &self.helper {
            match tx.try_send(()) {
                Ok(()) => self.pending = 0,
                Err(TrySendError::Full(())) => {}
                Err(TrySendError::Disconnected(())) => self.helper = None,
            }
        }
    }

    /// Stops the helper, waiting for a write-back in progress.
    pub fn finish(mut self) {
        if let Some((tx, h)) = self.helper.take() {
            drop(tx);
            let _ = h.join();
        }
    }
}
