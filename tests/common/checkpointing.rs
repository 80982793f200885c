//! Shared pieces of the checkpoint tests: a small MLP with dropout, a logger that keeps every value, a callback
//! that asks for checkpoints at chosen points, weight comparison, and ways to damage checkpoint files.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{AnyModule, CallbackResult, DataLoader, Logger};

/// The optimizer and scheduler `configure_optimizers` returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opt {
    /// Adam, halving its rate every 2 epochs (an epoch-interval scheduler).
    AdamStepLr,
    /// SGD with momentum, cosine-annealed per optimizer step (a step-interval scheduler).
    SgdMomentumCosine,
    /// Plain SGD and no scheduler.
    SgdOnly,
    /// RMSprop written as an `UpdateRule` of the test's own, with an epoch-interval scheduler.
    RmspropCustom,
}

/// PyTorch's RMSprop (no momentum, not centered), as a user brings an optimizer of their own.
pub struct Rmsprop {
    pub alpha: f64,
    pub eps: f64,
}

impl lightning::UpdateRule for Rmsprop {
    fn name(&self) -> &str {
        "RMSprop"
    }

    fn slots(&self) -> usize {
        1
    }

    fn update(
        &self,
        param: &mut Tensor,
        grad: &Tensor,
        state: &mut [Tensor],
        step: lightning::StepInfo,
    ) -> lightning::Result<()> {
        let g = if step.weight_decay != 0.0 {
            grad.f_add(&param.f_mul_scalar(step.weight_decay)?)?
        } else {
            grad.shallow_clone()
        };
        let v = &mut state[0];
        let _ = v.f_mul_scalar_(self.alpha)?.f_addcmul_(&g, &g.f_mul_scalar(1.0 - self.alpha)?)?;
        let denom = v.f_sqrt()?.f_add_scalar(self.eps)?;
        let _ = param.f_addcdiv_(&g.f_mul_scalar(-step.lr)?, &denom)?;
        Ok(())
    }

    fn settings(&self) -> serde_json::Value {
        serde_json::json!({ "alpha": self.alpha, "eps": self.eps })
    }

    fn load_settings(&mut self, settings: serde_json::Value) -> Result<(), String> {
        let read = |key: &str| settings[key].as_f64().ok_or_else(|| format!("no `{key}` in {settings}"));
        (self.alpha, self.eps) = (read("alpha")?, read("eps")?);
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        if (0.0..=1.0).contains(&self.alpha) {
            Ok(())
        } else {
            Err(format!("alpha = {}: it must be within [0, 1]", self.alpha))
        }
    }
}

/// Linear layers with ReLU and dropout between them; `training_step` logs `train_loss` per step and per epoch.
pub struct Net {
    pub vs: nn::VarStore,
    pub layers: Vec<nn::Linear>,
    pub opt: Opt,
    pub dropout: f64,
    /// `training_step` calls.
    pub steps_run: usize,
}

/// The layers of [`Net::mlp`]: 8 → 32 → 1.
pub const MLP: &[(&str, i64, i64)] = &[("l1", 8, 32), ("l2", 32, 1)];

impl Net {
    /// A net of `layers` (name, inputs, outputs), initialized from `init` without torch's generator, so that
    /// building it is deterministic whatever other threads do.
    pub fn new(layers: &[(&str, i64, i64)], init: f64, opt: Opt) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let layers = layers
            .iter()
            .map(|&(name, inputs, outputs)| nn::linear(vs.root() / name, inputs, outputs, Default::default()))
            .collect();
        let mut variables: Vec<_> = vs.variables().into_iter().collect();
        variables.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| {
            for (i, (_, mut v)) in variables.into_iter().enumerate() {
                let n = v.numel() as i64;
                let fan_in = v.size().last().copied().unwrap_or(1) as f64;
                let values =
                    (Tensor::arange(n, (Kind::Double, Device::Cpu)) * 0.7137 + init + i as f64).sin() / fan_in.sqrt();
                v.copy_(&values.reshape(v.size()).to_kind(v.kind()));
            }
        });
        Net { vs, layers, opt, dropout: 0.2, steps_run: 0 }
    }

    /// The 8 → 32 → 1 MLP the resume tests train.
    pub fn mlp(init: f64, opt: Opt) -> Self {
        Net::new(MLP, init, opt)
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let mut h = x.shallow_clone();
        for (i, layer) in self.layers.iter().enumerate() {
            h = layer.forward(&h);
            if i + 1 < self.layers.len() {
                h = h.relu().dropout(self.dropout, train);
            }
        }
        h
    }
}

