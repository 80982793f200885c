//! `StochasticWeightAveraging` of a model with batch norm: one more epoch after the last, forward only, whose
//! running statistics end as the mean over that epoch's batches of the batches' statistics under the averaged
//! weights (checked against the same computed by hand), with the epoch counters as Lightning's; a model without
//! batch norm gets no extra epoch; and a run resumed from inside that epoch ends where the uninterrupted one ends.

use std::any::Any;
use std::sync::{Arc, Mutex};

mod common;

use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, AnyModule, CallbackResult, DataLoader, StochasticWeightAveraging, Trainer};

const EPOCHS: usize = 4;
const BATCHES: usize = 5;

/// (epoch, `ctx.max_epochs()`, global step) of one training step.
type Step = (usize, Option<usize>, usize);

/// Named weights.
type Weights = Vec<(String, Tensor)>;

/// What `training_step` and `on_train_end` saw: (epoch, `ctx.max_epochs()`, global step) per step, and
/// `ctx.max_epochs()` when training ended.
#[derive(Clone, Default)]
struct Seen {
    steps: Arc<Mutex<Vec<Step>>>,
    max_epochs_at_end: Arc<Mutex<Option<Option<usize>>>>,
}

/// `3 -> 5 -> batch norm -> tanh -> 1`, or without the batch norm.
struct Net {
    vs: nn::VarStore,
    l1: nn::Linear,
    bn: Option<nn::BatchNorm>,
    l2: nn::Linear,
    seen: Seen,
}

impl Net {
    fn new(batch_norm: bool, seen: Seen) -> Self {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let l1 = nn::linear(vs.root() / "l1", 3, 5, Default::default());
        let bn = batch_norm.then(|| nn::batch_norm1d(vs.root() / "bn", 5, Default::default()));
        let l2 = nn::linear(vs.root() / "l2", 5, 1, Default::default());
        Net { vs, l1, bn, l2, seen }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        let h = self.l1.forward(x);
        let h = match &self.bn {
            Some(bn) => bn.forward_t(&h, true),
            None => h,
        };
        self.l2.forward(&h.tanh())
    }
}

#[lightning_module]
impl Net {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> Tensor {
        self.seen.steps.lock().unwrap().push((ctx.current_epoch(), ctx.max_epochs(), ctx.global_step()));
        self.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }

    fn on_train_end(&mut self, ctx: &mut Ctx) {
        *self.seen.max_epochs_at_end.lock().unwrap() = Some(ctx.max_epochs());
    }
}

/// 5 batches of 8: `y = x · w + 0.5`, in a fixed order.
fn loader() -> Loader<(Tensor, Tensor)> {
    let x = (Tensor::arange(120, (Kind::Float, Device::Cpu)) * 0.37).sin().reshape([40, 3]) * 2.0 + 0.3;
    let y = x.matmul(&Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([3, 1])) + 0.5;
    DataLoader::new((x, y)).batch_size(8).build().unwrap()
}

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .accelerator(Accelerator::Cpu)
        .seed(5)
        .max_epochs(EPOCHS)
}

/// Averaging from the second epoch: epochs 1, 2 and 3 (zero-based) are averaged.
fn swa() -> StochasticWeightAveraging {
    StochasticWeightAveraging::new(0.05).swa_epoch_start(2).annealing_epochs(1)
}

/// The trainable weights at the start of every training epoch.
#[derive(Clone, Default)]
struct EpochStarts(Arc<Mutex<Vec<Weights>>>);

fn parameters(vs: &nn::VarStore) -> Weights {
    let mut named: Vec<_> =
        vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).map(|(n, t)| (n, t.detach().copy())).collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

impl Callback for EpochStarts {
    fn on_train_epoch_start(&mut self, _ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        self.0.lock().unwrap().push(parameters(module.var_store()));
        Ok(())
    }
}

