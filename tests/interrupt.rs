//! Ctrl-C and SIGTERM, for real: a child process trains, gets SIGINT (or SIGTERM), stops at a batch boundary with
//! the end hooks run and a checkpoint left that resumes; a second one exits at once. Between runs, and with
//! `handle_interrupts(false)`, the process's own handling is left alone.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lightning::prelude::*;
use lightning::{Accelerator, AnyModule, CallbackResult, Checkpoint, Error, OnExceptionCheckpoint, Trainer};

const DIR_VAR: &str = "LIGHTNING_INTERRUPT_TEST_DIR";
const SLOW_VAR: &str = "LIGHTNING_INTERRUPT_TEST_SLOW_MS";
/// `handled` (the default), `unhandled` (`handle_interrupts(false)`) or `after` (a short run, then SIGINT to
/// itself once it has returned).
const MODE_VAR: &str = "LIGHTNING_INTERRUPT_TEST_MODE";

struct Line {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module]
impl Line {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.linear.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn teardown(&mut self, stage: Stage) {
        println!("teardown {stage}");
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

fn line() -> Line {
    tch::manual_seed(0);
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root(), 4, 1, Default::default());
    Line { vs, linear }
}

fn data() -> Loader<(Tensor, Tensor)> {
    let x = Tensor::rand([64, 4], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist(-1, true, Kind::Float);
    lightning::DataLoader::new((x, y)).batch_size(8).build().unwrap()
}

/// Tells the parent that training runs, then slows each batch down so that the run is still going when the
/// signal comes.
struct Pace {
    announced: bool,
    sleep: Duration,
}

impl Callback for Pace {
    fn on_train_batch_end(
        &mut self,
        _: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
    ) -> CallbackResult {
        if !self.announced {
            self.announced = true;
            println!("started");
        }
        std::thread::sleep(self.sleep);
        Ok(())
    }

    fn on_exception(&mut self, _: &mut Ctx, _: &mut dyn AnyModule, error: &Error) -> CallbackResult {
        println!("on_exception: {error}");
        Ok(())
    }
}

/// The child's side: trains "forever" until interrupted. Run only by the tests below.
#[test]
#[ignore = "run as a child process by the interrupt tests"]
fn child_trains_until_interrupted() {
    let Ok(dir) = std::env::var(DIR_VAR) else { return };
    let sleep = Duration::from_millis(std::env::var(SLOW_VAR).ok().and_then(|v| v.parse().ok()).unwrap_or(5));
    let mode = std::env::var(MODE_VAR).unwrap_or_default();
    let mut module = line();
    if mode == "after" {
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_epochs(1)
            .accelerator(Accelerator::Cpu)
            .enable_progress_bar(false);
        trainer.fit(&mut module, data(), None).unwrap();
        println!("started");
        // The run has returned: Ctrl-C is the process's again, and ends it.
        let me = std::process::id().to_string();
        Command::new("kill").args(["-INT", &me]).status().unwrap();
        std::thread::sleep(Duration::from_secs(30));
        println!("still alive");
        return;
    }
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .handle_interrupts(mode != "unhandled")
        .max_epochs(100_000)
        .accelerator(Accelerator::Cpu)
        .seed(3)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Pace { announced: false, sleep })
        .callback(OnExceptionCheckpoint::new(&dir));
    let result = trainer.fit(&mut module, data(), None);
    println!("result: {result:?}");
    assert!(matches!(result, Err(Error::Interrupted { .. })), "{result:?}");
}

/// Kills the child if a test fails before it exits.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(dir: &std::path::Path, slow_ms: u64) -> (Reap, BufReader<std::process::ChildStdout>) {
    spawn_child_in(dir, slow_ms, "handled")
}

fn spawn_child_in(dir: &std::path::Path, slow_ms: u64, mode: &str) -> (Reap, BufReader<std::process::ChildStdout>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_trains_until_interrupted", "--include-ignored", "--nocapture", "--test-threads", "1"])
        .env(DIR_VAR, dir)
        .env(SLOW_VAR, slow_ms.to_string())
        .env(MODE_VAR, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "the child ended before training started");
        // libtest prints "test <name> ... " without a newline, so the marker may share its line.
        if line.trim_end().ends_with("started") {
            break;
        }
    }
    (Reap(child), stdout)
}

