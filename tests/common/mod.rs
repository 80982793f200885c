//! Shared pieces of the end-to-end tests: a module and a callback that record every hook call.
#![allow(dead_code)]

pub mod checkpointing;
pub mod python;
pub mod recorder;

use lightning::Accelerator;

/// The accelerators a test runs on: the CPU, and CUDA device 0 where there is one (said when skipped).
pub fn accelerators() -> Vec<Accelerator> {
    let mut accelerators = vec![Accelerator::Cpu];
    if tch::Cuda::is_available() {
        accelerators.push(Accelerator::Cuda(0));
    } else {
        eprintln!("no CUDA device here: the CUDA run of this test is skipped");
    }
    accelerators
}
