//! Training killed with SIGKILL at random moments, again and again, while it writes checkpoints every step: the
//! newest checkpoint always loads, no partial file passes for a checkpoint, each new process resumes from what
//! the killed one left, and the run finished from the last one ends exactly where an uninterrupted run ends.

mod common;

use std::any::Any;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::checkpointing::{assert_same_weights, checkpoint_files, partial_files, train_loader, weights, Net, Opt};
use lightning::prelude::*;
use lightning::{Accelerator, AnyModule, CallbackResult, LoadFromCheckpoint, Trainer};

/// The folder the child trains in.
const DIR_VAR: &str = "LIGHTNING_CRASH_TEST_DIR";
/// Where the child stops (unset: it trains until killed).
const STEPS_VAR: &str = "LIGHTNING_CRASH_TEST_MAX_STEPS";
/// The line the child prints once it has written its first checkpoint.
const STARTED: &str = "crash-child: started";
const SEED: u64 = 21;
const KILLS: usize = 22;

/// After every step: `step-<n>.ckpt` (replacing the one two steps older), then `last.ckpt`. Reports on stdout once
/// this process has written a checkpoint.
struct EveryStep {
    dir: PathBuf,
    /// The step of this process's first request: reported once `last.ckpt` holds it or a later one.
    requested: Option<usize>,
    reported: bool,
}

impl Callback for EveryStep {
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        if let (Some(first), false) = (self.requested, self.reported) {
            // Written behind the training thread: reported once it is on disk, so that a kill after the report
            // always finds this process's progress.
            let on_disk = lightning::Checkpoint::read(self.dir.join("last.ckpt")).map_or(0, |c| c.global_step());
            if on_disk >= first {
                let mut out = std::io::stdout();
                writeln!(out, "{STARTED}")?;
                out.flush()?;
                self.reported = true;
            }
        }
        let step = ctx.global_step();
        let old = step.checked_sub(2).map(|s| self.dir.join(step_file(s))).into_iter().collect();
        ctx.save_checkpoint_replacing(self.dir.join(step_file(step)), old);
        ctx.save_checkpoint(self.dir.join("last.ckpt"));
        self.requested.get_or_insert(step);
        Ok(())
    }
}

fn step_file(step: usize) -> String {
    format!("step-{step:06}.ckpt")
}

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .seed(SEED)
        .limit_val_batches(0)
}

/// The child: trains in `$LIGHTNING_CRASH_TEST_DIR`, resuming from `last.ckpt` when there is one, until killed
/// (or until `$LIGHTNING_CRASH_TEST_MAX_STEPS`, then writes `final.safetensors`).
#[test]
#[ignore = "the child process of `killed_training_always_leaves_a_loadable_checkpoint`"]
fn crash_child() {
    let Some(dir) = std::env::var_os(DIR_VAR).map(PathBuf::from) else {
        eprintln!("{DIR_VAR} is not set: nothing to do");
        return;
    };
    let max_steps: Option<usize> = std::env::var(STEPS_VAR).ok().map(|s| s.parse().unwrap());
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    let callback = EveryStep { dir: dir.clone(), requested: None, reported: false };
    let mut trainer = match max_steps {
        Some(steps) => trainer().max_steps(steps),
        None => trainer().max_epochs(1_000_000),
    }
    .callback(callback);
    let last = dir.join("last.ckpt");
    if last.exists() {
        trainer.fit_from(&mut module, train_loader(SEED), None, &last).unwrap();
    } else {
        trainer.fit(&mut module, train_loader(SEED), None).unwrap();
    }
    module.vs.save(dir.join("final.safetensors")).unwrap();
}

/// A child process that is killed and reaped when dropped, whatever happens to the test; its stdout is watched
/// for the start line and its stderr kept for messages.
struct ChildGuard {
    child: Child,
    started: mpsc::Receiver<()>,
    stderr: Arc<Mutex<String>>,
}

