//! Shared pieces of the end-to-end tests: a module and a callback that record every hook call.
#![allow(dead_code)]

pub mod checkpointing;
pub mod python;
pub mod recorder;

use std::sync::{Mutex, MutexGuard};

use lightning::Accelerator;

/// The tests of one binary run on threads of one process; models are initialised from, and the runtime reseeds
/// before every training batch, torch's process-wide generator. Runs whose randomness is compared bit for bit hold
/// this lock, so that no other test reseeds or draws between a run's reseed and its draws.
pub fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

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
