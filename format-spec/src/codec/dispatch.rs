//! Runs the codec's hot loops built for the best instruction set the CPU
//! has, chosen at run time: on x86-64 with AVX2 and BMI2 (x86-64-v3) where
//! present, else baseline x86-64; release builds stay portable. The
//! target-feature call needs `unsafe`, which lives in `pulp`; this crate
//! stays `forbid(unsafe_code)`.
//!
//! An operation gets the features only where it is inlined into the
//! dispatch, so the functions on its hot path are `#[inline(always)]`.
//! Both builds are the same source and give the same bytes; the tests run
//! each on the same data ([`baseline`]).

/// Runs `op` with the instruction set [`pulp::Arch::new`] detects.
#[inline(always)]
pub(crate) fn run<Op: pulp::WithSimd>(op: Op) -> Op::Output {
    #[cfg(test)]
    if BASELINE.with(std::cell::Cell::get) {
        return pulp::Arch::Scalar.dispatch(op);
    }
    pulp::Arch::new().dispatch(op)
}

#[cfg(test)]
thread_local! {
    static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with every [`run`] on this thread taking the baseline build.
#[cfg(test)]
pub(crate) fn baseline<R>(f: impl FnOnce() -> R) -> R {
    BASELINE.with(|b| b.set(true));
    let r = f();
    BASELINE.with(|b| b.set(false));
    r
}