impl ChildGuard {
    fn spawn(dir: &Path, max_steps: Option<usize>) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "crash_child", "--nocapture", "--include-ignored"])
            .env(DIR_VAR, dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match max_steps {
            Some(steps) => command.env(STEPS_VAR, steps.to_string()),
            None => command.env_remove(STEPS_VAR),
        };
        let mut child = command.spawn().unwrap();
        let (tx, started) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains(STARTED) {
                    let _ = tx.send(());
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let kept = stderr.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                let mut kept = kept.lock().unwrap();
                kept.push_str(&String::from_utf8_lossy(&buf[..n]));
                // Keep the tail: the progress output is long.
                if kept.len() > 64 * 1024 {
                    let cut = kept.len() - 32 * 1024;
                    let cut = (cut..kept.len()).find(|i| kept.is_char_boundary(*i)).unwrap_or(0);
                    kept.drain(..cut);
                }
            }
        });
        ChildGuard { child, started, stderr }
    }

    fn stderr_tail(&self) -> String {
        let all = self.stderr.lock().unwrap();
        let start = all.len().saturating_sub(3000);
        let start = (start..all.len()).find(|i| all.is_char_boundary(*i)).unwrap_or(0);
        all[start..].to_string()
    }

    /// Waits for the start line; panics with the child's messages if it ends or stays silent.
    fn wait_started(&mut self) {
        match self.started.recv_timeout(Duration::from_secs(60)) {
            Ok(()) => {}
            Err(e) => {
                let status = self.child.try_wait().unwrap();
                panic!("the child did not start ({e}; status {status:?}):\n{}", self.stderr_tail());
            }
        }
    }

    fn kill(&mut self) -> ExitStatus {
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// SplitMix64: the delays, the same every run.
struct Delays(u64);

impl Delays {
    fn next_ms(&mut self, min: u64, max: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        min + (z ^ (z >> 31)) % (max - min + 1)
    }
}

/// What a killed child left: `last.ckpt` loads and is newer than before; every `*.ckpt` loads; the newest step
/// file is `last.ckpt`'s step or the one after (a kill between the two writes); partial writes are hidden files
/// no `*.ckpt` listing picks up. Returns `last.ckpt`'s global step and the number of partial files.
fn check_leftovers(dir: &Path, previous_step: usize, round: usize) -> (usize, usize) {
    let last = dir.join("last.ckpt");
    let checkpoint = Checkpoint::read(&last).unwrap_or_else(|e| panic!("round {round}: the newest checkpoint: {e}"));
    let step = checkpoint.global_step();
    assert!(step > previous_step, "round {round}: the child moved on from step {previous_step} (now {step})");
    Net::mlp(5.0, Opt::AdamStepLr)
        .load_from_checkpoint(&last)
        .unwrap_or_else(|e| panic!("round {round}: weights of the newest checkpoint: {e}"));

    let files = checkpoint_files(dir);
    let mut step_files = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let read = Checkpoint::read(file).unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
        if let Some(n) = name.strip_prefix("step-").and_then(|n| n.strip_suffix(".ckpt")) {
            let n: usize = n.parse().unwrap();
            assert_eq!(read.global_step(), n, "round {round}: {name}");
            step_files.push(n);
        } else {
            assert_eq!(name, "last.ckpt", "round {round}: an unexpected checkpoint file");
        }
    }
    let newest = *step_files.iter().max().unwrap_or_else(|| panic!("round {round}: no step file in {files:?}"));
    assert!(newest == step || newest == step + 1, "round {round}: newest step file {newest}, last.ckpt {step}");
    assert!(step_files.len() <= 3, "round {round}: old step files are replaced: {step_files:?}");

    let partial = partial_files(dir);
    for name in &partial {
        assert!(name.starts_with('.'), "round {round}: a partial write is a hidden file: {name}");
        assert!(!files.iter().any(|f| f.file_name().unwrap().to_string_lossy() == *name));
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let known = name.ends_with(".ckpt") || name.ends_with(".ckpt-partial");
        assert!(known, "round {round}: an unexpected file {name}");
    }
    (step, partial.len())
}

#[test]
fn killed_training_always_leaves_a_loadable_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let mut delays = Delays(0x5EED_CAFE);
    let mut step = 0;
    let mut partial = 0;
    for round in 0..KILLS {
        let mut child = ChildGuard::spawn(dir.path(), None);
        child.wait_started();
        std::thread::sleep(Duration::from_millis(delays.next_ms(3, 300)));
        let status = child.kill();
        {
            use std::os::unix::process::ExitStatusExt;
            assert_eq!(status.signal(), Some(9), "round {round}: the child ended on its own:\n{}", child.stderr_tail());
        }
        drop(child);
        (step, partial) = check_leftovers(dir.path(), step, round);
    }
    eprintln!(
        "{KILLS} kills; the last checkpoint is at step {step}; {partial} partial file(s) left by kills mid-write"
    );

    // A last child resumes from what the killed ones left and finishes the run.
    let target = step + 20;
    let mut child = ChildGuard::spawn(dir.path(), Some(target));
    let status = child.child.wait().unwrap();
    assert!(status.success(), "the finishing child failed ({status}):\n{}", child.stderr_tail());
    let checkpoint = Checkpoint::read(dir.path().join("last.ckpt")).unwrap();
    assert_eq!(checkpoint.global_step(), target);

    // ...exactly where an uninterrupted run of as many steps ends.
    let mut straight = Net::mlp(0.0, Opt::AdamStepLr);
    trainer().max_steps(target).fit(&mut straight, train_loader(SEED), None).unwrap();
    let mut finished = Net::mlp(8.0, Opt::AdamStepLr);
    finished.vs.load(dir.path().join("final.safetensors")).unwrap();
    assert_same_weights(&weights(&finished.vs), &weights(&straight.vs), "killed and resumed vs uninterrupted");
}
