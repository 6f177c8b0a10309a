//! Byte buffers handed from one parallel task to the next.
//!
//! Reading a chunk needs an initialised buffer. A fresh one is zeroed and
//! faulted in page by page before the read overwrites it: for a 1 MiB chunk
//! that costs about as much as a fifth of the read. A buffer taken from the
//! pool and resized to a length it has had before costs neither.

use std::sync::Mutex;

/// Buffers given back by finished tasks, for the next ones. It holds at
/// most as many as were ever in use at once.
#[derive(Default)]
pub struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// A buffer given back earlier (any length and contents), or a new,
    /// empty one.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_default()
    }

    /// A buffer at least `len` bytes long, of which the caller uses the
    /// first `len`. A buffer keeps the longest length it has had, so it is
    /// zeroed only where it grows, however the lengths asked for vary.
    pub fn take_at_least(&self, len: usize) -> Vec<u8> {
        let mut b = self.take();
        if b.len() < len {
            b.resize(len, 0);
        }
        b
    }

    /// Gives buffers back for later tasks.
    pub fn give(&self, bufs: impl IntoIterator<Item = Vec<u8>>) {
        if let Ok(mut v) = self.0.lock() {
            v.extend(bufs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_what_it_was_given() {
        let pool = BufferPool::default();
        assert!(pool.take().is_empty());
        let mut b = pool.take_at_least(1000);
        assert_eq!(b, vec![0u8; 1000]);
        b[999] = 7;
        let ptr = b.as_ptr();
        pool.give([b]);
        // The same allocation comes back, neither shortened nor cleared.
        let again = pool.take_at_least(10);
        assert_eq!(again.as_ptr(), ptr);
        assert_eq!(again.len(), 1000);
        assert_eq!(again[999], 7);
        pool.give([again]);
        // Grown only where it was short.
        let longer = pool.take_at_least(2000);
        assert_eq!(longer.len(), 2000);
        assert_eq!((longer[999], longer[1999]), (7, 0));
        assert!(pool.take().is_empty(), "only one buffer was given");
    }
}