fn max_difference(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// The mean of the epoch's averaged weights (epochs 1 to 3).
fn swa_average(starts: &[Weights]) -> Weights {
    let averaged = &starts[1..EPOCHS];
    averaged[0]
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let sum = averaged.iter().map(|w| w[i].1.shallow_clone()).reduce(|a, b| a + b).unwrap();
            (name.clone(), sum / averaged.len() as f64)
        })
        .collect()
}

fn assert_parameters(module: &Net, expected: &[(String, Tensor)], what: &str) {
    for ((name, got), (_, want)) in parameters(&module.vs).iter().zip(expected) {
        let d = max_difference(got, want);
        assert!(d < 1e-6, "{what}: `{name}` is {d} away");
    }
}

#[test]
fn batch_norm_gets_an_extra_forward_only_epoch_whose_statistics_average_the_swa_weights_batches() {
    let _serial = serial();
    let seen = Seen::default();
    let starts = EpochStarts::default();
    let mut module = Net::new(true, seen.clone());
    let mut t = trainer().callback(swa()).callback(starts.clone());
    t.fit(&mut module, loader(), None).unwrap();

    // Lightning's counters: one epoch more, run without optimizer steps, and `max_epochs` back afterwards.
    assert_eq!(t.current_epoch(), EPOCHS + 1);
    assert_eq!(t.global_step(), EPOCHS * BATCHES, "the batch-norm epoch steps no optimizer");
    let steps = seen.steps.lock().unwrap().clone();
    assert_eq!(steps.len(), (EPOCHS + 1) * BATCHES);
    assert!(steps.iter().all(|(_, max, _)| *max == Some(EPOCHS + 1)), "max_epochs during fit: {steps:?}");
    let last: Vec<_> = steps.iter().filter(|(e, _, _)| *e == EPOCHS).collect();
    assert_eq!(last.len(), BATCHES);
    assert!(last.iter().all(|(_, _, step)| *step == EPOCHS * BATCHES), "{last:?}");
    assert_eq!(*seen.max_epochs_at_end.lock().unwrap(), Some(Some(EPOCHS)));

    // The weights are the SWA average, from the batch-norm epoch's start on.
    let starts = std::mem::take(&mut *starts.0.lock().unwrap());
    assert_eq!(starts.len(), EPOCHS + 1);
    let average = swa_average(&starts);
    assert_parameters(&module, &average, "after fit");
    for ((name, got), (_, want)) in starts[EPOCHS].iter().zip(&average) {
        assert!(max_difference(got, want) < 1e-6, "the batch-norm epoch starts from the average: `{name}`");
    }

    // The reference: each batch's statistics under the final weights (PyTorch's running variance is the
    // unbiased one), averaged over the epoch's batches.
    let (mut means, mut vars) = (Vec::new(), Vec::new());
    tch::no_grad(|| {
        let mut data = loader();
        for batch in data.batches(EPOCHS) {
            let (x, _) = batch.unwrap();
            let h = module.l1.forward(&x);
            means.push(h.mean_dim(0, false, Kind::Float));
            vars.push(h.var_dim(0, true, false));
        }
    });
    assert_eq!(means.len(), BATCHES);
    let expected_mean = Tensor::stack(&means, 0).mean_dim(0, false, Kind::Float);
    let expected_var = Tensor::stack(&vars, 0).mean_dim(0, false, Kind::Float);
    let bn = module.bn.as_ref().unwrap();
    let (dm, dv) = (max_difference(&bn.running_mean, &expected_mean), max_difference(&bn.running_var, &expected_var));
    eprintln!(
        "running mean {:?} (off by {dm:e}), running var {:?} (off by {dv:e})",
        Vec::<f32>::try_from(&bn.running_mean).unwrap(),
        Vec::<f32>::try_from(&bn.running_var).unwrap()
    );
    assert!(dm < 1e-5 && dv < 1e-5, "running mean off by {dm}, running var off by {dv}");
    // (Not what training's exponential average left: that one ran with the trained weights.)
    let trained_only = {
        let mut plain = Net::new(true, Seen::default());
        trainer().max_epochs(EPOCHS).fit(&mut plain, loader(), None).unwrap();
        plain.bn.unwrap().running_mean
    };
    assert!(max_difference(&trained_only, &expected_mean) > 1e-3);
}

