//! Data-parallel training, measured: the same wide MLP (512 wide, 4 hidden layers, SGD, global batch 256) on
//! one process and on 2 CPU processes over Gloo, ours beside PyTorch's own `DistributedDataParallel` (torchrun)
//! and Lightning's `strategy="ddp"` (`benches/ddp_bench.py` in the managed Python environment). Each
//! 2-process setup is also run with no gradient averaging (independent processes for ours, DDP's `no_sync`
//! for PyTorch), so that the difference is what synchronising the gradients costs per step. Prints medians of
//! several repetitions.
//!
//! ```text
//! cargo run --release --example bench_ddp             # 5 repetitions of each
//! cargo run --release --example bench_ddp -- --reps 3 --steps 40
//! cargo run --example bench_ddp -- --smoke             # a few steps of each (what CI runs)
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Ddp, Trainer};

#[path = "shared/wide.rs"]
mod wide;

use wide::{median, python, read_ms, Timer, Wide, GLOBAL_BATCH, WARMUP, WIDTH};

/// One worker: `procs` processes with DDP (`sync`), or one process of a no-sync pair (`--rank-alone`).
fn worker(procs: usize, sync: bool, alone_rank: usize, steps: usize, out: PathBuf) -> lightning::Result<()> {
    let world = if sync { procs } else { 1 };
    let rank = if sync { 0 } else { alone_rank };
    tch::manual_seed(0);
    let n = GLOBAL_BATCH * steps as i64;
    let x = Tensor::rand([n, WIDTH], (Kind::Float, Device::Cpu));
    let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    // An independent process takes the same share DDP's sampler would give it.
    let (x, y) = if sync || procs == 1 {
        (x, y)
    } else {
        let index = Tensor::arange_start_step(rank as i64, n, procs as i64, (Kind::Int64, Device::Cpu));
        (x.index_select(0, &index), y.index_select(0, &index))
    };
    let per_process = (GLOBAL_BATCH / procs as i64) as usize;
    // Of an independent pair, the first one reports.
    let out = if rank == 0 { out } else { out.with_extension("other") };
    let loader = DataLoader::new((x, y)).batch_size(per_process).build()?;
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_steps(steps)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Timer { out, steps, start: None });
    if world > 1 {
        trainer = trainer.devices(world).strategy(Ddp::default());
    }
    trainer.fit(&mut Wide::new(false), loader, None)
}

/// Runs every command of `group` at once (one intra-op thread each when there are several) and returns the
/// per-step time rank 0 of the first one wrote.
fn run_together(group: Vec<Command>, out: &Path, threads: &str) -> Option<f64> {
    let _ = std::fs::remove_file(out);
    let children: Vec<_> = group
        .into_iter()
        .map(|mut c| c.env("OMP_NUM_THREADS", threads).stdout(Stdio::null()).stderr(Stdio::null()).spawn())
        .collect::<Result<_, _>>()
        .ok()?;
    for mut child in children {
        if !child.wait().ok()?.success() {
            return None;
        }
    }
    read_ms(out)
}

fn main() -> lightning::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let smoke = args.iter().any(|a| a == "--smoke");
    let steps: usize = value("--steps").and_then(|v| v.parse().ok()).unwrap_or(if smoke { WARMUP + 4 } else { 60 });
    if let Some(procs) = value("--worker") {
        let procs = procs.parse().unwrap_or(1);
        let sync = !args.iter().any(|a| a == "--no-sync");
        let rank = value("--rank-alone").and_then(|v| v.parse().ok()).unwrap_or(0);
        return worker(procs, sync, rank, steps, PathBuf::from(value("--out").unwrap_or_default()));
    }
    if !lightning::distributed::available() {
        println!("this build has no distributed training (no Gloo headers): run `make setup` and rebuild");
        return Ok(());
    }
    let reps: usize = value("--reps").and_then(|v| v.parse().ok()).unwrap_or(if smoke { 1 } else { 5 });
    let dir = tempfile::tempdir()?;
    let out = dir.path().join("ms");
    let me = std::env::current_exe()?;
    let ours = |procs: usize, extra: &[&str]| {
        let mut c = Command::new(&me);
        c.args(["--worker", &procs.to_string(), "--steps", &steps.to_string(), "--out"]).arg(&out).args(extra);
        c
    };
    let py = python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join("ddp_bench.py");
    let torch = |extra: &[&str]| {
        let mut c = Command::new(py.as_ref()?);
        c.args(["-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29517"]).arg(&script);
        c.args(["--mode", "torch", "--steps", &steps.to_string(), "--out"]).arg(&out).args(extra);
        Some(c)
    };
    let lightning = || {
        let mut c = Command::new(py.as_ref()?);
        c.arg(&script).args(["--mode", "lightning", "--steps", &steps.to_string(), "--out"]).arg(&out);
        Some(c)
    };
    type Setup<'a> = (&'a str, Box<dyn Fn() -> Option<(Vec<Command>, &'static str)> + 'a>);
    let setups: Vec<Setup> = vec![
        ("ours, 1 process (2 threads)", Box::new(|| Some((vec![ours(1, &[])], "2")))),
        ("ours, 2 processes, DDP", Box::new(|| Some((vec![ours(2, &[])], "1")))),
        (
            "ours, 2 processes, no sync",
            Box::new(|| {
                Some((
                    vec![ours(2, &["--no-sync", "--rank-alone", "0"]), ours(2, &["--no-sync", "--rank-alone", "1"])],
                    "1",
                ))
            }),
        ),
        ("PyTorch DDP (torchrun), 2 processes", Box::new(|| Some((vec![torch(&[])?], "1")))),
        ("PyTorch DDP, 2 processes, no_sync", Box::new(|| Some((vec![torch(&["--no-sync"])?], "1")))),
        ("Lightning strategy=\"ddp\", 2 processes", Box::new(|| Some((vec![lightning()?], "1")))),
    ];
    println!("wide MLP {WIDTH}x{}, SGD, global batch {GLOBAL_BATCH}, {steps} steps ({WARMUP} warm-up), CPU, {reps} repetitions", wide::DEPTH);
    let mut results: Vec<(String, Option<f64>)> = setups.iter().map(|(name, _)| (name.to_string(), None)).collect();
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    for _ in 0..reps {
        // Setups take turns, repetition by repetition, so that a noisy moment hits all of them.
        for (k, (_, make)) in setups.iter().enumerate() {
            if let Some((group, threads)) = make() {
                if let Some(ms) = run_together(group, &out, threads) {
                    samples[k].push(ms);
                }
            }
        }
    }
    for (k, result) in results.iter_mut().enumerate() {
        result.1 = median(samples[k].clone());
    }
    let get = |k: usize| results[k].1;
    for (name, ms) in &results {
        match ms {
            Some(ms) => println!("  {name:<40} {ms:>8.2} ms/step"),
            None => println!("  {name:<40}      n/a (did not run: no managed Python environment?)"),
        }
    }
    if let (Some(a), Some(b)) = (get(1), get(2)) {
        println!("  ours: gradient averaging costs {:.2} ms/step", a - b);
    }
    if let (Some(a), Some(b)) = (get(3), get(4)) {
        println!("  PyTorch DDP: gradient averaging costs {:.2} ms/step", a - b);
    }
    if let (Some(ours), Some(torch)) = (get(1), get(3)) {
        println!("  ours / PyTorch DDP per step: {:.2}x", ours / torch);
    }
    if let (Some(ours), Some(l)) = (get(1), get(5)) {
        println!("  ours / Lightning ddp per step: {:.2}x", ours / l);
    }
    Ok(())
}
