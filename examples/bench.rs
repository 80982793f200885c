//! The benchmark harness: the same model, data, optimizer and step count trained several ways — a hand-written
//! tch loop with tch's own Adam (the floor), the same loop stepping this crate's `Optimizer` (so that the
//! Trainer's difference to it is the framework alone), our Trainer with its defaults on, our Trainer with
//! everything optional off, and PyTorch Lightning (defaults on, and extras off, through
//! `benches/lightning_bench.py` in the managed Python environment) — printing the median per-step time of several
//! repetitions and each one's ratio to the floor. The Rust variants take turns repetition by repetition.
//! Then the data path: batches that cost about 1 ms of CPU work to prepare, in-line versus on two worker threads;
//! and what writing a checkpoint costs, with the share of its integrity checks (checksums and the read-back).
//!
//! ```text
//! cargo run --release --example bench                 # CPU, and CUDA too when there is one
//! cargo run --release --example bench -- --json       # the same, as JSON
//! cargo run --example bench -- --smoke                # a few steps of everything (what CI runs)
//! ```
//!
//! Options: `--device cpu|cuda|all` (default all available), `--reps N`, `--no-lightning`; for profiling one variant
//! alone (`valgrind --tool=callgrind`): `--model mlp|wide`, `--only tch|ours|defaults|minimal|profiled|defaults-profiled`,
//! `--steps N` (the profiled variants print their profiler's table on standard error).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, ModelCheckpoint, NonFinite, Trainer};
use serde::Serialize;
use tch::nn::OptimizerConfig;

/// One model's shape and the steps it trains for.
#[derive(Clone, Debug, Serialize)]
struct Workload {
    model: &'static str,
    inputs: i64,
    width: i64,
    depth: i64,
    batch: i64,
    steps: usize,
}

#[derive(Clone, Debug, Serialize)]
struct Measurement {
    framework: String,
    model: String,
    setting: String,
    device: String,
    steps: usize,
    per_step_ms: Vec<f64>,
    median_ms: f64,
    ratio_to_floor: Option<f64>,
    /// Our Trainer's time over the hand-written loop that steps the same optimizer (ours): the framework's cost.
    ratio_to_same_loop: Option<f64>,
    note: Option<String>,
}

#[derive(Debug, Serialize)]
struct DataPath {
    prepare_ms: f64,
    step_ms: f64,
    inline_steps_per_s: f64,
    workers_steps_per_s: f64,
    speedup: f64,
}

/// What writing a checkpoint costs, and how much of it the integrity checks are: the CRC32C of every byte when
/// the file is made, and the read-back with its CRC32C before the rename.
#[derive(Debug, Serialize)]
struct CheckpointCost {
    file_mb: f64,
    writes: usize,
    /// Median ms per step of a run without checkpoints and of the same run writing `writes` in line.
    plain_step_ms: f64,
    checkpointing_step_ms: f64,
    /// What one write adds to the run, from the two medians.
    per_write_ms: f64,
    /// CRC32C over the file's bytes, once (a write computes it twice: making the file and checking it).
    crc32c_ms: f64,
    /// Reading the just-written file back (from the page cache).
    read_back_ms: f64,
    /// (2 × crc32c + read-back) over the write.
    checks_share: f64,
}

