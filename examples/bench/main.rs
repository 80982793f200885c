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

mod costs;
mod variants;

use costs::{checkpoint_cost, data_path};
use variants::{hand_written, lightning_run, trainer_run, LoopOptimizer};

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
