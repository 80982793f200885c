//! Data-parallel training on 2 CPU processes over Gloo, end to end: each scenario is this program run again as a
//! user's program would be (`ddp --scenario NAME --dir DIR`), whose `fit` starts its second process itself; the
//! scenario's processes write what they saw into DIR and this program checks it.
//!
//! A plain test binary (`harness = false`): the processes the launcher starts re-run the program with its
//! arguments, which a libtest harness would turn into a second run of every test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use lightning::loggers::CsvLogger;
use lightning::prelude::*;
use lightning::{Accelerator, Callback, DataLoader, Ddp, Error, ModelCheckpoint, Trainer};

/// `y = sin(x · w)` on 8 features, the same on every process.
fn data(n: i64) -> (Tensor, Tensor) {
    tch::manual_seed(7);
    let x = Tensor::rand([n, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let w = Tensor::randn([8, 1], (Kind::Float, Device::Cpu));
    let y = x.matmul(&w).sin();
    (x, y)
}

struct Net {
    vs: nn::VarStore,
    net: nn::Sequential,
    /// Fail on this (process rank, global step): "panic" or "kill".
    fault: Option<(usize, usize, &'static str)>,
    batches: usize,
}

impl Net {
    /// Seeded by `seed`: each process builds different weights unless told the same seed, and DDP must make
    /// them rank 0's.
    fn new(seed: i64) -> Self {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 8, 32, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", 32, 1, Default::default()));
        Net { vs, net, fault: None, batches: 0 }
    }

    fn weights(&self) -> Vec<(String, Tensor)> {
        let mut vars: Vec<_> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        vars
    }
}

#[lightning_module]
impl Net {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        if let Some((rank, step, how)) = self.fault {
            if ctx.global_rank() == rank && ctx.global_step() == step && how != "nan" {
                match how {
                    "kill" => unsafe {
                        signal_self(9);
                    },
                    // Ctrl-C reaching one process only: both must stop at the same batch boundary.
                    "interrupt" => unsafe {
                        signal_self(2);
                    },
                    _ => panic!("the training step of rank {rank} broke on purpose"),
                }
            }
        }
        self.batches += 1;
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_epoch(true).sync_dist(true);
        ctx.log("rank_synced", ctx.global_rank() as f64).on_step(false).on_epoch(true).sync_dist(true);
        ctx.log("rank_plain", ctx.global_rank() as f64).on_step(false).on_epoch(true);
        let rank = ctx.global_rank() as f64;
        ctx.log("rank_max", rank).on_step(false).on_epoch(true).reduce_fx(lightning::ReduceFx::Max).sync_dist(true);
        ctx.log("rank_min", rank).on_step(false).on_epoch(true).reduce_fx(lightning::ReduceFx::Min).sync_dist(true);
        // A NaN loss on one process only (after the same logging as the others: `sync_dist` values are
        // collectives every process must make), under `NonFinite::Skip`: both must skip the step.
        match self.fault {
            // By batch, not step: a skipped step does not advance the step count.
            Some((rank, batch, "nan")) if ctx.global_rank() == rank && self.batches == batch + 1 => loss * f64::NAN,
            _ => loss,
        }
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("val_loss", &loss).sync_dist(true);
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) -> Result<(), Error> {
        let ranks = ctx.all_gather(&Tensor::from(ctx.global_rank() as i64))?;
        assert_eq!(Vec::<i64>::try_from(&ranks).unwrap(), (0..ctx.world_size() as i64).collect::<Vec<_>>());
        Ok(())
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

/// A signal to this very process: SIGKILL (a rank that dies without a word) or SIGINT (Ctrl-C).
unsafe fn signal_self(signal: i32) {
    extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
        fn getpid() -> i32;
    }
    kill(getpid(), signal);
}

type Pairs = Loader<(Tensor, Tensor)>;

fn loaders(samples: i64, batch: usize) -> (Pairs, Pairs) {
    let (x, y) = data(samples + 32);
    let (vx, vy) = (x.narrow(0, samples, 32), y.narrow(0, samples, 32));
    let (x, y) = (x.narrow(0, 0, samples), y.narrow(0, 0, samples));
    let train = DataLoader::new((x, y)).batch_size(batch).shuffle(true).seed(3).build().unwrap();
    let val = DataLoader::new((vx, vy)).batch_size(8).build().unwrap();
    (train, val)
}

fn trainer(devices: usize, epochs: usize) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .devices(devices)
        .strategy(Ddp::default().timeout(Duration::from_secs(60)))
        .max_epochs(epochs)
        .seed(11)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .num_sanity_val_steps(0)
}

fn save(path: &Path, tensors: &[(String, Tensor)]) {
    Tensor::save_multi(tensors, path).unwrap();
}

fn load(path: &Path) -> Vec<(String, Tensor)> {
    let mut t = Tensor::load_multi(path).unwrap();
    t.sort_by(|a, b| a.0.cmp(&b.0));
    t
}

fn max_difference(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

/// What one process of a scenario leaves in DIR: `<what>-rank<r>`.
fn out(dir: &Path, what: &str, rank: usize) -> PathBuf {
    dir.join(format!("{what}-rank{rank}"))
}

fn write(dir: &Path, what: &str, rank: usize, text: &str) {
    std::fs::write(out(dir, what, rank), text).unwrap();
}

/// The rank of this process as the launcher set it (0 in the process that started the others).
fn my_rank() -> usize {
    std::env::var("RANK").ok().and_then(|r| r.parse().ok()).unwrap_or(0)
}

// ----- the scenarios, as programs -----

/// 2 processes x 8 samples per batch, with checkpoints and a CSV logger writing to a folder of each rank's own.
fn scenario_train(dir: &Path) {
    let rank = my_rank();
    // Each process builds different weights: rank 0's must win.
    let mut net = Net::new(100 + rank as i64);
    let (train, val) = loaders(256, 8);
    let root = dir.join(format!("files-rank{rank}"));
    let mut trainer = trainer(2, 3)
        .logger(CsvLogger::new(root.join("logs"), "run").unwrap())
        .callback(ModelCheckpoint::new(root.join("ckpt")).monitor("val_loss").save_last(true));
    trainer.fit(&mut net, train, val).unwrap();
    save(&out(dir, "weights", rank), &net.weights());
    let metrics: Vec<String> = trainer.callback_metrics().iter().map(|(k, v)| format!("{k}={v}")).collect();
    write(dir, "metrics", rank, &metrics.join("\n"));
    write(dir, "batches", rank, &net.batches.to_string());
    // A second stage reuses the processes and their connections.
    let (_, val) = loaders(256, 8);
    let tested = trainer.validate(&mut net, val).unwrap();
    write(dir, "validated", rank, &format!("{}", tested["val_loss"]));
}

/// 37 samples in batches of 4 on 2 processes: 19 and 18 samples, padded so both run 5 batches.
fn scenario_uneven(dir: &Path) {
    let rank = my_rank();
    let mut net = Net::new(1);
    let (x, y) = data(37);
    let train = DataLoader::new((x, y)).batch_size(4).build().unwrap();
    trainer(2, 2).limit_val_batches(0).fit(&mut net, train, None).unwrap();
    write(dir, "batches", rank, &net.batches.to_string());
}

/// Rank 1 fails in its third step (a panic, or killed): both processes must end with an error.
fn scenario_fault(dir: &Path, how: &'static str) {
    let rank = my_rank();
    let mut net = Net::new(1);
    net.fault = Some((1, 2, how));
    let (train, _) = loaders(256, 8);
    let started = Instant::now();
    let result = trainer(2, 2).limit_val_batches(0).fit(&mut net, train, None);
    let text = match result {
        Ok(()) => "ok".to_string(),
        Err(Error::PeerFailed { rank, cause }) => format!("peer {rank}: {cause}"),
        Err(Error::Interrupted { global_step, .. }) => format!("interrupted at step {global_step}"),
        Err(e) => format!("error: {e}"),
    };
    write(dir, "outcome", rank, &format!("{text}\n{:.1}", started.elapsed().as_secs_f64()));
    std::process::exit(if text == "ok" { 0 } else { 3 });
}

/// Rank 1 panics before it reaches `fit` (so before the processes meet): rank 0 must not wait for it.
fn scenario_early_death(_dir: &Path) {
    if my_rank() == 1 {
        panic!("rank 1 broke before fit");
    }
    let (train, _) = loaders(64, 8);
    // A long timeout: the run must end because the launcher saw its process die, not because time ran out.
    let mut trainer = trainer(2, 1).limit_val_batches(0).strategy(Ddp::default().timeout(Duration::from_secs(600)));
    let _ = trainer.fit(&mut Net::new(1), train, None);
}

/// Rank 1's loss is NaN at step 2 under `NonFinite::Skip`: both processes skip that step and finish, equal.
fn scenario_nan_skip(dir: &Path) {
    let rank = my_rank();
    let mut net = Net::new(1);
    net.fault = Some((1, 2, "nan"));
    let (train, _) = loaders(64, 8);
    let mut trainer = trainer(2, 1).limit_val_batches(0).nonfinite_loss(lightning::NonFinite::Skip);
    trainer.fit(&mut net, train, None).unwrap();
    save(&out(dir, "weights", rank), &net.weights());
    write(dir, "steps", rank, &trainer.global_step().to_string());
}

/// 2 processes train 1 epoch and save; a second fit resumes to epoch 3 and must equal 3 epochs straight.
fn scenario_resume(dir: &Path) {
    let rank = my_rank();
    let ckpt = dir.join("resume.ckpt");
    let (train, _) = loaders(128, 8);
    let mut straight = Net::new(1);
    trainer(2, 3).limit_val_batches(0).fit(&mut straight, train, None).unwrap();

    let (train, _) = loaders(128, 8);
    let mut first = Net::new(1);
    let mut t = trainer(2, 1).limit_val_batches(0);
    t.fit(&mut first, train, None).unwrap();
    let saver = SaveAt(ckpt.clone());
    // Rank 0 writes the file; every process reads it back.
    let mut t = trainer(2, 1).limit_val_batches(0).callback(saver);
    let (train, _) = loaders(128, 8);
    let mut again = Net::new(1);
    t.fit(&mut again, train, None).unwrap();

    let (train, _) = loaders(128, 8);
    let mut resumed = Net::new(999);
    trainer(2, 3).limit_val_batches(0).fit_from(&mut resumed, train, None, &ckpt).unwrap();
    save(&out(dir, "straight", rank), &straight.weights());
    save(&out(dir, "resumed", rank), &resumed.weights());
}

/// Saves a checkpoint when each training epoch ends.
struct SaveAt(PathBuf);

impl Callback for SaveAt {
    fn on_train_epoch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn lightning::AnyModule,
    ) -> lightning::CallbackResult {
        ctx.save_checkpoint(self.0.clone());
        Ok(())
    }
}

// ----- the checks, in the test process -----

fn run_scenario(name: &str) -> (PathBuf, std::process::ExitStatus, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario", name, "--dir"])
        .arg(dir.path())
        .env_remove("RANK")
        .status()
        .unwrap();
    (dir.path().to_path_buf(), status, dir)
}

fn read(dir: &Path, what: &str, rank: usize) -> String {
    std::fs::read_to_string(out(dir, what, rank)).unwrap_or_else(|e| panic!("{what} of rank {rank}: {e}"))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

fn check_train() {
    let (dir, status, _keep) = run_scenario("train");
    assert!(status.success(), "the 2-process run failed: {status}");
    // The two copies end bitwise equal: every step applied the same averaged gradient.
    let (w0, w1) = (load(&out(&dir, "weights", 0)), load(&out(&dir, "weights", 1)));
    assert_eq!(max_difference(&w0, &w1), 0.0, "the processes' weights differ");

    // One process with the same global batch (16) over the same samples ends at the same weights: the mean of
    // two 8-sample means is the 16-sample mean, up to float rounding in the different order of summation
    // (1e-5 after 48 SGD steps; the weights are ~0.1-1).
    let mut single = Net::new(100);
    let (train, val) = loaders(256, 16);
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(3)
        .seed(11)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .num_sanity_val_steps(0)
        .fit(&mut single, train, val)
        .unwrap();
    let difference = max_difference(&single.weights(), &w0);
    assert!(difference < 1e-5, "2 processes x batch 8 differ from 1 process x batch 16 by {difference}");

    // sync_dist: the mean over both processes on both; without it, each its own.
    let (m0, m1) = (read(&dir, "metrics", 0), read(&dir, "metrics", 1));
    assert_eq!(metric(&m0, "rank_synced"), 0.5);
    assert_eq!(metric(&m1, "rank_synced"), 0.5);
    assert_eq!((metric(&m0, "rank_plain"), metric(&m1, "rank_plain")), (0.0, 1.0));
    for m in [&m0, &m1] {
        assert_eq!((metric(m, "rank_max"), metric(m, "rank_min")), (1.0, 0.0), "reduce_fx with sync_dist");
    }
    assert_eq!(metric(&m0, "val_loss"), metric(&m1, "val_loss"));
    assert_eq!(metric(&m0, "train_loss"), metric(&m1, "train_loss"));
    // Each process ran half the batches: 256 samples / 2 / 8 per batch, 3 epochs.
    assert_eq!(read(&dir, "batches", 0), "48");
    assert_eq!(read(&dir, "batches", 1), "48");
    assert_eq!(read(&dir, "validated", 0), read(&dir, "validated", 1));

    // Checkpoints and logs: rank 0's folder only.
    let files = |rank: usize| -> Vec<String> {
        let root = dir.join(format!("files-rank{rank}"));
        let mut found = Vec::new();
        for sub in ["ckpt", "logs"] {
            if let Ok(entries) = std::fs::read_dir(root.join(sub)) {
                found.extend(entries.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()));
            }
        }
        found
    };
    assert!(files(0).iter().any(|f| f == "last.ckpt"), "rank 0 wrote {:?}", files(0));
    assert!(files(0).iter().any(|f| f == "run"), "rank 0 wrote {:?}", files(0));
    assert!(files(1).is_empty(), "rank 1 wrote {:?}", files(1));
}

fn check_uneven() {
    let (dir, status, _keep) = run_scenario("uneven");
    assert!(status.success(), "the uneven run failed: {status}");
    assert_eq!(read(&dir, "batches", 0), "10");
    assert_eq!(read(&dir, "batches", 1), "10");
}

fn check_fault(how: &str) {
    let (dir, status, _keep) = run_scenario(how);
    assert!(!status.success(), "a run with a failing process succeeded");
    let rank0 = read(&dir, "outcome", 0);
    match how {
        "panic" => {
            assert!(rank0.starts_with("peer 1: ") && rank0.contains("broke on purpose"), "rank 0 ended with: {rank0}");
            let rank1 = read(&dir, "outcome", 1);
            assert!(rank1.contains("broke on purpose"), "rank 1 ended with: {rank1}");
        }
        "interrupt" => {
            // Rank 1 saw the signal during step 2; both stop at the same boundary, one batch later.
            let rank1 = read(&dir, "outcome", 1);
            let first = |text: &str| text.lines().next().unwrap_or_default().to_string();
            assert_eq!(first(&rank0), "interrupted at step 4", "rank 0");
            assert_eq!(first(&rank1), "interrupted at step 4", "rank 1");
        }
        _ => assert!(rank0.starts_with("error: distributed: rank 0:"), "rank 0 ended with: {rank0}"),
    }
}

/// torchrun starts both processes (`--no-python` runs this program itself): they join its rendezvous instead of
/// launching, as several nodes do.
fn check_torchrun() {
    let Some(python) = lightning_build::managed_env_dir().map(|d| d.join("bin").join("python")).filter(|p| p.exists())
    else {
        println!("no managed Python environment (make setup): the torchrun check is skipped");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new(python)
        .args(["-m", "torch.distributed.run", "--no-python", "--nproc-per-node", "2", "--master-port", "29561"])
        .arg(std::env::current_exe().unwrap())
        .args(["--scenario", "uneven", "--dir"])
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(status.success(), "the torchrun run failed: {status}");
    assert_eq!(read(dir.path(), "batches", 0), "10");
    assert_eq!(read(dir.path(), "batches", 1), "10");
}

fn check_nan_skip() {
    let (dir, status, _keep) = run_scenario("nan_skip");
    assert!(status.success(), "a NaN loss on one process hung or failed the run: {status}");
    // 64 samples / 2 processes / 8 per batch = 4 batches; the NaN one skipped on both.
    assert_eq!(read(&dir, "steps", 0), "3");
    assert_eq!(read(&dir, "steps", 1), "3");
    assert_eq!(max_difference(&load(&out(&dir, "weights", 0)), &load(&out(&dir, "weights", 1))), 0.0);
}

fn check_early_death() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["--scenario", "early_death", "--dir"])
        .arg(dir.path())
        .env_remove("RANK")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("the process of rank 1 ended") && stderr.contains("before the processes met"), "{stderr}");
}

