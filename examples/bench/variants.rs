//! The variants the bench times: the hand-written tch loop (with tch's Adam or ours), our Trainer (defaults,
//! minimal, profiled) and PyTorch Lightning through `benches/lightning_bench.py`.

use super::*;

pub(crate) fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// The network: `depth` hidden layers of `width` with ReLU, then one output.
pub(crate) fn network(vs: &nn::VarStore, w: &Workload) -> nn::Sequential {
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
pub(crate) fn data(w: &Workload) -> (Tensor, Tensor) {
    tch::manual_seed(0);
    let x = Tensor::rand([w.batch * 100, w.inputs], (Kind::Float, Device::Cpu));
    let y = x.mean_dim(-1, true, Kind::Float);
    (x, y)
}

/// Which optimizer a hand-written loop steps.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum LoopOptimizer {
    /// tch's own `nn::Adam` (libtorch's C++ Adam): the floor.
    Tch,
    /// This crate's `Optimizer::adam`, the one the Trainer runs: the loop minus the framework.
    Ours,
}

/// The loop a tch user writes by hand: with tch's own Adam it is the floor; with ours, the difference to the
/// Trainer is the framework alone.
pub(crate) fn hand_written(
    w: &Workload,
    device: Device,
    steps: usize,
    optimizer: LoopOptimizer,
) -> lightning::Result<f64> {
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

pub(crate) struct Bench {
    pub(crate) vs: nn::VarStore,
    pub(crate) net: nn::Sequential,
    pub(crate) log: bool,
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
pub(crate) fn trainer_run(
    w: &Workload,
    device: Device,
    steps: usize,
    defaults: bool,
    profiled: bool,
) -> lightning::Result<f64> {
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
pub(crate) struct Stopwatch {
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

pub(crate) fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("LIGHTNING_BENCH_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let python = lightning_build::managed_env_dir()?.join("bin").join("python");
    python.exists().then_some(python)
}

/// PyTorch Lightning (or the raw PyTorch loop) through `benches/lightning_bench.py`.
pub(crate) fn lightning_run(
    w: &Workload,
    device: Device,
    steps: usize,
    reps: usize,
    setting: &str,
) -> Result<Vec<f64>, String> {
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
