//! The tools' costs, measured: what the profiler adds to a step of the benchmark's mlp (our Trainer with
//! everything optional off, with and without `SimpleProfiler`, the runs taking turns), and the time from a process's
//! start to its first training step, ours beside PyTorch Lightning's (`benches/startup_bench.py` in the managed
//! Python environment: importing `lightning` alone takes seconds). Medians of the repetitions, and the ratios.
//!
//! ```text
//! cargo run --release --example bench_tools              # 5 repetitions
//! cargo run --example bench_tools -- --smoke             # one short repetition of each (what CI runs)
//! ```

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, NonFinite, SimpleProfiler, Trainer};

/// The benchmark's mlp: 32 inputs, one hidden layer of 64, batches of 64, Adam.
struct Mlp {
    vs: nn::VarStore,
    net: nn::Sequential,
    /// In the start-up child: report the first step and exit.
    report_first_step: bool,
}

impl Mlp {
    fn new(report_first_step: bool) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let net = nn::seq()
            .add(nn::linear(&root / "l0", 32, 64, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(&root / "out", 64, 1, Default::default()));
        Mlp { vs, net, report_first_step }
    }
}

#[lightning_module]
impl Mlp {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        if self.report_first_step {
            println!("FIRST_STEP");
            std::process::exit(0);
        }
        self.net.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

fn data() -> lightning::Result<Loader<(Tensor, Tensor)>> {
    tch::manual_seed(0);
    let x = Tensor::rand([64 * 100, 32], (Kind::Float, Device::Cpu));
    let y = x.mean_dim(-1, true, Kind::Float);
    DataLoader::new((x, y)).batch_size(64).build()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// Milliseconds per step of a fit of `steps` steps (after a warm-up fit), with or without the profiler.
fn step_ms(steps: usize, profiled: bool, scratch: &std::path::Path) -> lightning::Result<f64> {
    let run = |steps: usize| -> lightning::Result<f64> {
        let mut module = Mlp::new(false);
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_steps(steps)
            .accelerator(Accelerator::Cpu)
            .enable_progress_bar(false)
            .enable_model_summary(false)
            .nonfinite_loss(NonFinite::Off);
        if profiled {
            trainer = trainer.profiler(SimpleProfiler::new().to_file(scratch.join("profile.txt")));
        }
        let start = Instant::now();
        trainer.fit(&mut module, data()?, None)?;
        Ok(start.elapsed().as_secs_f64() * 1e3 / steps as f64)
    };
    run(50)?;
    run(steps)
}

/// Seconds from spawning `command` to its `FIRST_STEP` line.
fn to_first_step(mut command: Command) -> Result<f64, String> {
    let start = Instant::now();
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let reached = BufReader::new(stdout).lines().map_while(Result::ok).any(|line| line.trim() == "FIRST_STEP");
    let took = start.elapsed().as_secs_f64();
    let status = child.wait().map_err(|e| e.to_string())?;
    if !reached {
        return Err(format!("the child never reached its first training step ({status})"));
    }
    Ok(took)
}

fn python() -> Option<PathBuf> {
    let python = lightning_build::managed_env_dir()?.join("bin").join("python");
    python.exists().then_some(python)
}

fn main() -> lightning::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--first-step-child") {
        let mut module = Mlp::new(true);
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_steps(1)
            .accelerator(Accelerator::Cpu)
            .enable_progress_bar(false)
            .enable_model_summary(false);
        trainer.fit(&mut module, data()?, None)?;
        return Err(lightning::Error::Config("the first training step was never reached".into()));
    }
    let smoke = args.iter().any(|a| a == "--smoke");
    let (reps, steps) = if smoke { (1, 20) } else { (5, 2000) };

    let scratch = tempfile::tempdir()?;
    let (mut plain, mut profiled) = (Vec::new(), Vec::new());
    // The two take turns, each going first every other repetition (the first run of a pair is often slower).
    for rep in 0..reps {
        if rep % 2 == 0 {
            plain.push(step_ms(steps, false, scratch.path())?);
            profiled.push(step_ms(steps, true, scratch.path())?);
        } else {
            profiled.push(step_ms(steps, true, scratch.path())?);
            plain.push(step_ms(steps, false, scratch.path())?);
        }
    }
    let (plain, profiled) = (median(&plain), median(&profiled));
    println!("profiler cost, mlp, CPU, {steps} steps x {reps} reps (medians):");
    println!("  without profiler  {plain:8.4} ms/step");
    println!("  SimpleProfiler    {profiled:8.4} ms/step   ({:.3}x)", profiled / plain);

    let mut ours = Vec::new();
    for _ in 0..reps {
        let mut child = Command::new(std::env::current_exe()?);
        child.arg("--first-step-child");
        ours.push(to_first_step(child).map_err(lightning::Error::Config)?);
    }
    let ours = median(&ours);
    println!("process start to first training step, CPU, {reps} reps (medians):");
    println!("  ours              {:8.3} s", ours);
    match python() {
        Some(python) => {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/startup_bench.py");
            let mut theirs = Vec::new();
            for _ in 0..reps {
                let mut child = Command::new(&python);
                child.arg(script);
                match to_first_step(child) {
                    Ok(seconds) => theirs.push(seconds),
                    Err(problem) => {
                        println!("  lightning         unavailable: {problem}");
                        break;
                    }
                }
            }
            if !theirs.is_empty() {
                let theirs = median(&theirs);
                println!("  lightning         {theirs:8.3} s   (ours {:.3}x of it)", ours / theirs);
            }
        }
        None => println!("  lightning         unavailable: no managed Python environment (run `make setup`)"),
    }
    Ok(())
}
