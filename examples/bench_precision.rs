//! Mixed precision, measured: the wide MLP (512 wide, 4 hidden layers, Adam, batch 256) in `32-true`,
//! `bf16-mixed` and `16-mixed`, our Trainer beside a hand-written PyTorch loop (`torch.autocast`, and
//! `torch.amp.GradScaler` for 16-mixed) and Lightning's `Trainer(precision=...)`, through
//! `benches/precision_bench.py` in the managed Python environment. Every run is a process of its own; the
//! setups take turns repetition by repetition; medians of the per-step times are printed, with ours over
//! PyTorch's loop for each precision.
//!
//! ```text
//! cargo run --release --example bench_precision                 # CPU (and CUDA when there is one), 5 repetitions
//! cargo run --release --example bench_precision -- --device cuda --reps 3
//! cargo run --example bench_precision -- --smoke                 # a few steps of each (what CI runs)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Precision, Trainer};

#[path = "shared/wide.rs"]
mod wide;

use wide::{median, python, read_ms, Timer, Wide, WIDTH};

const PRECISIONS: [&str; 3] = ["32-true", "bf16-mixed", "16-mixed"];

/// One timed run of ours, in this process.
fn worker(precision: Precision, cuda: bool, steps: usize, out: PathBuf) -> lightning::Result<()> {
    tch::manual_seed(0);
    let n = wide::GLOBAL_BATCH * steps as i64;
    let x = Tensor::rand([n, WIDTH], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    let loader = DataLoader::new((x, y)).batch_size(wide::GLOBAL_BATCH as usize).build()?;
    let accelerator = if cuda { Accelerator::Cuda(0) } else { Accelerator::Cpu };
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(accelerator)
        .precision(precision)
        .max_steps(steps)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Timer { out, steps, start: None })
        .fit(&mut Wide::new(true), loader, None)
}

fn run(mut command: Command, out: &Path) -> Option<f64> {
    let _ = std::fs::remove_file(out);
    let status = command.stdout(Stdio::null()).stderr(Stdio::null()).status().ok()?;
    status.success().then(|| read_ms(out)).flatten()
}

fn main() -> lightning::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let smoke = args.iter().any(|a| a == "--smoke");
    let steps: usize =
        value("--steps").and_then(|v| v.parse().ok()).unwrap_or(if smoke { wide::WARMUP + 4 } else { 60 });
    if let Some(precision) = value("--worker") {
        let cuda = value("--device").as_deref() == Some("cuda");
        return worker(precision.parse()?, cuda, steps, PathBuf::from(value("--out").unwrap_or_default()));
    }
    let reps: usize = value("--reps").and_then(|v| v.parse().ok()).unwrap_or(if smoke { 1 } else { 5 });
    let devices: Vec<&str> = match value("--device").as_deref() {
        Some("cpu") => vec!["cpu"],
        Some("cuda") => vec!["cuda"],
        _ if tch::Cuda::is_available() => vec!["cpu", "cuda"],
        _ => vec!["cpu"],
    };
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("ms");
    let me = std::env::current_exe()?;
    let py = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("precision_bench.py");
    for device in devices {
        let setups: Vec<(String, &str, Option<Command>)> = PRECISIONS
            .iter()
            .flat_map(|&precision| {
                let mut ours = Command::new(&me);
                ours.args(["--worker", precision, "--device", device, "--steps", &steps.to_string(), "--out"])
                    .arg(&out);
                let python = |mode: &str| {
                    let mut c = Command::new(py.as_ref()?);
                    c.arg(&script).args(["--mode", mode, "--precision", precision, "--device", device]);
                    c.args(["--steps", &steps.to_string(), "--out"]).arg(&out);
                    Some(c)
                };
                [("ours", Some(ours)), ("PyTorch loop", python("torch")), ("Lightning", python("lightning"))]
                    .into_iter()
                    .map(move |(who, command)| (who.to_string(), precision, command))
            })
            .collect();
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
        for _ in 0..reps {
            for (k, (who, precision, _)) in setups.iter().enumerate() {
                // Commands cannot be cloned: rebuild this one from the list each repetition.
                let command = rebuild(&setups[k].2);
                if let Some(ms) = command.and_then(|c| run(c, &out)) {
                    samples[k].push(ms);
                } else if samples[k].is_empty() {
                    eprintln!("{who} {precision} on {device} did not run");
                }
            }
        }
        println!(
            "wide MLP {WIDTH}x{}, Adam, batch {}, {steps} steps ({} warm-up), {device}, {reps} repetitions (median ms per step)",
            wide::DEPTH,
            wide::GLOBAL_BATCH,
            wide::WARMUP
        );
        println!(
            "  {:<12} {:>10} {:>14} {:>10} {:>16}",
            "precision", "ours", "PyTorch loop", "Lightning", "ours / PyTorch"
        );
        for (p, &precision) in PRECISIONS.iter().enumerate() {
            let ms: Vec<Option<f64>> = (0..3).map(|k| median(samples[p * 3 + k].clone())).collect();
            let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.2}"));
            let ratio = match (ms[0], ms[1]) {
                (Some(a), Some(b)) => format!("{:.2}x", a / b),
                _ => "n/a".into(),
            };
            println!("  {precision:<12} {:>10} {:>14} {:>10} {ratio:>16}", show(ms[0]), show(ms[1]), show(ms[2]));
        }
        if device == "cpu" {
            println!("  (Lightning runs 16-mixed on the CPU as bf16-mixed, with a warning; ours and PyTorch's loop run fp16)");
        }
    }
    Ok(())
}

/// A copy of `command` (program, arguments), or `None` when there is none.
fn rebuild(command: &Option<Command>) -> Option<Command> {
    let command = command.as_ref()?;
    let mut copy = Command::new(command.get_program());
    copy.args(command.get_args());
    Some(copy)
}
