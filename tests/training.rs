//! Real training runs on tiny models: losses fall, seeds repeat, options do what they say.

use std::sync::{Arc, Mutex};

mod common;

use common::{accelerators, serial};
use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Limit, Logger, Trainer};

/// Keeps every value a run sends to its loggers.
#[derive(Clone, Default)]
struct MemoryLogger(Arc<Mutex<Vec<(String, f64, usize)>>>);

impl MemoryLogger {
    fn values(&self, name: &str) -> Vec<f64> {
        self.0.lock().unwrap().iter().filter(|(n, _, _)| n == name).map(|(_, v, _)| *v).collect()
    }
}

impl Logger for MemoryLogger {
    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> lightning::Result<()> {
        let mut all = self.0.lock().unwrap();
        all.extend(metrics.iter().map(|(n, v)| (n.clone(), *v, step)));
        Ok(())
    }
}

/// `y = sin(x · w)` on 8 features.
fn regression_data(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let x = Tensor::rand([n, 8], (Kind::Float, Device::Cpu)) * 2.0 - 1.0;
    let w = Tensor::randn([8, 1], (Kind::Float, Device::Cpu));
    let y = x.matmul(&w).sin();
    (x, y)
}

struct Regression {
    vs: nn::VarStore,
    net: nn::Sequential,
    lr: f64,
}

impl Regression {
    fn new(seed: i64) -> Self {
        tch::manual_seed(seed);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 8, 32, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", 32, 1, Default::default()));
        Regression { vs, net, lr: 1e-2 }
    }
}

#[lightning_module]
impl Regression {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_epoch(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("val_loss", &loss).prog_bar(true);
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, self.lr)
    }
}

type Pairs = Loader<(Tensor, Tensor)>;

fn regression_loaders(shuffle_seed: u64) -> (Pairs, Pairs) {
    let (x, y) = regression_data(640, 7);
    let (vx, vy) = (x.narrow(0, 512, 128), y.narrow(0, 512, 128));
    let (x, y) = (x.narrow(0, 0, 512), y.narrow(0, 0, 512));
    let train = DataLoader::new((x, y)).batch_size(32).shuffle(true).seed(shuffle_seed).build().unwrap();
    let val = DataLoader::new((vx, vy)).batch_size(64).build().unwrap();
    (train, val)
}

fn fit_regression(accelerator: Accelerator, seed: u64) -> (Vec<f64>, Trainer, Regression) {
    let logger = MemoryLogger::default();
    let mut module = Regression::new(seed as i64);
    let (train, val) = regression_loaders(seed);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(15)
        .accelerator(accelerator)
        .seed(seed)
        .log_every_n_steps(1)
        .logger(logger.clone());
    trainer.fit(&mut module, train, val).unwrap();
    (logger.values("train_loss_epoch"), trainer, module)
}

#[test]
fn regression_loss_falls_below_a_bound() {
    let _serial = serial();
    for accelerator in accelerators() {
        let (epoch_losses, trainer, _) = fit_regression(accelerator, 3);
        assert_eq!(epoch_losses.len(), 15);
        let (first, last) = (epoch_losses[0], *epoch_losses.last().unwrap());
        assert!(last < first / 5.0, "epoch losses on {accelerator:?}: {epoch_losses:?}");
        assert!(last < 0.05, "final training loss on {accelerator:?}: {last}");
        assert!(trainer.callback_metrics()["val_loss"] < 0.05, "{:?}", trainer.callback_metrics());
        assert_eq!(trainer.global_step(), 15 * 16);
        assert_eq!(trainer.current_epoch(), 15);
    }
}

#[test]
fn the_same_seed_gives_identical_losses() {
    let _serial = serial();
    for accelerator in accelerators() {
        same_seed_same_losses(accelerator);
    }
}

fn same_seed_same_losses(accelerator: Accelerator) {
    let (a, _, module_a) = fit_regression(accelerator, 11);
    let (b, _, module_b) = fit_regression(accelerator, 11);
    assert_eq!(a, b, "same seed, same epoch losses, bit for bit");
    let b_vars = module_b.vs.variables();
    for (name, va) in module_a.vs.variables() {
        assert!(va.equal(&b_vars[&name]), "variable {name} differs");
    }
    let (c, _, _) = fit_regression(accelerator, 12);
    assert_ne!(a, c, "another seed, other losses");
}

