//! Parallel production, in-order consumption, with no extra thread.
//!
//! Restoring a file and writing an artifact both decode or encode windows
//! of chunks in parallel but must write them (and hash them) in order. Here
//! every item is produced by a rayon task; the task that completes the next
//! item in order consumes every item then ready, while the other tasks go
//! back to producing. No thread waits on the serial chain, no extra thread
//! competes with the pool for the cores, and at most as many items as the
//! [`Permits`] allow are produced and not yet consumed, which bounds
//! memory. Pipelines running side by side (files restored at once) can
//! share one budget of permits.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// How many items may be produced and not yet consumed, across every
/// pipeline given the same `Permits`.
pub struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    /// `n` items in flight at most (at least one).
    pub fn new(n: usize) -> Self {
        Permits {
            free: Mutex::new(n.max(1)),
            freed: Condvar::new(),
        }
    }

    fn free(&self) -> MutexGuard<'_, usize> {
        // The count stays right even if a holder panicked.
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a permit. A pool worker (a caller inside a rayon pool) runs
    /// pending tasks while it waits, so a one-thread pool cannot deadlock;
    /// other threads simply block.
    fn acquire(&self) {
        loop {
            {
                let mut free = self.free();
                if *free > 0 {
                    *free -= 1;
                    return;
                }
            }
            match rayon::yield_now() {
                Some(rayon::Yield::Executed) => {}
                Some(rayon::Yield::Idle) => {
                    let free = self.free();
                    if *free == 0 {
                        // Woken by a release, or after a while to look for
                        // new tasks again.
                        let _ = self.freed.wait_timeout(free, Duration::from_millis(1));
                    }
                }
                None => {
                    let mut free = self.free();
                    while *free == 0 {
                        free = self
                            .freed
                            .wait(free)
                            .unwrap_or_else(PoisonError::into_inner);
                    }
                    *free -= 1;
                    return;
                }
            }
        }
    }

    /// Permits not taken now.
    #[cfg(test)]
    fn available(&self) -> usize {
        *self.free()
    }

    fn release(&self, n: usize) {
        if n > 0 {
            *self.free() += n;
            self.freed.notify_all();
        }
    }
}

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
    for_each_ordered_sharing(items, &Permits::new(in_flight), produce, consume)
}

