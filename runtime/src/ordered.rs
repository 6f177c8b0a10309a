//! Parallel production, in-order consumption, with no extra thread.
//!
//! Restoring a file and writing an artifact both decode or encode windows
//! of chunks in parallel but must write them (and hash them) in order. Here
//! every item is produced by a rayon task; the task that completes the next
//! item in order consumes every item then ready, while the other tasks go
//! back to producing. No thread waits on the serial chain, no extra thread
//! competes with the pool for the cores, and at most `in_flight` items are
//! produced and not yet consumed, which bounds memory.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Mutex;

/// Produces `produce(item)` for every item in parallel and hands the
/// results to `consume` in item order. Stops at the first error (of either
/// closure, in item order as far as the consumer got) and returns it; later
/// items may then never be produced.
pub fn for_each_ordered<T, R, E>(
    items: &[T],
    in_flight: usize,
    produce: impl Fn(&T) -> Result<R, E> + Sync,
    consume: impl FnMut(R) -> Result<(), E> + Send,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    struct Sink<C, E> {
        consume: C,
        next: usize,
        failed: Option<E>,
    }
    let sink = Mutex::new(Sink {
        consume,
        next: 0,
        failed: None,
    });
    let ready = Mutex::new(BTreeMap::<usize, Result<R, E>>::new());
    let stop = AtomicBool::new(false);
    let (permit_tx, permit_rx) = channel::<()>();
    for _ in 0..in_flight.max(1) {
        let _ = permit_tx.send(());
    }
    let drain = |permit: &Sender<()>| loop {
        let Ok(mut guard) = sink.try_lock() else {
            return; // the task holding the sink consumes what follows
        };
        let sk = &mut *guard;
        // (The closure takes the map's guard: it is unlocked while the item
        // is consumed.)
        while let Some(r) = ready.lock().ok().and_then(|mut m| m.remove(&sk.next)) {
            if sk.failed.is_none() {
                if let Err(e) = r.and_then(&mut sk.consume) {
                    sk.failed = Some(e);
                    stop.store(true, Ordering::Relaxed);
                }
            }
            sk.next += 1;
            let _ = permit.send(());
        }
        let next = sk.next;
        drop(guard);
        // An item may have become ready after the last look and before the
        // sink was released: look again, or leave.
        if !ready.lock().is_ok_and(|m| m.contains_key(&next)) {
            return;
        }
    };
    rayon::in_place_scope(|sc| {
        for (k, item) in items.iter().enumerate() {
            if !acquire(&permit_rx) || stop.load(Ordering::Relaxed) {
                break;
            }
            let (produce, drain, ready, permit) = (&produce, &drain, &ready, permit_tx.clone());
            sc.spawn(move |_| {
                let r = produce(item);
                if let Ok(mut m) = ready.lock() {
                    m.insert(k, r);
                }
                drain(&permit);
            });
        }
    });
    let sink = sink
        .into_inner()
        .unwrap_or_else(|_| panic!("a task panicked while consuming"));
    match sink.failed {
        Some(e) => Err(e),
        None => {
            assert_eq!(sink.next, items.len(), "every item consumed");
            Ok(())
        }
    }
}

/// Takes a permit; false once no more can come. A pool worker (a caller
/// inside a rayon pool) runs pending tasks while it waits, so a one-thread
/// pool cannot deadlock; other threads simply block.
fn acquire(permits: &Receiver<()>) -> bool {
    loop {
        match permits.try_recv() {
            Ok(()) => return true,
            Err(TryRecvError::Disconnected) => return false,
            Err(TryRecvError::Empty) => {}
        }
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => {}
            Some(rayon::Yield::Idle) => {
                match permits.recv_timeout(std::time::Duration::from_millis(1)) {
                    Ok(()) => return true,
                    Err(RecvTimeoutError::Disconnected) => return false,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            None => return permits.recv().is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(n: usize) -> rayon::ThreadPool {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    }

    #[test]
    fn consumes_in_order_on_any_pool() {
        let items: Vec<u64> = (0..200).collect();
        for threads in [1, 2, 7] {
            let mut seen = Vec::new();
            // Uneven production times, so results complete out of order.
            let produce = |&i: &u64| -> Result<u64, ()> {
                let mut x = i;
                for _ in 0..(i * 7919) % 5000 {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                }
                std::hint::black_box(x);
                Ok(i * 2)
            };
            pool(threads)
                .install(|| {
                    for_each_ordered(&items, threads + 2, produce, |r| {
                        seen.push(r);
                        Ok(())
                    })
                })
                .unwrap();
            let want: Vec<u64> = items.iter().map(|i| i * 2).collect();
            assert_eq!(seen, want, "{threads} threads");
            // Called from outside any pool too.
            seen.clear();
            for_each_ordered(&items, 3, produce, |r| {
                seen.push(r);
                Ok(())
            })
            .unwrap();
            assert_eq!(seen, want);
        }
    }

    #[test]
    fn first_error_in_order_wins_and_stops_the_rest() {
        let items: Vec<u32> = (0..500).collect();
        for threads in [1, 3] {
            let produced = std::sync::atomic::AtomicUsize::new(0);
            let mut consumed = Vec::new();
            let r = pool(threads).install(|| {
                for_each_ordered(
                    &items,
                    4,
                    |&i| {
                        produced.fetch_add(1, Ordering::Relaxed);
                        if i == 40 || i == 41 {
                            Err(i)
                        } else {
                            Ok(i)
                        }
                    },
                    |i| {
                        consumed.push(i);
                        if i == 30 {
                            Err(1000 + i)
                        } else {
                            Ok(())
                        }
                    },
                )
            });
            assert_eq!(r, Err(1030), "{threads} threads");
            assert_eq!(consumed, (0..=30).collect::<Vec<_>>());
            assert!(
                produced.load(Ordering::Relaxed) < items.len(),
                "stopped early"
            );
            let r = for_each_ordered(
                &items,
                4,
                |&i| if i >= 40 { Err(i) } else { Ok(i) },
                |_| Ok(()),
            );
            assert_eq!(r, Err(40));
        }
    }
}
