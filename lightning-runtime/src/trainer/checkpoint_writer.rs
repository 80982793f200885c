//! Checkpoint files written behind the training thread. The training thread takes the snapshot (every tensor
//! copied to CPU bytes, so training can go on changing the weights) and hands it over; a writer thread
//! serializes it, writes it atomically (temporary file, fsync, rename, folder fsync) and only then deletes the
//! files it replaces. One write is in flight at a time: a save asked for while one is being written waits for
//! it, which keeps memory bounded and the files in the order they were asked for. A failed write is reported
//! at the next save or when the stage ends, and as with synchronous writes it leaves the old files whole.

use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{self, JoinHandle};

use crate::checkpoint::Encoded;
use crate::error::panic_message;
use crate::{Error, Result};

struct Job {
    encoded: Encoded,
    then_remove: Vec<PathBuf>,
}

/// The background writer of one stage; started at its first save.
#[derive(Default)]
pub(crate) struct CheckpointWriter {
    thread: Option<Running>,
}

struct Running {
    jobs: SyncSender<Job>,
    results: Receiver<Result<()>>,
    handle: JoinHandle<()>,
}

/// Writes one checkpoint, then deletes the files it replaces (never the one just written).
pub(crate) fn write_and_replace(encoded: Encoded, then_remove: &[PathBuf]) -> Result<()> {
    let path = encoded.path().to_path_buf();
    encoded.write()?;
    for old in then_remove.iter().filter(|old| **old != path) {
        match std::fs::remove_file(old) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Checkpoint { path: old.clone(), problem: format!("cannot be removed: {e}") }),
        }
    }
    Ok(())
}

impl CheckpointWriter {
    /// Queues a write; first reports a failure of an earlier one.
    pub fn submit(&mut self, encoded: Encoded, then_remove: Vec<PathBuf>) -> Result<()> {
        self.check()?;
        if self.thread.is_none() {
            self.thread = Some(Running::start()?);
        }
        let running = self.thread.as_ref().expect("started above");
        if running.jobs.send(Job { encoded, then_remove }).is_err() {
            // The thread only hangs up by dying; `finish` says why.
            return self.finish();
        }
        Ok(())
    }

    /// The first failure among the writes that have completed, if any.
    fn check(&mut self) -> Result<()> {
        match &self.thread {
            Some(running) => running.results.try_iter().collect(),
            None => Ok(()),
        }
    }

    /// Waits for every queued write; the first failure among them, if any.
    pub fn finish(&mut self) -> Result<()> {
        let Some(Running { jobs, results, handle }) = self.thread.take() else { return Ok(()) };
        drop(jobs);
        let joined = handle.join();
        let written: Result<()> = results.try_iter().collect();
        match joined {
            Ok(()) => written,
            Err(payload) => {
                written.and(Err(Error::Panic { hook: "checkpoint writer", message: panic_message(&*payload) }))
            }
        }
    }
}

impl Running {
    fn start() -> Result<Self> {
        // A rendezvous channel: `send` returns once the thread has taken the job, that is once the previous
        // write is done, so at most one snapshot waits beside the one being written.
        let (jobs, inbox) = sync_channel::<Job>(0);
        let (report, results) = std::sync::mpsc::channel();
        let handle = thread::Builder::new()
            .name("lightning-checkpoint-writer".into())
            .spawn(move || {
                for job in inbox {
                    let _ = report.send(write_and_replace(job.encoded, &job.then_remove));
                }
            })
            .map_err(|e| Error::Config(format!("could not start the checkpoint writer thread: {e}")))?;
        Ok(Running { jobs, results, handle })
    }
}

impl Drop for CheckpointWriter {
    /// A stage that ends without `finish` (it should not) still waits for its files.
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