fn check_resume() {
    let (dir, status, _keep) = run_scenario("resume");
    assert!(status.success(), "the resume run failed: {status}");
    for rank in 0..2 {
        let (straight, resumed) = (load(&out(&dir, "straight", rank)), load(&out(&dir, "resumed", rank)));
        assert_eq!(max_difference(&straight, &resumed), 0.0, "rank {rank}: resumed differs from straight");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--scenario") {
        let name = args[at + 1].clone();
        let dir = PathBuf::from(&args[args.iter().position(|a| a == "--dir").unwrap() + 1]);
        match name.as_str() {
            "train" => scenario_train(&dir),
            "uneven" => scenario_uneven(&dir),
            "panic" => scenario_fault(&dir, "panic"),
            "kill" => scenario_fault(&dir, "kill"),
            "interrupt" => scenario_fault(&dir, "interrupt"),
            "nan_skip" => scenario_nan_skip(&dir),
            "early_death" => scenario_early_death(&dir),
            "resume" => scenario_resume(&dir),
            other => panic!("no scenario {other}"),
        }
        return;
    }
    if !lightning::distributed::available() {
        println!("distributed training is not in this build (no Gloo headers): the ddp tests are skipped");
        return;
    }
    let checks: [(&str, fn()); 9] = [
        ("ddp_train_equals_one_process", check_train),
        ("ddp_uneven_dataset", check_uneven),
        ("ddp_panicking_rank", || check_fault("panic")),
        ("ddp_killed_rank", || check_fault("kill")),
        ("ddp_interrupt_stops_every_rank_together", || check_fault("interrupt")),
        ("ddp_resume", check_resume),
        ("ddp_nan_loss_skipped_by_every_rank", check_nan_skip),
        ("ddp_joins_torchrun", check_torchrun),
        ("ddp_a_process_dead_before_meeting_ends_the_run", check_early_death),
    ];
    // `cargo test NAME` passes NAME on: run the checks whose name holds it (libtest's flags are ignored).
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut failed = 0;
    for (name, check) in checks {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let started = Instant::now();
        let result = std::panic::catch_unwind(check);
        let verdict = if result.is_ok() { "ok" } else { "FAILED" };
        failed += usize::from(result.is_err());
        println!("test {name} ... {verdict} ({:.1}s)", started.elapsed().as_secs_f64());
    }
    if failed > 0 {
        panic!("{failed} distributed test(s) failed");
    }
}