/// Three Gaussian blobs in 2-D.
fn blobs(n: i64, seed: i64) -> (Tensor, Tensor) {
    tch::manual_seed(seed);
    let labels = Tensor::randint(3, [n], (Kind::Int64, Device::Cpu));
    let centres = Tensor::from_slice(&[0.0f32, 3.0, 3.0, -2.0, -3.0, -2.0]).reshape([3, 2]);
    let x = centres.index_select(0, &labels) + Tensor::randn([n, 2], (Kind::Float, Device::Cpu)) * 0.7;
    (x, labels)
}

struct Classifier {
    vs: nn::VarStore,
    net: nn::Sequential,
    correct: i64,
    seen: i64,
}

#[lightning_module]
impl Classifier {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).cross_entropy_for_logits(y);
        ctx.log("train_loss", &loss).on_step(false).on_epoch(true);
        loss
    }

    fn on_validation_epoch_start(&mut self) {
        (self.correct, self.seen) = (0, 0);
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let logits = self.net.forward(x);
        ctx.log("val_loss", logits.cross_entropy_for_logits(y));
        self.correct += logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64).int64_value(&[]);
        self.seen += y.size()[0];
    }

    fn on_validation_epoch_end(&mut self, ctx: &mut Ctx) {
        ctx.log("val_acc", self.correct as f64 / self.seen as f64);
    }

    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        (Optimizer::sgd(&self.vs, 0.1).momentum(0.9), LrScheduler::cosine(10, 0.01))
    }
}

#[test]
fn classification_loss_falls_and_validation_accuracy_is_high() {
    let _serial = serial();
    for accelerator in accelerators() {
        classification(accelerator);
    }
}

fn classification(accelerator: Accelerator) {
    let logger = MemoryLogger::default();
    let vs = nn::VarStore::new(Device::Cpu);
    let net = nn::seq()
        .add(nn::linear(vs.root() / "l1", 2, 16, Default::default()))
        .add_fn(|x| x.relu())
        .add(nn::linear(vs.root() / "l2", 16, 3, Default::default()));
    let mut module = Classifier { vs, net, correct: 0, seen: 0 };
    let train = DataLoader::new(blobs(600, 1)).batch_size(50).shuffle(true).seed(5).build().unwrap();
    let val = DataLoader::new(blobs(200, 2)).batch_size(100).build().unwrap();
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(10)
        .accelerator(accelerator)
        .seed(0)
        .logger(logger.clone());
    trainer.fit(&mut module, train, val).unwrap();
    let losses = logger.values("train_loss");
    assert_eq!(losses.len(), 10);
    assert!(losses[9] < losses[0] / 2.0 && losses[9] < 0.25, "epoch losses {losses:?}");
    let accuracy = trainer.callback_metrics()["val_acc"];
    assert!(accuracy > 0.9, "validation accuracy {accuracy}");
}

#[test]
fn max_steps_stops_mid_epoch_and_min_epochs_outlasts_a_stop_request() {
    let _serial = serial();
    let (train, _) = regression_loaders(1);
    let mut module = Regression::new(1);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_steps(20)
        .accelerator(Accelerator::Cpu)
        .limit_val_batches(0);
    trainer.fit(&mut module, train, None).unwrap();
    assert_eq!(trainer.global_step(), 20);
    assert_eq!(trainer.current_epoch(), 2, "16 steps in epoch 0, then 4 of epoch 1");

    struct StopAtOnce;
    impl Callback for StopAtOnce {
        fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
            ctx.request_stop();
            Ok(())
        }
    }
    let (train, _) = regression_loaders(1);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(10)
        .min_epochs(3)
        .accelerator(Accelerator::Cpu)
        .limit_val_batches(0)
        .callback(StopAtOnce);
    trainer.fit(&mut module, train, None).unwrap();
    assert_eq!(trainer.current_epoch(), 3);
}

#[test]
fn batch_limits_fast_dev_run_and_validation_intervals() {
    let _serial = serial();
    let counting = MemoryLogger::default();
    let (train, val) = regression_loaders(1);
    let mut module = Regression::new(1);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(2)
        .accelerator(Accelerator::Cpu)
        .limit_train_batches(0.25)
        .limit_val_batches(1)
        .val_check_interval(2)
        .check_val_every_n_epoch(None)
        .logger(counting.clone());
    trainer.fit(&mut module, train, val).unwrap();
    assert_eq!(trainer.global_step(), 8, "a quarter of 16 batches, two epochs");
    assert_eq!(counting.values("val_loss").len(), 4, "validation every 2 of 4 batches, two epochs");

    let (train, val) = regression_loaders(1);
    let mut trainer =
        Trainer::new().logger(false).enable_checkpointing(false).fast_dev_run(2).accelerator(Accelerator::Cpu);
    trainer.fit(&mut module, train, val).unwrap();
    assert_eq!((trainer.global_step(), trainer.current_epoch()), (2, 1));

    let (train, val) = regression_loaders(1);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .overfit_batches(2)
        .accelerator(Accelerator::Cpu);
    trainer.fit(&mut module, train, val).unwrap();
    assert_eq!(trainer.global_step(), 6);
}