#[derive(Debug, Serialize)]
struct Report {
    machine: String,
    results: Vec<Measurement>,
    data_path: Option<DataPath>,
    checkpoint: Option<CheckpointCost>,
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The network: `depth` hidden layers of `width` with ReLU, then one output.
fn network(vs: &nn::VarStore, w: &Workload) -> nn::Sequential {
    let root = vs.root();
    let mut net = nn::seq();
    let mut inputs = w.inputs;
    for i in 0..w.depth {
        net = net.add(nn::linear(&root / format!("l{i}"), inputs, w.width, Default::default())).add_fn(|x| x.relu());
        inputs = w.width;
    }
    net.add(nn::linear(&root / "out", inputs, 1, Default::default()))
}

/// Fixed data, as the Python side makes it: x ~ U[0, 1), y = the mean of x's features; 100 batches.
fn data(w: &Workload) -> (Tensor, Tensor) {
    tch::manual_seed(0);
    let x = Tensor::rand([w.batch * 100, w.inputs], (Kind::Float, Device::Cpu));
    let y = x.mean_dim(-1, true, Kind::Float);
    (x, y)
}

/// Which optimizer a hand-written loop steps.
#[derive(Clone, Copy, PartialEq)]
enum LoopOptimizer {
    /// tch's own `nn::Adam` (libtorch's C++ Adam): the floor.
    Tch,
    /// This crate's `Optimizer::adam`, the one the Trainer runs: the loop minus the framework.
    Ours,
}

/// The loop a tch user writes by hand: with tch's own Adam it is the floor; with ours, the difference to the
/// Trainer is the framework alone.
fn hand_written(w: &Workload, device: Device, steps: usize, optimizer: LoopOptimizer) -> lightning::Result<f64> {
    let (x, y) = data(w);
    let batches: Vec<(Tensor, Tensor)> =
        (0..100).map(|i| (x.narrow(0, i * w.batch, w.batch), y.narrow(0, i * w.batch, w.batch))).collect();
    let vs = nn::VarStore::new(device);
    let net = network(&vs, w);
    let mut tch_adam = nn::Adam::default().build(&vs, 1e-3)?;
    let mut our_adam = Optimizer::adam(&vs, 1e-3);
    let mut run = |steps: usize| -> lightning::Result<()> {
        for (bx, by) in batches.iter().cycle().take(steps) {
            let (bx, by) = (bx.f_to_device(device)?, by.f_to_device(device)?);
            let loss = net.forward(&bx).f_mse_loss(&by, Reduction::Mean)?;
            if optimizer == LoopOptimizer::Tch {
                tch_adam.zero_grad();
                loss.f_backward()?;
                tch_adam.step();
            } else {
                our_adam.zero_grad()?;
                loss.f_backward()?;
                our_adam.step()?;
            }
        }
        Ok(())
    };
    run(50)?;
    sync(device);
    let start = Instant::now();
    run(steps)?;
    sync(device);
    Ok(start.elapsed().as_secs_f64() * 1e3 / steps as f64)
}

struct Bench {
    vs: nn::VarStore,
    net: nn::Sequential,
    log: bool,
}

#[lightning_module]
impl Bench {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        if self.log {
            ctx.log("loss", &loss);
        }
        loss
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

/// Our Trainer: `defaults` = the loss logged every step and the Trainer's defaults (TensorBoard and CSV loggers,
/// progress reporting, the model summary, a checkpoint at the end of each epoch); otherwise everything optional
/// off.
///
/// `profiled` adds `SimpleProfiler` (run only on its own, `--only profiled`: its cost is read from instruction
/// counts, which wall time on a shared machine is too noisy to show).
fn trainer_run(w: &Workload, device: Device, steps: usize, defaults: bool, profiled: bool) -> lightning::Result<f64> {
    let accelerator = match device {
        Device::Cuda(i) => Accelerator::Cuda(i),
        _ => Accelerator::Cpu,
    };
    let scratch = tempfile::tempdir()?;
    let run = |steps: usize| -> lightning::Result<f64> {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = network(&vs, w);
        let mut module = Bench { vs, net, log: defaults };
        let loader = DataLoader::new(data(w)).batch_size(w.batch as usize).build()?;
        let mut trainer = Trainer::new().max_steps(steps).accelerator(accelerator);
        trainer = if defaults {
            // What `Trainer::new()` gives: TensorBoard and CSV loggers and a checkpoint of the last epoch under
            // `lightning_logs/version_N/`, progress reporting, the model summary, the non-finite loss check.
            trainer.default_root_dir(scratch.path())
        } else {
            trainer
                .logger(false)
                .enable_checkpointing(false)
                .enable_progress_bar(false)
                .enable_model_summary(false)
                .nonfinite_loss(NonFinite::Off)
        };
        // The steps alone, as the hand-written loop is timed: from `on_train_start` to `on_train_end`, so that
        // what a fit does once (loggers' files, the summary, the last checkpoint reaching the disk) is not
        // spread over the steps. The whole fit is timed too, for that once-per-fit cost.
        if profiled {
            // Its table goes to a file: on standard output it would break `--json`.
            trainer = trainer.profiler(lightning::SimpleProfiler::new().to_file(scratch.path().join("profile.txt")));
        }
        let stopwatch = Stopwatch { device, times: Default::default() };
        trainer = trainer.callback(stopwatch.clone());
        let start = Instant::now();
        trainer.fit(&mut module, loader, None)?;
        sync(device);
        let whole = start.elapsed().as_secs_f64() * 1e3;
        let steps_ms = stopwatch.elapsed_ms().unwrap_or(whole);
        Ok(steps_ms / steps as f64)
    };
    run(50)?;
    let per_step = run(steps)?;
    if profiled {
        // The timed run's table (the warm-up's was overwritten), on standard error: what each hook and section
        // of this variant costs.
        eprintln!("{}", std::fs::read_to_string(scratch.path().join("fit-profile.txt"))?);
    }
    Ok(per_step)
}

/// When training started and ended (`on_train_start`, `on_train_end`), shared with the bench; the run's device
/// is synchronized first, so that the times cover the work queued on it.
#[derive(Clone)]
struct Stopwatch {
    device: Device,
    times: std::sync::Arc<std::sync::Mutex<(Option<Instant>, Option<Instant>)>>,
}

impl Stopwatch {
    fn elapsed_ms(&self) -> Option<f64> {
        let (start, end) = *self.times.lock().ok()?;
        Some(end?.duration_since(start?).as_secs_f64() * 1e3)
    }
}

impl lightning::Callback for Stopwatch {
    fn on_train_start(&mut self, _: &mut Ctx, _: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
        sync(self.device);
        self.times.lock().map_err(|_| "stopwatch lock")?.0 = Some(Instant::now());
        Ok(())
    }