#[lightning_module]
impl Net {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        self.steps_run += 1;
        let loss = self.forward(x, ctx.is_training()).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_epoch(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let loss = self.forward(x, ctx.is_training()).mse_loss(y, Reduction::Mean);
        ctx.log("val_loss", &loss);
    }

    fn configure_optimizers(&mut self) -> (Vec<Optimizer>, Vec<LrScheduler>) {
        match self.opt {
            Opt::AdamStepLr => (vec![Optimizer::adam(&self.vs, 1e-2)], vec![LrScheduler::step_lr(2, 0.5)]),
            Opt::SgdMomentumCosine => (
                vec![Optimizer::sgd(&self.vs, 5e-2).momentum(0.9)],
                vec![LrScheduler::cosine(40, 1e-3).interval(Interval::Step)],
            ),
            Opt::SgdOnly => (vec![Optimizer::sgd(&self.vs, 5e-2)], Vec::new()),
            Opt::RmspropCustom => (
                vec![Optimizer::custom(&self.vs, 1e-2, Rmsprop { alpha: 0.99, eps: 1e-8 }).weight_decay(1e-4)],
                vec![LrScheduler::step_lr(2, 0.5)],
            ),
        }
    }
}

/// `y = sin(x · w)` on 8 features, computed without torch's generator.
pub fn data(n: i64, offset: i64) -> (Tensor, Tensor) {
    let x = ((Tensor::arange_start(offset * 8, (offset + n) * 8, (Kind::Float, Device::Cpu)) * 0.377).sin())
        .reshape([n, 8]);
    let w = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5, -0.3, 0.9]).reshape([8, 1]);
    let y = x.matmul(&w).sin();
    (x, y)
}

/// BATCHES_PER_EPOCH shuffled batches of 16 (the shuffle seeded by `seed`).
pub fn train_loader(seed: u64) -> Loader<(Tensor, Tensor)> {
    DataLoader::new(data(16 * BATCHES_PER_EPOCH as i64, 0)).batch_size(16).shuffle(true).seed(seed).build().unwrap()
}

/// Training batches per epoch of [`train_loader`].
pub const BATCHES_PER_EPOCH: usize = 6;

/// Two validation batches of 16.
pub fn val_loader() -> Loader<(Tensor, Tensor)> {
    DataLoader::new(data(32, 1000)).batch_size(16).build().unwrap()
}

/// Keeps every value a run sends to its loggers, with its step.
#[derive(Clone, Default)]
pub struct MemoryLogger(pub Arc<Mutex<Vec<(String, f64, usize)>>>);

impl MemoryLogger {
    /// Every record, in the order received.
    pub fn records(&self) -> Vec<(String, f64, usize)> {
        self.0.lock().unwrap().clone()
    }

    /// The records logged at steps after `step`.
    pub fn after(&self, step: usize) -> Vec<(String, f64, usize)> {
        self.records().into_iter().filter(|(_, _, s)| *s > step).collect()
    }

    /// The values of `name`.
    pub fn values(&self, name: &str) -> Vec<f64> {
        self.records().into_iter().filter(|(n, _, _)| n == name).map(|(_, v, _)| v).collect()
    }
}

impl Logger for MemoryLogger {
    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> lightning::Result<()> {
        self.0.lock().unwrap().extend(metrics.iter().map(|(n, v)| (n.clone(), *v, step)));
        Ok(())
    }
}