#[test]
fn any_iterator_of_batches_can_be_the_data() {
    let _serial = serial();
    let (x, y) = regression_data(64, 3);
    let train = Loader::from_fn(move |_epoch| {
        let (x, y) = (x.shallow_clone(), y.shallow_clone());
        (0..4).map(move |i| (x.narrow(0, i * 16, 16), y.narrow(0, i * 16, 16)))
    });
    let mut module = Regression::new(2);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(2)
        .accelerator(Accelerator::Cpu)
        .limit_val_batches(0);
    trainer.fit(&mut module, train, None).unwrap();
    assert_eq!(trainer.global_step(), 8);
    assert_eq!(Limit::from(0.5), Limit::Fraction(0.5));
}

/// A small GAN-like module with two optimizers it steps itself.
struct TwoOptimizers {
    vs: nn::VarStore,
    generator: nn::Linear,
    critic: nn::Linear,
    generator_vars: Vec<Tensor>,
    critic_vars: Vec<Tensor>,
}

#[lightning_module(manual_optimization)]
impl TwoOptimizers {
    fn training_step(
        &mut self,
        (x, y): &(Tensor, Tensor),
        _batch_idx: usize,
        ctx: &mut Ctx,
    ) -> lightning::Result<Tensor> {
        let critic_loss = self.critic.forward(x).mse_loss(y, Reduction::Mean);
        let opts = ctx.optimizers();
        opts[1].zero_grad()?;
        critic_loss.f_backward()?;
        opts[1].step()?;
        let generator_loss = self.generator.forward(x).mse_loss(y, Reduction::Mean);
        let opts = ctx.optimizers();
        opts[0].zero_grad()?;
        ctx.manual_backward(self, &generator_loss)?;
        ctx.optimizers()[0].step()?;
        ctx.log("generator_loss", &generator_loss).on_epoch(true);
        Ok(generator_loss)
    }

    fn configure_optimizers(&mut self) -> Vec<Optimizer> {
        vec![Optimizer::adam(&self.generator_vars[..], 1e-2), Optimizer::sgd(&self.critic_vars[..], 1e-2)]
    }
}

#[test]
fn manual_optimization_steps_both_optimizers() {
    let _serial = serial();
    for accelerator in accelerators() {
        manual_optimization(accelerator);
    }
}

fn manual_optimization(accelerator: Accelerator) {
    let vs = nn::VarStore::new(Device::Cpu);
    let generator = nn::linear(vs.root() / "g", 8, 1, Default::default());
    let critic = nn::linear(vs.root() / "c", 8, 1, Default::default());
    let generator_vars = vec![generator.ws.shallow_clone(), generator.bs.as_ref().unwrap().shallow_clone()];
    let critic_vars = vec![critic.ws.shallow_clone(), critic.bs.as_ref().unwrap().shallow_clone()];
    let critic_before = critic.ws.copy();
    let mut module = TwoOptimizers { vs, generator, critic, generator_vars, critic_vars };
    let logger = MemoryLogger::default();
    let (train, _) = regression_loaders(4);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(5)
        .accelerator(accelerator)
        .limit_val_batches(0)
        .logger(logger.clone());
    trainer.fit(&mut module, train, None).unwrap();
    assert_eq!(trainer.global_step(), 5 * 16 * 2, "every optimizer step counts");
    assert!(!module.critic.ws.to(Device::Cpu).equal(&critic_before), "the critic's optimizer stepped");
    let losses = logger.values("generator_loss_epoch");
    assert!(losses[4] < losses[0], "{losses:?}");
}

/// Records the gradient norm the optimizer stepped with, as seen after each step.
struct ClipProbe {
    vs: nn::VarStore,
    linear: nn::Linear,
    norms: Vec<f64>,
    max_abs: Vec<f64>,
}

#[lightning_module]
impl ClipProbe {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        // A large loss, so that the gradients are far beyond the clipping value.
        self.linear.forward(x).mse_loss(y, Reduction::Sum) * 1000.0
    }

    fn on_train_batch_end(&mut self, _outputs: &StepOutput, _batch: &(Tensor, Tensor)) {
        let grads: Vec<Tensor> = self.vs.trainable_variables().iter().map(|v| v.grad().flatten(0, -1)).collect();
        let all = Tensor::cat(&grads, 0);
        self.norms.push(all.norm().double_value(&[]));
        self.max_abs.push(all.abs().max().double_value(&[]));
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 1e-6)
    }
}

