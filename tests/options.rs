//! Options and values that cannot work are refused when `fit` starts, with an `Err` naming the option, before any
//! hook runs or any weight changes: whether they come from the Trainer, from `configure_optimizers` or from a
//! checkpoint.

mod common;

use common::checkpointing::{edit_metadata, train_loader, val_loader, weights, Net, Opt, Saver};
use common::recorder::{Log, RecordingCallback};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, Trainer};

fn cpu() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .max_epochs(2)
}

/// What `configure_optimizers` returns, made from the module's variables.
type Make = fn(&nn::VarStore) -> (Vec<Optimizer>, Vec<LrScheduler>);

/// A change to a checkpoint's metadata JSON.
type Edit = fn(&mut serde_json::Value);

/// The MLP with the optimizer and scheduler a test gives it.
struct Configured {
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
    make: Make,
}

impl Configured {
    fn new(make: Make) -> Self {
        let Net { vs, layers, .. } = Net::mlp(0.0, Opt::SgdOnly);
        Configured { vs, layers, make }
    }
}

#[lightning_module]
impl Configured {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        let h = self.layers[0].forward(x).relu();
        self.layers[1].forward(&h).mse_loss(y, Reduction::Mean)
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        let h = self.layers[0].forward(x).relu();
        ctx.log("val_loss", self.layers[1].forward(&h).mse_loss(y, Reduction::Mean));
    }

    fn configure_optimizers(&mut self) -> (Vec<Optimizer>, Vec<LrScheduler>) {
        (self.make)(&self.vs)
    }
}

fn sgd(vs: &nn::VarStore) -> (Vec<Optimizer>, Vec<LrScheduler>) {
    (vec![Optimizer::sgd(vs, 0.05)], Vec::new())
}

/// `fit` fails saying `expected`, and the weights have not moved.
fn refused(trainer: Trainer, make: Make, expected: &str) {
    let mut module = Configured::new(make);
    let before = weights(&module.vs);
    let log = Log::default();
    let mut trainer = trainer.callback(RecordingCallback(log.clone()));
    let error = trainer.fit(&mut module, train_loader(1), val_loader()).unwrap_err().to_string();
    assert!(error.contains(expected), "expected `{expected}` in: {error}");
    assert!(!log.lock().unwrap().iter().any(|call| call.contains("on_train_batch_start")), "no batch ran");
    let after = weights(&module.vs);
    assert!(before.iter().zip(&after).all(|((_, a), (_, b))| a.equal(b)), "the weights did not move");
}

#[test]
fn gradient_clip_val_that_is_nan_or_negative_is_refused() {
    refused(cpu().gradient_clip_val(f64::NAN), sgd, "gradient_clip_val = NaN");
    refused(cpu().gradient_clip_val(-1.0), sgd, "gradient_clip_val = -1");
    // 0 means no clipping, as in Lightning.
    let mut module = Configured::new(sgd);
    cpu().gradient_clip_val(0.0).fit(&mut module, train_loader(1), val_loader()).unwrap();
}

#[test]
fn val_check_interval_out_of_range_is_refused() {
    for fraction in [0.0, -0.5, 1.5, f64::NAN] {
        refused(cpu().val_check_interval(fraction), sgd, "val_check_interval = ");
    }
    refused(cpu().val_check_interval(0), sgd, "val_check_interval must be at least 1 batch");
    // An epoch of the loader has 6 batches (Lightning raises too).
    refused(cpu().val_check_interval(7), sgd, "val_check_interval = 7 batches, but an epoch trains 6");
    refused(cpu().val_check_interval(4).limit_train_batches(3), sgd, "but an epoch trains 3");
    let mut module = Configured::new(sgd);
    cpu().val_check_interval(6).fit(&mut module, train_loader(1), val_loader()).unwrap();
    refused(cpu().limit_val_batches(f64::NAN), sgd, "limit_val_batches = NaN");
}

#[test]
fn optimizer_settings_that_cannot_work_are_refused() {
    refused(cpu(), |vs| (vec![Optimizer::sgd(vs, f64::NAN)], vec![]), "learning rate = NaN");
    refused(cpu(), |vs| (vec![Optimizer::adam(vs, -1e-3)], vec![]), "learning rate = -0.001");
    refused(cpu(), |vs| (vec![Optimizer::adam(vs, 1e-3).betas(1.0, 0.999)], vec![]), "beta1 = 1");
    refused(cpu(), |vs| (vec![Optimizer::sgd(vs, 0.1).momentum(f64::NAN)], vec![]), "momentum = NaN");
    refused(cpu(), |vs| (vec![Optimizer::adamw(vs, 0.1).weight_decay(-0.1)], vec![]), "weight_decay = -0.1");
}