/// Asks for checkpoints: at the end of the training batch that reaches a global step, or at the end of an epoch.
/// Its state (the requests it made) is saved in checkpoints and restored on resume.
#[derive(Default)]
pub struct Saver {
    pub at_step: Vec<(usize, PathBuf)>,
    pub at_epoch_end: Vec<(usize, PathBuf)>,
    pub requests: usize,
    /// The state `load_state_dict` received, if any.
    pub loaded: Arc<Mutex<Option<serde_json::Value>>>,
}

impl Saver {
    pub fn at_step(step: usize, path: impl Into<PathBuf>) -> Self {
        Saver { at_step: vec![(step, path.into())], ..Saver::default() }
    }

    pub fn at_epoch_end(epoch: usize, path: impl Into<PathBuf>) -> Self {
        Saver { at_epoch_end: vec![(epoch, path.into())], ..Saver::default() }
    }
}

impl Callback for Saver {
    fn state_dict(&self) -> Option<serde_json::Value> {
        Some(serde_json::json!({ "requests": self.requests }))
    }

    fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult {
        self.requests = state["requests"].as_u64().ok_or("no `requests` in the saved state")? as usize;
        *self.loaded.lock().unwrap() = Some(state);
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        for (step, path) in &self.at_step {
            if ctx.global_step() == *step {
                self.requests += 1;
                ctx.save_checkpoint(path.clone());
            }
        }
        Ok(())
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        for (epoch, path) in &self.at_epoch_end {
            if ctx.current_epoch() == *epoch {
                self.requests += 1;
                ctx.save_checkpoint(path.clone());
            }
        }
        Ok(())
    }
}

/// The variables of `vs`, by name, copied.
pub fn weights(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    let mut all: Vec<_> = vs.variables().into_iter().map(|(n, t)| (n, t.to(Device::Cpu).copy())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

/// Whether two sets of weights are bitwise identical (same names, shapes, dtypes and values).
pub fn same_weights(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((na, ta), (nb, tb))| na == nb && ta.equal(tb))
}

/// Panics naming the first variable that differs.
pub fn assert_same_weights(a: &[(String, Tensor)], b: &[(String, Tensor)], what: &str) {
    let names = |w: &[(String, Tensor)]| w.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(a), names(b), "{what}: variable names");
    for ((name, ta), (_, tb)) in a.iter().zip(b) {
        let diff = (ta - tb).abs().max().double_value(&[]);
        assert!(ta.equal(tb), "{what}: `{name}` differs (max abs difference {diff:e})");
    }
}

/// Splits a safetensors file into its header JSON and the bytes after it.
pub fn split_safetensors(bytes: &[u8]) -> (serde_json::Value, Vec<u8>) {
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    (header, bytes[8 + len..].to_vec())
}

/// Joins a header and the tensors' bytes into a safetensors file (the header padded with spaces to 8 bytes).
pub fn join_safetensors(header: &serde_json::Value, data: &[u8]) -> Vec<u8> {
    let mut json = serde_json::to_vec(header).unwrap();
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    out
}

/// Rewrites the `lightning-rs` metadata JSON of the checkpoint at `path` in place, with its checksum, as a tool
/// that knows the format would (not atomically: a test tool).
pub fn edit_metadata(path: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let bytes = std::fs::read(path).unwrap();
    let (mut header, data) = split_safetensors(&bytes);
    let entry = &mut header["__metadata__"]["lightning-rs"];
    let mut meta: serde_json::Value = serde_json::from_str(entry.as_str().unwrap()).unwrap();
    edit(&mut meta);
    let json = meta.to_string();
    header["__metadata__"]["lightning-rs.crc32c"] = format!("{:08x}", crc32c::crc32c(json.as_bytes())).into();
    header["__metadata__"]["lightning-rs"] = serde_json::Value::String(json);
    std::fs::write(path, join_safetensors(&header, &data)).unwrap();
}

/// The checkpoint files a folder holds (`*.ckpt`), sorted.
pub fn checkpoint_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "ckpt"))
        .collect();
    files.sort();
    files
}

/// The names of files a folder holds whose name says they are partial writes.
pub fn partial_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".ckpt-partial"))
        .collect()
}