/// [`for_each_ordered`] with items in flight counted against `permits`,
/// which other pipelines may be using at the same time. Every permit this
/// call takes is given back before it returns, and before a panic of
/// either closure is passed on (after every item already spawned is done),
/// so that a panic in one pipeline cannot stall the others.
pub fn for_each_ordered_sharing<T, R, E>(
    items: &[T],
    permits: &Permits,
    produce: impl Fn(&T) -> Result<R, E> + Sync,
    consume: impl FnMut(R) -> Result<(), E> + Send,
) -> Result<(), E>
where
    T: Sync,
    R: Send,
    E: Send,
{
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    type Panic = Box<dyn std::any::Any + Send>;
    struct Sink<C, E> {
        consume: C,
        next: usize,
        failed: Option<E>,
    }
    /// Gives back, when dropped (unwinding included), the permits still
    /// counted in `held`.
    struct Held<'a> {
        permits: &'a Permits,
        held: AtomicUsize,
    }
    impl Drop for Held<'_> {
        fn drop(&mut self) {
            self.permits.release(*self.held.get_mut());
        }
    }
    let sink = Mutex::new(Sink {
        consume,
        next: 0,
        failed: None,
    });
    // Produced items by index; a panic of `produce` is kept in its place.
    let ready = Mutex::new(BTreeMap::<usize, Result<Result<R, E>, Panic>>::new());
    let stop = AtomicBool::new(false);
    // The first panic of either closure, passed on at the end.
    let panicked: Mutex<Option<Panic>> = Mutex::new(None);
    let held = Held {
        permits,
        held: AtomicUsize::new(0),
    };
    let keep_panic = |p: Panic| {
        stop.store(true, Ordering::Relaxed);
        let mut first = panicked.lock().unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert(p);
    };
    let drain = || loop {
        let Ok(mut guard) = sink.try_lock() else {
            return; // the task holding the sink consumes what follows
        };
        let sk = &mut *guard;
        // (The closure takes the map's guard: it is unlocked while the item
        // is consumed.)
        while let Some(r) = ready.lock().ok().and_then(|mut m| m.remove(&sk.next)) {
            match r {
                Err(p) => keep_panic(p),
                Ok(r) if sk.failed.is_none() && !stop.load(Ordering::Relaxed) => {
                    match catch_unwind(AssertUnwindSafe(|| r.and_then(&mut sk.consume))) {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            sk.failed = Some(e);
                            stop.store(true, Ordering::Relaxed);
                        }
                        Err(p) => keep_panic(p),
                    }
                }
                // After a failure or a panic, items are only counted off.
                Ok(_) => {}
            }
            sk.next += 1;
            held.held.fetch_sub(1, Ordering::Relaxed);
            permits.release(1);
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
            if stop.load(Ordering::Relaxed) {
                break;
            }
            permits.acquire();
            held.held.fetch_add(1, Ordering::Relaxed);
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let (produce, drain, ready) = (&produce, &drain, &ready);
            sc.spawn(move |_| {
                let r = catch_unwind(AssertUnwindSafe(|| produce(item)));
                if let Ok(mut m) = ready.lock() {
                    m.insert(k, r);
                }
                drain();
            });
        }
    });
    // Every spawned item has been counted off by now; a permit taken for an
    // item never spawned (the stop above) goes back here.
    drop(held);
    if let Some(p) = panicked
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner)
    {
        resume_unwind(p);
    }
    let sink = sink.into_inner().unwrap_or_else(PoisonError::into_inner);
    match sink.failed {
        Some(e) => Err(e),
        None => {
            assert_eq!(sink.next, items.len(), "every item consumed");
            Ok(())
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

    #[test]
    fn pipelines_side_by_side_share_the_budget_and_give_every_permit_back() {
        let permits = Permits::new(3);
        let in_flight = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u64> = (0..300).collect();
        let run = |fail_at: Option<u64>| {
            let mut seen = Vec::new();
            let r = for_each_ordered_sharing(
                &items,
                &permits,
                |&i| {
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    let mut x = i;
                    for _ in 0..(i * 7919) % 3000 {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                    if Some(i) == fail_at {
                        Err(i)
                    } else {
                        Ok(i)
                    }
                },
                |i| {
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    seen.push(i);
                    Ok(())
                },
            );
            (r, seen)
        };
        pool(4).install(|| {
            let ((a, seen_a), (b, seen_b)) = std::thread::scope(|s| {
                let other = s.spawn(|| run(None));
                (run(None), other.join().unwrap())
            });
            assert_eq!((a, b), (Ok(()), Ok(())));
            assert_eq!(seen_a, items);
            assert_eq!(seen_b, items);
        });
        assert!(
            most.load(Ordering::SeqCst) <= 3,
            "at most 3 items in flight across both, saw {}",
            most.load(Ordering::SeqCst)
        );
        assert_eq!(permits.available(), 3, "every permit given back");
        // A failure stops a pipeline early; its permits come back too.
        let (r, seen) = pool(2).install(|| run(Some(40)));
        assert_eq!(r, Err(40));
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        assert_eq!(
            permits.available(),
            3,
            "every permit given back after a failure"
        );
    }

    #[test]
    fn a_panic_is_passed_on_with_every_permit_given_back() {
        let permits = Permits::new(4);
        let items: Vec<u32> = (0..200).collect();
        let slow = |i: u32| {
            let mut x = u64::from(i);
            for _ in 0..(i * 7919) % 3000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            }
            std::hint::black_box(x);
        };
        for (threads, in_produce) in [(1, true), (3, true), (1, false), (3, false)] {
            pool(threads).install(|| {
                let (panicking, other) = rayon::join(
                    || {
                        std::panic::catch_unwind(|| {
                            for_each_ordered_sharing(
                                &items,
                                &permits,
                                |&i| {
                                    slow(i);
                                    if in_produce && i == 30 {
                                        panic!("produce broke");
                                    }
                                    Ok::<u32, ()>(i)
                                },
                                |i| {
                                    if !in_produce && i == 30 {
                                        panic!("consume broke");
                                    }
                                    Ok(())
                                },
                            )
                        })
                    },
                    // Another pipeline on the same budget still finishes.
                    || {
                        let mut seen = Vec::new();
                        let r = for_each_ordered_sharing(
                            &items,
                            &permits,
                            |&i| {
                                slow(i);
                                Ok::<u32, ()>(i)
                            },
                            |i| {
                                seen.push(i);
                                Ok(())
                            },
                        );
                        (r, seen)
                    },
                );
                let msg = panicking.expect_err("the panic is passed on");
                let msg = msg.downcast_ref::<&str>().copied().unwrap_or_default();
                assert_eq!(
                    msg,
                    if in_produce {
                        "produce broke"
                    } else {
                        "consume broke"
                    }
                );
                assert_eq!(other, (Ok(()), items.clone()));
            });
            assert_eq!(
                permits.available(),
                4,
                "{threads} threads, every permit back"
            );
        }
    }
}