#[test]
fn a_model_without_batch_norm_gets_no_extra_epoch() {
    let _serial = serial();
    let seen = Seen::default();
    let starts = EpochStarts::default();
    let mut module = Net::new(false, seen.clone());
    let mut t = trainer().callback(swa()).callback(starts.clone());
    t.fit(&mut module, loader(), None).unwrap();
    assert_eq!((t.current_epoch(), t.global_step()), (EPOCHS, EPOCHS * BATCHES));
    let steps = seen.steps.lock().unwrap().clone();
    assert_eq!(steps.len(), EPOCHS * BATCHES);
    assert!(steps.iter().all(|(_, max, _)| *max == Some(EPOCHS)));
    let starts = std::mem::take(&mut *starts.0.lock().unwrap());
    assert_parameters(&module, &swa_average(&starts), "after fit");
}

#[test]
fn fast_dev_run_with_batch_norm_runs_its_batches_once_without_the_extra_epoch() {
    let _serial = serial();
    let seen = Seen::default();
    let mut module = Net::new(true, seen.clone());
    let mut t = trainer().fast_dev_run(2).callback(swa());
    t.fit(&mut module, loader(), None).unwrap();
    // Lightning's fast_dev_run stops on its `max_steps` inside the first epoch: one epoch, its batches trained.
    let steps = seen.steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert!(steps.iter().all(|(epoch, max, _)| (*epoch, *max) == (0, Some(1))), "{steps:?}");
    assert_eq!((t.current_epoch(), t.global_step()), (1, 2));
    // What the real run would refuse, the dev run refuses too.
    let mut module = Net::new(true, Seen::default());
    let mut t = trainer().fast_dev_run(2).callback(swa().batch_norm_momentum(0.0));
    let err = t.fit(&mut module, loader(), None).unwrap_err().to_string();
    assert!(err.contains("batch_norm_momentum"), "{err}");
}

/// Saves a checkpoint after batch `batch` of epoch `epoch` and stops there.
struct SaveAndStop {
    epoch: usize,
    batch: usize,
    path: std::path::PathBuf,
}

impl Callback for SaveAndStop {
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn Any,
        batch_idx: usize,
    ) -> CallbackResult {
        if (ctx.current_epoch(), batch_idx) == (self.epoch, self.batch) {
            ctx.save_checkpoint(self.path.clone());
            ctx.request_stop();
        }
        Ok(())
    }
}

#[test]
fn a_run_resumed_inside_the_batch_norm_epoch_ends_as_the_uninterrupted_one() {
    let _serial = serial();
    let mut straight = Net::new(true, Seen::default());
    trainer().callback(swa()).fit(&mut straight, loader(), None).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("bn.ckpt");
    let mut first = Net::new(true, Seen::default());
    let stop = SaveAndStop { epoch: EPOCHS, batch: 2, path: ckpt.clone() };
    trainer().callback(swa()).callback(stop).fit(&mut first, loader(), None).unwrap();

    let seen = Seen::default();
    let mut resumed = Net::new(true, seen.clone());
    let mut t = trainer().callback(swa());
    t.fit_from(&mut resumed, loader(), None, &ckpt).unwrap();
    // Only the batch-norm epoch's last two batches ran, forward only.
    let steps = seen.steps.lock().unwrap().clone();
    assert_eq!(steps.len(), 2, "{steps:?}");
    assert_eq!((t.current_epoch(), t.global_step()), (EPOCHS + 1, EPOCHS * BATCHES));
    for (name, a) in straight.vs.variables() {
        let b = &resumed.vs.variables()[&name];
        assert!(a.equal(b), "`{name}` differs after the resume: {a:?} vs {b:?}");
    }
}
