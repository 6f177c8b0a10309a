//! Test support: an encoder for the `planes` bitstream (written from the
//! codec description, independently of the kernels) and a runner that
//! plans batches with the real planner and executes them with the real
//! kernel sources on the CPU (tests/emu).
#![allow(dead_code)]

pub mod emulator;
pub mod encoder;