#[test]
fn gradient_clipping_by_norm_and_by_value() {
    let _serial = serial();
    for algorithm in [GradClipAlgorithm::Norm, GradClipAlgorithm::Value] {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 8, 1, Default::default());
        let mut module = ClipProbe { vs, linear, norms: Vec::new(), max_abs: Vec::new() };
        let (train, _) = regression_loaders(1);
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_epochs(1)
            .accelerator(Accelerator::Cpu)
            .limit_val_batches(0)
            .gradient_clip_val(0.5)
            .gradient_clip_algorithm(algorithm);
        trainer.fit(&mut module, train, None).unwrap();
        match algorithm {
            GradClipAlgorithm::Norm => {
                assert!(module.norms.iter().all(|n| *n <= 0.5 + 1e-4), "{:?}", module.norms);
                assert!(module.norms.iter().all(|n| *n > 0.49), "large enough to be clipped: {:?}", module.norms);
            }
            GradClipAlgorithm::Value => {
                assert!(module.max_abs.iter().all(|m| *m <= 0.5 + 1e-6), "{:?}", module.max_abs)
            }
        }
    }
}

/// Sleeps after every batch, so that a time limit comes round mid-epoch.
struct Slow;

impl Callback for Slow {
    fn on_train_batch_end(
        &mut self,
        _: &mut Ctx,
        _: &mut dyn lightning::AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
    ) -> lightning::CallbackResult {
        std::thread::sleep(std::time::Duration::from_millis(20));
        Ok(())
    }
}

#[test]
fn max_time_stops_at_the_next_batch_boundary() {
    let _serial = serial();
    let (train, _) = regression_loaders(1);
    let mut module = Regression::new(1);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(1000)
        .max_time(std::time::Duration::from_millis(50))
        .accelerator(Accelerator::Cpu)
        .limit_val_batches(0)
        .callback(Slow);
    trainer.fit(&mut module, train, None).unwrap();
    // Each batch takes at least 20 ms, so the limit ends the run within the first epoch of 16 batches.
    assert!((1..16).contains(&trainer.global_step()), "stopped after {} steps", trainer.global_step());
    assert_eq!(trainer.current_epoch(), 1);
}

/// Records where each training batch's `x` lives; with `scale_in_place`, also doubles the batch in place in
/// `on_after_batch_transfer`, a hook that takes batches by value.
struct BatchProbe {
    vs: nn::VarStore,
    linear: nn::Linear,
    pointers: Vec<usize>,
}

#[lightning_module]
impl BatchProbe {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.pointers.push(x.data_ptr() as usize);
        self.linear.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

struct InPlaceProbe {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module]
impl InPlaceProbe {
    fn on_after_batch_transfer(&mut self, (mut x, y): (Tensor, Tensor), _dataloader_idx: usize) -> (Tensor, Tensor) {
        let _ = x.f_mul_scalar_(2.0).unwrap();
        (x, y)
    }

    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.linear.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

#[test]
fn batches_share_the_datasets_memory_only_when_no_hook_can_write_into_them() {
    let _serial = serial();
    let x = Tensor::rand([32, 4], (Kind::Float, Device::Cpu));
    let y = Tensor::rand([32, 1], (Kind::Float, Device::Cpu));
    let original = x.copy();
    let loader = || DataLoader::new((x.shallow_clone(), y.shallow_clone())).batch_size(8).build().unwrap();
    let quiet = || {
        Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .accelerator(Accelerator::Cpu)
            .max_epochs(2)
            .enable_progress_bar(false)
    };

    // No by-value batch hook and no `map`: unshuffled batches are views into the dataset, no copy.
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root() / "l", 4, 1, Default::default());
    let mut probe = BatchProbe { vs, linear, pointers: Vec::new() };
    quiet().fit(&mut probe, loader(), None).unwrap();
    let base = x.data_ptr() as usize;
    let row_bytes = 4 * 4;
    let expected: Vec<usize> = (0..2).flat_map(|_| (0..4).map(move |b| base + b * 8 * row_bytes)).collect();
    assert_eq!(probe.pointers, expected, "each batch is a view of its rows");

    // A hook that takes batches by value and writes into them in place: it gets copies, the data stays.
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root() / "l", 4, 1, Default::default());
    let mut writer = InPlaceProbe { vs, linear };
    quiet().fit(&mut writer, loader(), None).unwrap();
    assert!(x.equal(&original), "the dataset is unchanged");
}
