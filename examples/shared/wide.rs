//! What the scale benchmarks (`bench_ddp`, `bench_precision`) share: the wide MLP they train, a callback that
//! times the steps after a warm-up, and how they find the managed Python environment and read its figures.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Instant;

use lightning::prelude::*;
use lightning::{AnyModule, Callback, CallbackResult};

pub const WIDTH: i64 = 512;
pub const DEPTH: usize = 4;
pub const GLOBAL_BATCH: i64 = 256;
pub const WARMUP: usize = 10;

/// `DEPTH` layers of `WIDTH` with ReLU, then 10 classes.
pub struct Wide {
    pub vs: nn::VarStore,
    pub net: nn::Sequential,
    /// Adam (the precision benchmark) or SGD (the DDP benchmark, as its PyTorch side).
    pub adam: bool,
}

impl Wide {
    pub fn new(adam: bool) -> Self {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let mut net = nn::seq();
        for layer in 0..DEPTH {
            net = net
                .add(nn::linear(vs.root() / format!("l{layer}"), WIDTH, WIDTH, Default::default()))
                .add_fn(|x| x.relu());
        }
        net = net.add(nn::linear(vs.root() / "out", WIDTH, 10, Default::default()));
        Wide { vs, net, adam }
    }
}

#[lightning_module]
impl Wide {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, _ctx: &mut Ctx) -> Tensor {
        self.net.forward(x).cross_entropy_for_logits(y)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        if self.adam {
            Optimizer::adam(&self.vs, 1e-3)
        } else {
            Optimizer::sgd(&self.vs, 0.01)
        }
    }
}

/// Times from the start of batch `WARMUP` to the end of training; rank 0 writes the per-step milliseconds.
pub struct Timer {
    pub out: PathBuf,
    pub steps: usize,
    pub start: Option<Instant>,
}

impl Callback for Timer {
    fn on_train_batch_start(
        &mut self,
        _ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _batch: &dyn std::any::Any,
        batch_idx: usize,
    ) -> CallbackResult {
        if batch_idx == WARMUP {
            self.start = Some(Instant::now());
        }
        Ok(())
    }

    fn on_train_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        if let (Some(start), true) = (self.start, ctx.is_global_zero()) {
            let ms = start.elapsed().as_secs_f64() * 1000.0 / (self.steps - WARMUP) as f64;
            std::fs::write(&self.out, ms.to_string())?;
        }
        Ok(())
    }
}

/// The managed Python environment's interpreter (or `LIGHTNING_BENCH_PYTHON`).
pub fn python() -> Option<PathBuf> {
    if let Some(python) = std::env::var_os("LIGHTNING_BENCH_PYTHON") {
        return Some(PathBuf::from(python));
    }
    let python = lightning_build::managed_env_dir()?.join("bin").join("python");
    python.exists().then_some(python)
}

/// The per-step milliseconds a run wrote: a number, or the Python side's `{"per_step_ms": x}`.
pub fn read_ms(path: &Path) -> Option<f64> {
    std::fs::read_to_string(path)
        .ok()?
        .trim()
        .trim_start_matches("{\"per_step_ms\": ")
        .trim_end_matches('}')
        .parse()
        .ok()
}

pub fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(|a, b| a.total_cmp(b));
    (!xs.is_empty()).then(|| xs[xs.len() / 2])
}