fn sigint(child: &Child) {
    signal(child, "-INT");
}

fn signal(child: &Child, which: &str) {
    let status = Command::new("kill").args([which, &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

/// The signal that ended the process, if one did.
fn killed_by(status: std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

fn wait(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(start.elapsed() < limit, "the child did not exit within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for the child to exit; its status and the rest of what it printed.
fn finish(
    child: &mut Reap,
    stdout: &mut BufReader<std::process::ChildStdout>,
    limit: Duration,
) -> (std::process::ExitStatus, String) {
    let status = wait(&mut child.0, limit);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    (status, rest)
}

#[test]
fn ctrl_c_stops_at_a_batch_boundary_and_leaves_a_checkpoint_that_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_child(dir.path(), 5);
    std::thread::sleep(Duration::from_millis(100));
    sigint(&child.0);
    let (status, rest) = finish(&mut child, &mut stdout, Duration::from_secs(60));
    assert!(status.success(), "the child's run must end with Error::Interrupted: {rest}");
    assert!(rest.contains("on_exception: interrupted by Ctrl-C"), "{rest}");
    assert!(rest.contains("teardown fit"), "the end hooks ran: {rest}");

    let path = dir.path().join("on_exception.ckpt");
    let checkpoint = Checkpoint::read(&path).unwrap();
    let stopped_at = checkpoint.global_step();
    assert!(stopped_at > 0);

    let mut module = line();
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(checkpoint.epoch() + 2)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false);
    trainer.fit_from(&mut module, data(), None, &path).unwrap();
    assert!(trainer.global_step() > stopped_at, "the run went on from step {stopped_at}");
    assert_eq!(trainer.current_epoch(), checkpoint.epoch() + 2);
}

#[test]
fn a_second_ctrl_c_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    // Each batch now takes 30 s: only a second Ctrl-C can end the child quickly.
    let (mut child, _stdout) = spawn_child(dir.path(), 30_000);
    sigint(&child.0);
    std::thread::sleep(Duration::from_millis(200));
    sigint(&child.0);
    let status = wait(&mut child.0, Duration::from_secs(20));
    assert_eq!(status.code(), Some(130), "exited with the code of SIGINT");
}

#[test]
fn sigterm_stops_like_ctrl_c_and_leaves_a_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_child(dir.path(), 5);
    std::thread::sleep(Duration::from_millis(100));
    signal(&child.0, "-TERM");
    let (status, rest) = finish(&mut child, &mut stdout, Duration::from_secs(60));
    assert!(status.success(), "the child's run must end with Error::Interrupted: {rest}");
    assert!(rest.contains("on_exception: interrupted by SIGTERM"), "{rest}");
    assert!(rest.contains("teardown fit"), "the end hooks ran: {rest}");
    Checkpoint::read(dir.path().join("on_exception.ckpt")).unwrap();
}

#[test]
fn after_a_run_ctrl_c_is_the_programs_own_again() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_child_in(dir.path(), 0, "after");
    let (status, rest) = finish(&mut child, &mut stdout, Duration::from_secs(20));
    assert_eq!(killed_by(status), Some(2), "SIGINT ended the process at once ({status:?}): {rest}");
    assert!(!rest.contains("still alive"), "{rest}");
}

#[test]
fn with_handle_interrupts_off_ctrl_c_is_left_to_the_program() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, mut stdout) = spawn_child_in(dir.path(), 5, "unhandled");
    sigint(&child.0);
    let (status, rest) = finish(&mut child, &mut stdout, Duration::from_secs(20));
    assert_eq!(killed_by(status), Some(2), "the default action of SIGINT ended it ({status:?}): {rest}");
    assert!(!rest.contains("on_exception"), "the run did not see the signal: {rest}");
    assert!(!dir.path().join("on_exception.ckpt").exists());
}