    fn on_train_end(&mut self, _: &mut Ctx, _: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
        sync(self.device);
        self.times.lock().map_err(|_| "stopwatch lock")?.1 = Some(Instant::now());
        Ok(())
    }
}

fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("LIGHTNING_BENCH_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let python = lightning_build::managed_env_dir()?.join("bin").join("python");
    python.exists().then_some(python)
}

/// PyTorch Lightning (or the raw PyTorch loop) through `benches/lightning_bench.py`.
fn lightning_run(w: &Workload, device: Device, steps: usize, reps: usize, setting: &str) -> Result<Vec<f64>, String> {
    let python = python().ok_or("no managed Python environment: run `make setup`")?;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/lightning_bench.py");
    let device_name = if device == Device::Cpu { "cpu" } else { "cuda" };
    let output = Command::new(python)
        .arg(script)
        .args(["--model", w.model, "--setting", setting, "--device", device_name])
        .args(["--steps", &steps.to_string(), "--reps", &reps.to_string()])
        .args(["--width", &w.width.to_string(), "--depth", &w.depth.to_string(), "--batch", &w.batch.to_string()])
        .args(["--batches", "100"])
        .output()
        .map_err(|e| format!("cannot run python: {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("").to_string();
        return Err(format!("lightning_bench.py failed: {last}"));
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(&output.stdout).map_err(|e| format!("lightning_bench.py printed no JSON: {e}"))?;
    parsed["per_step_ms"]
        .as_array()
        .map(|values| values.iter().filter_map(serde_json::Value::as_f64).collect())
        .ok_or_else(|| "lightning_bench.py printed no per_step_ms".to_string())
}

/// The data path: batches costing about `prepare_ms` of CPU work, a step costing about the same, in-line versus
/// prepared ahead on two worker threads. Steps per second of each, and the ratio.
fn data_path(smoke: bool) -> lightning::Result<DataPath> {
    // One intra-op thread: the training thread takes one core, the workers the other.
    let threads = tch::get_num_threads();
    tch::set_num_threads(1);
    let batches = if smoke { 8 } else { 200 };
    let x = Tensor::rand([batches * 32, 256], (Kind::Float, Device::Cpu));
    let work = Tensor::rand([256, 256], (Kind::Float, Device::Cpu)) / 256.0;
    let rounds = calibrate(
        |n| {
            let mut b = x.narrow(0, 0, 32);
            for _ in 0..n {
                b = b.matmul(&work);
            }
        },
        1.0,
    );
    // Tensors are `Send` but not `Sync`: the workers share the weight through a mutex, held only to take a handle.
    let shared = std::sync::Arc::new(std::sync::Mutex::new(work));
    let prepare = move |batch: Tensor| -> lightning::Result<Tensor> {
        let work = shared.lock().map_err(|_| lightning::Error::Config("poisoned".into()))?.shallow_clone();
        let mut b = batch;
        for _ in 0..rounds {
            b = b.f_matmul(&work)?;
        }
        Ok(b)
    };
    let w = Workload { model: "data", inputs: 256, width: 1024, depth: 1, batch: 32, steps: batches as usize };
    let vs = nn::VarStore::new(Device::Cpu);
    let net = network(&vs, &w);
    let step_rounds = calibrate(
        |n| {
            for _ in 0..n {
                drop(net.forward(&x.narrow(0, 0, 32)));
            }
        },
        1.0,
    );
    let prepare_ms = time_ms(|| drop(prepare(x.narrow(0, 0, 32))));
    let step_ms = time_ms(|| {
        for _ in 0..step_rounds {
            drop(net.forward(&x.narrow(0, 0, 32)));
        }
    });
    // In-line and workers take turns, three rounds; the median of each (the machine is shared and noisy).
    let mut rounds_of: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for (slot, workers) in [(0, 0), (1, 2)].into_iter().cycle().take(if smoke { 2 } else { 6 }) {
        let mut loader =
            DataLoader::new(x.shallow_clone()).batch_size(32).workers(workers).map(prepare.clone()).build()?;
        let start = Instant::now();
        let mut n = 0;
        for batch in loader.batches(0) {
            let batch = batch?;
            for _ in 0..step_rounds {
                drop(net.forward(&batch));
            }
            n += 1;
        }
        rounds_of[slot].push(n as f64 / start.elapsed().as_secs_f64());
    }
    let throughput = [median(&rounds_of[0]), median(&rounds_of[1])];
    tch::set_num_threads(threads);
    Ok(DataPath {
        prepare_ms,
        step_ms,
        inline_steps_per_s: throughput[0],
        workers_steps_per_s: throughput[1],
        speedup: throughput[1] / throughput[0],
    })
}

/// The wide CPU model trained with everything optional off, with and without a checkpoint (weights and Adam's
/// state, about 12 MB) written in line every few steps; the runs alternate, and the medians give the cost of one
/// write. Then the integrity checks' part of it, timed on the file itself.
fn checkpoint_cost(smoke: bool, reps: usize) -> lightning::Result<CheckpointCost> {
    let w =
        Workload { model: "wide", inputs: 512, width: 512, depth: 4, batch: 256, steps: if smoke { 4 } else { 40 } };
    let every = if smoke { 2 } else { 4 };
    let scratch = tempfile::tempdir()?;
    let dir = scratch.path().join("checkpoints");
    let run = |checkpoints: bool| -> lightning::Result<f64> {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = network(&vs, &w);
        let mut module = Bench { vs, net, log: false };
        let loader = DataLoader::new(data(&w)).batch_size(w.batch as usize).build()?;
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_steps(w.steps)
            .accelerator(Accelerator::Cpu)
            .enable_progress_bar(false)
            .enable_model_summary(false)
            .nonfinite_loss(NonFinite::Off)
            .async_checkpointing(false);
        if checkpoints {
            trainer = trainer.callback(ModelCheckpoint::new(&dir).every_n_train_steps(every));
        }
        let start = Instant::now();
        trainer.fit(&mut module, loader, None)?;
        Ok(start.elapsed().as_secs_f64() * 1e3 / w.steps as f64)
    };
    run(true)?;
    let (mut plain, mut checkpointing) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(3) {
        plain.push(run(false)?);
        checkpointing.push(run(true)?);
    }
    let file = std::fs::read_dir(&dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .ok_or_else(|| lightning::Error::Config("the checkpointing run wrote no file".into()))?;
    let bytes = std::fs::read(&file)?;
    let crc32c_ms = median(
        &(0..9)
            .map(|_| {
                time_ms(|| {
                    std::hint::black_box(crc32c::crc32c(&bytes));
                })
            })
            .collect::<Vec<_>>(),
    );
    let read_back_ms = median(&(0..9).map(|_| time_ms(|| drop(std::fs::read(&file)))).collect::<Vec<_>>());
    let writes = w.steps / every;
    let (plain_step_ms, checkpointing_step_ms) = (median(&plain), median(&checkpointing));
    let per_write_ms = (checkpointing_step_ms - plain_step_ms) * w.steps as f64 / writes as f64;
    Ok(CheckpointCost {
        file_mb: bytes.len() as f64 / 1e6,
        writes,
        plain_step_ms,
        checkpointing_step_ms,
        per_write_ms,
        crc32c_ms,
        read_back_ms,
        checks_share: (2.0 * crc32c_ms + read_back_ms) / per_write_ms,
    })
}

fn time_ms(f: impl Fn()) -> f64 {
    f();
    let runs = 20;
    let start = Instant::now();
    for _ in 0..runs {
        f();
    }
    start.elapsed().as_secs_f64() * 1e3 / runs as f64
}

/// How many rounds `n` make `f(n)` take about `target_ms`: estimated from one round, then corrected by timing
/// that many in a row (one round alone runs colder than a chain of them).
fn calibrate(f: impl Fn(usize), target_ms: f64) -> usize {
    let once = time_ms(|| f(1)).max(1e-3);
    let guess = ((target_ms / once).round() as usize).max(1);
    let chained = time_ms(|| f(guess)).max(1e-3);
    ((guess as f64 * target_ms / chained).round() as usize).max(1)
}

fn main() -> lightning::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let (json, smoke, with_lightning) = (flag("--json"), flag("--smoke"), !flag("--no-lightning"));
    let reps: usize = value("--reps").and_then(|v| v.parse().ok()).unwrap_or(if smoke { 1 } else { 5 });
    let (only_model, only) = (value("--model"), value("--only"));
    let steps: Option<usize> = value("--steps").and_then(|v| v.parse().ok());
    let with_lightning = with_lightning && only.is_none();
    let wanted = |setting: &str| only.as_deref().is_none_or(|o| o == setting);
    let mut devices = vec![Device::Cpu];
    match value("--device").as_deref() {
        Some("cpu") => {}
        Some("cuda") => devices = vec![Device::Cuda(0)],
        _ if tch::Cuda::is_available() => devices.push(Device::Cuda(0)),
        _ => {}
    }
    let mut results = Vec::new();
    for &device in &devices {
        let cuda = device != Device::Cpu;
        let workloads = [
            Workload { model: "mlp", inputs: 32, width: 64, depth: 1, batch: 64, steps: if smoke { 20 } else { 2000 } },
            if cuda {
                Workload {
                    model: "wide",
                    inputs: 2048,
                    width: 2048,
                    depth: 4,
                    batch: 1024,
                    steps: if smoke { 5 } else { 300 },
                }
            } else {
                Workload {
                    model: "wide",
                    inputs: 512,
                    width: 512,
                    depth: 4,
                    batch: 256,
                    steps: if smoke { 5 } else { 100 },
                }
            },
        ];
        for w in workloads.iter().filter(|w| only_model.as_deref().is_none_or(|m| m == w.model)) {
            let w = &Workload { steps: steps.unwrap_or(w.steps), ..w.clone() };
            let device_name = format!("{device:?}");
            let mut add = |framework: &str, setting: &str, per_step: Result<Vec<f64>, String>| {
                let (per_step_ms, note) = match per_step {
                    Ok(values) => (values, None),
                    Err(why) => (Vec::new(), Some(why)),
                };
                let median_ms = if per_step_ms.is_empty() { f64::NAN } else { median(&per_step_ms) };
                results.push(Measurement {
                    framework: framework.into(),
                    model: w.model.into(),
                    setting: setting.into(),
                    device: device_name.clone(),
                    steps: w.steps,
                    per_step_ms,
                    median_ms,
                    ratio_to_floor: None,
                    ratio_to_same_loop: None,
                    note,
                });
            };
            // The Rust variants take turns, one repetition each per round, so that a change in the machine's
            // load (it is shared and noisy) falls on all of them alike rather than on whichever ran then.
            type Variant<'a> = (&'static str, &'static str, Box<dyn Fn() -> lightning::Result<f64> + 'a>);
            let variants: Vec<Variant> = vec![
                ("tch", "hand-written", Box::new(|| hand_written(w, device, w.steps, LoopOptimizer::Tch))),
                ("tch", "our Adam", Box::new(|| hand_written(w, device, w.steps, LoopOptimizer::Ours))),
                ("lightning-rs", "defaults", Box::new(|| trainer_run(w, device, w.steps, true, false))),
                ("lightning-rs", "minimal", Box::new(|| trainer_run(w, device, w.steps, false, false))),
                ("lightning-rs", "minimal, profiled", Box::new(|| trainer_run(w, device, w.steps, false, true))),
                ("lightning-rs", "defaults, profiled", Box::new(|| trainer_run(w, device, w.steps, true, true))),
            ];
            let keys = ["tch", "ours", "defaults", "minimal", "profiled", "defaults-profiled"];
            let variants: Vec<Variant> = variants
                .into_iter()
                .zip(keys)
                .filter(|(_, key)| wanted(key) && (!key.contains("profiled") || only.is_some()))
                .map(|(v, _)| v)
                .collect();
            let mut times: Vec<Result<Vec<f64>, String>> = variants.iter().map(|_| Ok(Vec::new())).collect();
            for _ in 0..reps {
                for ((_, _, run), slot) in variants.iter().zip(times.iter_mut()) {
                    if let Ok(values) = slot {
                        match run() {
                            Ok(ms) => values.push(ms),
                            Err(e) => *slot = Err(e.to_string()),
                        }
                    }
                }
            }
            for ((framework, setting, _), per_step) in variants.iter().zip(times) {
                add(framework, setting, per_step);
            }
            if with_lightning {
                add("pytorch", "raw loop", lightning_run(w, device, w.steps, reps, "raw"));
                add("pytorch-lightning", "defaults", lightning_run(w, device, w.steps, reps, "defaults"));
                add("pytorch-lightning", "minimal", lightning_run(w, device, w.steps, reps, "minimal"));
            }
        }
    }
    for i in 0..results.len() {
        let floor = results
            .iter()
            .find(|r| r.setting == "hand-written" && r.model == results[i].model && r.device == results[i].device)
            .map(|r| r.median_ms);
        results[i].ratio_to_floor = floor.map(|floor| results[i].median_ms / floor);
        let same_loop = results
            .iter()
            .find(|r| r.setting == "our Adam" && r.model == results[i].model && r.device == results[i].device)
            .map(|r| r.median_ms);
        if results[i].framework == "lightning-rs" {
            results[i].ratio_to_same_loop = same_loop.map(|same| results[i].median_ms / same);
        }
    }
    let data_path = if only.is_none() { data_path(smoke).ok() } else { None };
    let checkpoint = if only.is_none() { Some(checkpoint_cost(smoke, reps)?) } else { None };
    let report = Report { machine: machine(), results, data_path, checkpoint };
    if json {
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| lightning::Error::Config(e.to_string()))?);
        return Ok(());
    }
    print_table(&report);
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let gpu = if tch::Cuda::is_available() { ", CUDA available" } else { "" };
    format!("{cores} cores{gpu}, torch {}", lightning_build::TORCH_VERSION)
}

fn print_table(report: &Report) {
    println!("machine: {}", report.machine);
    println!(
        "{:<8} {:<6} {:<18} {:<13} {:>12}  per repetition (ms/step)",
        "device", "model", "framework", "setting", "median ms"
    );
    for r in &report.results {
        let reps: Vec<String> = r.per_step_ms.iter().map(|v| format!("{v:.4}")).collect();
        let shown = r.note.clone().unwrap_or_else(|| reps.join(" "));
        println!("{:<8} {:<6} {:<18} {:<13} {:>12.4}  {shown}", r.device, r.model, r.framework, r.setting, r.median_ms);
    }
    if let Some(d) = &report.data_path {
        println!(
            "data path: prepare {:.2} ms/batch, step {:.2} ms; in-line {:.0} steps/s, 2 workers {:.0} steps/s: {:.2}x",
            d.prepare_ms, d.step_ms, d.inline_steps_per_s, d.workers_steps_per_s, d.speedup
        );
    }
    if let Some(c) = &report.checkpoint {
        println!(
            "checkpoint write (wide, {:.1} MB, in line): {:.2} ms each ({} writes: {:.3} vs {:.3} ms/step); \
             integrity checks {:.2} ms of it ({:.0}%: crc32c {:.2} ms x2, read-back {:.2} ms)",
            c.file_mb,
            c.per_write_ms,
            c.writes,
            c.checkpointing_step_ms,
            c.plain_step_ms,
            2.0 * c.crc32c_ms + c.read_back_ms,
            100.0 * c.checks_share,
            c.crc32c_ms,
            c.read_back_ms
        );
    }
    println!();
    for r in &report.results {
        if let Some(ratio) = r.ratio_to_floor.filter(|x| x.is_finite()) {
            let same = match r.ratio_to_same_loop.filter(|x| x.is_finite()) {
                Some(same) => format!(" ({same:.2}x the same loop with our Adam)"),
                None => String::new(),
            };
            println!(
                "{} {} {} {}: {:.2}x the hand-written tch loop{same}",
                r.device, r.model, r.framework, r.setting, ratio
            );
        }
    }
}