#[test]
fn schedulers_that_would_divide_by_zero_are_refused() {
    let cases: [(Make, &str); 5] = [
        (|vs| (vec![Optimizer::sgd(vs, 0.1)], vec![LrScheduler::step_lr(0, 0.5)]), "step_size = 0"),
        (|vs| (vec![Optimizer::sgd(vs, 0.1)], vec![LrScheduler::cosine(0, 0.0)]), "T_max = 0"),
        (|vs| (vec![Optimizer::sgd(vs, 0.1)], vec![LrScheduler::step_lr(2, 0.5).frequency(0)]), "frequency = 0"),
        (|vs| (vec![Optimizer::sgd(vs, 0.1)], vec![LrScheduler::step_lr(2, f64::NAN)]), "gamma = NaN"),
        (|vs| (vec![Optimizer::sgd(vs, 0.1)], vec![LrScheduler::linear_warmup(3, 0.0)]), "start_factor = 0"),
    ];
    for (make, expected) in cases {
        refused(cpu(), make, &format!("LR scheduler 0 from `configure_optimizers`: {expected}"));
    }
}

#[test]
fn a_checkpoint_with_settings_that_cannot_work_is_refused() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ckpt");
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    cpu()
        .max_epochs(1)
        .callback(Saver::at_epoch_end(0, &good))
        .fit(&mut module, train_loader(1), val_loader())
        .unwrap();

    let edits: [(&str, Edit, &str); 3] = [
        ("step0", |meta| meta["schedulers"][0]["schedule"]["Step"]["step_size"] = 0.into(), "step_size = 0"),
        ("freq0", |meta| meta["schedulers"][0]["frequency"] = 0.into(), "frequency = 0"),
        ("lr-nan", |meta| meta["optimizers"][0]["lr"] = "nan".into(), "learning rate = NaN"),
    ];
    for (name, edit, expected) in edits {
        let path = dir.path().join(format!("{name}.ckpt"));
        std::fs::copy(&good, &path).unwrap();
        edit_metadata(&path, edit);
        let mut module = Net::mlp(0.0, Opt::AdamStepLr);
        let error =
            cpu().max_epochs(3).fit_from(&mut module, train_loader(1), val_loader(), &path).unwrap_err().to_string();
        assert!(error.starts_with(&format!("checkpoint {}: ", path.display())), "{error}");
        assert!(error.contains(expected), "{name}: {error}");
    }
}

/// Records the clipping settings `configure_gradient_clipping` receives.
struct ClipSpy {
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
    seen: Vec<(Option<f64>, Option<lightning::GradClipAlgorithm>)>,
}

#[lightning_module]
impl ClipSpy {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        let h = self.layers[0].forward(x).relu();
        self.layers[1].forward(&h).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }

    fn configure_gradient_clipping(
        &mut self,
        optimizer: &mut Optimizer,
        gradient_clip_val: Option<f64>,
        gradient_clip_algorithm: Option<lightning::GradClipAlgorithm>,
    ) -> Result<(), lightning::Error> {
        self.seen.push((gradient_clip_val, gradient_clip_algorithm));
        optimizer.clip_gradients(gradient_clip_val, gradient_clip_algorithm)
    }
}

#[test]
fn configure_gradient_clipping_gets_the_trainers_settings_and_none_for_what_was_not_set() {
    use lightning::GradClipAlgorithm::Value;
    for (trainer, expected) in [
        (cpu().max_epochs(1), (None, None)),
        (cpu().max_epochs(1).gradient_clip_val(0.5), (Some(0.5), None)),
        (cpu().max_epochs(1).gradient_clip_val(0.5).gradient_clip_algorithm(Value), (Some(0.5), Some(Value))),
    ] {
        let Net { vs, layers, .. } = Net::mlp(0.0, Opt::SgdOnly);
        let mut module = ClipSpy { vs, layers, seen: Vec::new() };
        let mut trainer = trainer.limit_val_batches(0);
        trainer.fit(&mut module, train_loader(1), None).unwrap();
        assert!(!module.seen.is_empty());
        assert!(module.seen.iter().all(|seen| *seen == expected), "{:?}, expected {expected:?}", module.seen);
    }
}
