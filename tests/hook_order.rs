//! The order of hook calls, checked against full expected sequences. `FIT` is Lightning 2.x's own hook-order
//! test for `max_epochs=1, limit_train_batches=2, limit_val_batches=1, num_sanity_val_steps=2`, one SGD
//! optimizer with an epoch-interval StepLR and one callback, without the `torch.nn.Module` calls (and without
//! the checkpoint save at the end of the epoch, which the checkpoint callback adds).

mod common;

/// The `hook_order` example: a module defining every hook of the catalogue, run through every entry point.
#[path = "../examples/hook_order.rs"]
#[allow(dead_code)]
mod hook_order_example;

use common::accelerators;
use common::recorder::{regression_batches, Log, Recorder, RecordingCallback};
use lightning::prelude::*;
use lightning::{Accelerator, Trainer};

const FIT: &[&str] = &[
    "configure_callbacks",
    "prepare_data",
    "Callback.setup",
    "setup",
    "configure_model",
    "configure_optimizers",
    "Callback.on_fit_start",
    "on_fit_start",
    "Callback.on_sanity_check_start",
    "val_dataloader",
    "on_validation_model_eval",
    "Callback.on_validation_start",
    "on_validation_start",
    "Callback.on_validation_epoch_start",
    "on_validation_epoch_start",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "Callback.on_validation_batch_start",
    "on_validation_batch_start",
    "validation_step",
    "Callback.on_validation_batch_end",
    "on_validation_batch_end",
    "Callback.on_validation_epoch_end",
    "on_validation_epoch_end",
    "Callback.on_validation_end",
    "on_validation_end",
    "on_validation_model_train",
    "Callback.on_sanity_check_end",
    "train_dataloader",
    "Callback.on_train_start",
    "on_train_start",
    "Callback.on_train_epoch_start",
    "on_train_epoch_start",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "Callback.on_train_batch_start",
    "on_train_batch_start",
    "optimizer_step",
    "training_step",
    "Callback.on_before_zero_grad",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "Callback.on_before_backward",
    "on_before_backward",
    "backward",
    "Callback.on_after_backward",
    "on_after_backward",
    "Callback.on_before_optimizer_step",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "Callback.on_train_batch_end",
    "on_train_batch_end",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "Callback.on_train_batch_start",
    "on_train_batch_start",
    "optimizer_step",
    "training_step",
    "Callback.on_before_zero_grad",
    "on_before_zero_grad",
    "optimizer_zero_grad",
    "Callback.on_before_backward",
    "on_before_backward",
    "backward",
    "Callback.on_after_backward",
    "on_after_backward",
    "Callback.on_before_optimizer_step",
    "on_before_optimizer_step",
    "configure_gradient_clipping",
    "lr_scheduler_step",
    "Callback.on_train_batch_end",
    "on_train_batch_end",
    "on_validation_model_zero_grad",
    "on_validation_model_eval",
    "Callback.on_validation_start",
    "on_validation_start",
    "Callback.on_validation_epoch_start",
    "on_validation_epoch_start",
    "on_before_batch_transfer",
    "transfer_batch_to_device",
    "on_after_batch_transfer",
    "Callback.on_validation_batch_start",
    "on_validation_batch_start",
    "validation_step",
    "Callback.on_validation_batch_end",
    "on_validation_batch_end",
    "Callback.on_validation_epoch_end",
    "on_validation_epoch_end",
    "Callback.on_validation_end",
    "on_validation_end",
    "on_validation_model_train",
    "Callback.on_train_epoch_end",
    "on_train_epoch_end",
    "Callback.on_train_end",
    "on_train_end",
    "Callback.on_fit_end",
    "on_fit_end",
    "Callback.teardown",
    "teardown",
];

fn trainer_on(accelerator: Accelerator, log: &Log) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(accelerator)
        .seed(1)
        .callback(RecordingCallback(log.clone()))
}

fn trainer(log: &Log) -> Trainer {
    trainer_on(Accelerator::Cpu, log)
}

fn calls(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

const TRANSFER: [&str; 3] = ["on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer"];

/// The calls of one training batch in automatic optimization.
fn train_batch(zero_grad: bool, step: bool, scheduler: bool) -> Vec<&'static str> {
    let mut v: Vec<&str> = TRANSFER.to_vec();
    v.extend(["Callback.on_train_batch_start", "on_train_batch_start"]);
    if step {
        v.push("optimizer_step");
    }
    v.push("training_step");
    if zero_grad {
        v.extend(["Callback.on_before_zero_grad", "on_before_zero_grad", "optimizer_zero_grad"]);
    }
    v.extend([
        "Callback.on_before_backward",
        "on_before_backward",
        "backward",
        "Callback.on_after_backward",
        "on_after_backward",
    ]);
    if step {
        v.extend(["Callback.on_before_optimizer_step", "on_before_optimizer_step", "configure_gradient_clipping"]);
    }
    if scheduler {
        v.push("lr_scheduler_step");
    }
    v.extend(["Callback.on_train_batch_end", "on_train_batch_end"]);
    v
}

/// The calls of one evaluation epoch over `batches` batches (`stage` is "validation" or "test").
fn eval_epoch(stage: &str, batches: usize, model_train: bool) -> Vec<String> {
    let mut v =
        vec![format!("on_{stage}_model_eval"), format!("Callback.on_{stage}_start"), format!("on_{stage}_start")];
    v.extend([format!("Callback.on_{stage}_epoch_start"), format!("on_{stage}_epoch_start")]);
    for _ in 0..batches {
        v.extend(TRANSFER.iter().map(|s| s.to_string()));
        v.extend([
            format!("Callback.on_{stage}_batch_start"),
            format!("on_{stage}_batch_start"),
            format!("{stage}_step"),
        ]);
        v.extend([format!("Callback.on_{stage}_batch_end"), format!("on_{stage}_batch_end")]);
    }
    v.extend([format!("Callback.on_{stage}_epoch_end"), format!("on_{stage}_epoch_end")]);
    v.extend([format!("Callback.on_{stage}_end"), format!("on_{stage}_end")]);
    if model_train {
        v.push(format!("on_{stage}_model_train"));
    }
    v
}

const OPENING: [&str; 5] = ["configure_callbacks", "prepare_data", "Callback.setup", "setup", "configure_model"];
const CLOSING: [&str; 2] = ["Callback.teardown", "teardown"];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn fit_calls_hooks_in_lightnings_order() {
    for accelerator in accelerators() {
        let log = Log::default();
        let mut module = Recorder::new(log.clone());
        let mut trainer = trainer_on(accelerator, &log)
            .max_epochs(1)
            .limit_train_batches(2)
            .limit_val_batches(1)
            .num_sanity_val_steps(2);
        trainer.fit(&mut module, None, None).unwrap();
        assert_eq!(calls(&log), strings(FIT), "on {accelerator:?}");
        assert_eq!(trainer.global_step(), 2);
        assert_eq!(trainer.current_epoch(), 1);
        assert_eq!(module.vs.device(), trainer.device().unwrap());
    }
}

#[test]
fn fit_with_mixed_precision_and_a_gradient_scaler_calls_the_same_hooks() {
    for precision in [lightning::Precision::Bf16Mixed, lightning::Precision::F16Mixed] {
        let log = Log::default();
        let mut module = Recorder::new(log.clone());
        let mut trainer = trainer(&log)
            .precision(precision)
            .max_epochs(1)
            .limit_train_batches(2)
            .limit_val_batches(1)
            .num_sanity_val_steps(2);
        trainer.fit(&mut module, None, None).unwrap();
        assert_eq!(calls(&log), strings(FIT), "{precision}");
        assert_eq!(trainer.global_step(), 2, "{precision}");
    }
}

#[test]
fn validate_calls_hooks_in_lightnings_order() {
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    let metrics = trainer(&log).validate(&mut module, None).unwrap();
    let mut expected = strings(&OPENING);
    expected.push("val_dataloader".into());
    expected.extend(eval_epoch("validation", 2, true));
    expected.extend(strings(&CLOSING));
    assert_eq!(calls(&log), expected);
    assert!(metrics["val_loss"] > 0.0);
}

#[test]
fn test_calls_hooks_in_lightnings_order() {
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    let metrics = trainer(&log).test(&mut module, None).unwrap();
    let mut expected = strings(&OPENING);
    expected.push("test_dataloader".into());
    expected.extend(eval_epoch("test", 2, true));
    expected.extend(strings(&CLOSING));
    assert_eq!(calls(&log), expected);
    assert!(metrics["test_loss"] > 0.0);
}

#[test]
fn predict_calls_hooks_in_lightnings_order() {
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    let predictions = trainer(&log).predict(&mut module, None).unwrap();
    assert_eq!(predictions.len(), 2);
    assert_eq!(predictions[0].size(), [4, 1]);
    let mut expected = strings(&OPENING);
    expected.extend(strings(&[
        "predict_dataloader",
        "on_predict_model_eval",
        "Callback.on_predict_start",
        "on_predict_start",
    ]));
    expected.extend(strings(&["Callback.on_predict_epoch_start", "on_predict_epoch_start"]));
    for _ in 0..2 {
        expected.extend(strings(&TRANSFER));
        expected.extend(strings(&["Callback.on_predict_batch_start", "on_predict_batch_start", "predict_step"]));
        expected.extend(strings(&["Callback.on_predict_batch_end", "on_predict_batch_end"]));
    }
    expected.extend(strings(&[
        "Callback.on_predict_epoch_end",
        "on_predict_epoch_end",
        "Callback.on_predict_end",
        "on_predict_end",
    ]));
    expected.extend(strings(&CLOSING));
    assert_eq!(calls(&log), expected);
}

/// The training part of one epoch with gradient accumulation over 2 batches.
fn accumulation_epoch(batches: usize) -> Vec<String> {
    let mut expected = Vec::new();
    for batch_idx in 0..batches {
        let last = batch_idx + 1 == batches;
        let step = (batch_idx + 1) % 2 == 0 || last;
        expected.extend(strings(&train_batch(batch_idx % 2 == 0, step, last)));
    }
    expected
}

fn fit_with_accumulation(batches: usize) -> (Vec<String>, Trainer) {
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    module.train_batches = batches;
    let mut trainer =
        trainer(&log).max_epochs(1).accumulate_grad_batches(2).num_sanity_val_steps(0).limit_val_batches(0);
    trainer.fit(&mut module, Loader::from(regression_batches(batches)), None).unwrap();
    let all = calls(&log);
    let start = all.iter().position(|c| c == "on_train_epoch_start").unwrap() + 1;
    let end = all.iter().position(|c| c == "Callback.on_train_epoch_end").unwrap();
    (all[start..end].to_vec(), trainer)
}

#[test]
fn accumulation_over_two_batches_with_three_batches() {
    let (epoch, trainer) = fit_with_accumulation(3);
    assert_eq!(epoch, accumulation_epoch(3));
    assert_eq!(trainer.global_step(), 2);
}

#[test]
fn accumulation_over_two_batches_with_four_batches() {
    let (epoch, trainer) = fit_with_accumulation(4);
    assert_eq!(epoch, accumulation_epoch(4));
    assert_eq!(trainer.global_step(), 2);
}

#[test]
fn on_train_batch_start_skips_the_rest_of_the_epoch() {
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    module.skip_at = Some(1);
    let mut trainer = trainer(&log).max_epochs(2).num_sanity_val_steps(0);
    trainer.fit(&mut module, None, None).unwrap();
    let all = calls(&log);
    let start = all.iter().position(|c| c == "on_train_epoch_start").unwrap() + 1;
    let mut expected = strings(&train_batch(true, true, false));
    expected.extend(strings(&TRANSFER));
    expected.extend(strings(&["Callback.on_train_batch_start", "on_train_batch_start"]));
    // No training_step, no on_train_batch_end, no validation; the epoch's scheduler still steps.
    expected.extend(strings(&[
        "lr_scheduler_step",
        "Callback.on_train_epoch_end",
        "on_train_epoch_end",
        "Callback.on_train_epoch_start",
    ]));
    assert_eq!(all[start..start + expected.len()].to_vec(), expected);
    assert_eq!(trainer.global_step(), 2, "one step in each of the two epochs");
    assert_eq!(all.iter().filter(|c| *c == "on_validation_start").count(), 0);
}

#[test]
fn every_hook_of_the_catalogue_is_called() {
    let missed = hook_order_example::run().unwrap();
    assert!(missed.is_empty(), "hooks of the catalogue the Trainer never called: {missed:?}");
}

/// Manual optimization with the hooks Lightning calls from `manual_backward` and `opt.step()`.
struct ManualRecorder {
    vs: nn::VarStore,
    linear: nn::Linear,
    log: Log,
}

impl ManualRecorder {
    fn record(&self, name: &str) {
        self.log.lock().unwrap().push(name.to_string());
    }
}

#[lightning_module(manual_optimization)]
impl ManualRecorder {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> lightning::Result<Tensor> {
        self.record("training_step");
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.optimizers()[0].zero_grad()?;
        ctx.manual_backward(self, &loss)?;
        ctx.step_optimizer(self, 0)?;
        Ok(loss)
    }

    fn on_before_backward(&mut self, _loss: &Tensor) {
        self.record("on_before_backward");
    }

    fn backward(&mut self, loss: &Tensor) {
        self.record("backward");
        loss.backward();
    }

    fn on_after_backward(&mut self) {
        self.record("on_after_backward");
    }

    fn on_before_optimizer_step(&mut self, _optimizer: &mut Optimizer) {
        self.record("on_before_optimizer_step");
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

#[test]
fn manual_optimization_calls_the_backward_and_step_hooks_as_lightning_does() {
    let log = Log::default();
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root(), 3, 1, Default::default());
    let mut module = ManualRecorder { vs, linear, log: log.clone() };
    let mut trainer = trainer(&log).max_epochs(1).enable_progress_bar(false).enable_model_summary(false);
    trainer.fit(&mut module, Loader::from(common::recorder::regression_batches(2)), None).unwrap();
    let step_hooks = [
        "training_step",
        "Callback.on_before_backward",
        "on_before_backward",
        "backward",
        "Callback.on_after_backward",
        "on_after_backward",
        "Callback.on_before_optimizer_step",
        "on_before_optimizer_step",
    ];
    let seen: Vec<String> = calls(&log).into_iter().filter(|c| step_hooks.contains(&c.as_str())).collect();
    assert_eq!(seen, strings(&[step_hooks, step_hooks].concat()));
    assert_eq!(trainer.global_step(), 2);
}

/// `ctx.manual_backward` in automatic optimization: an error that names the attribute, as Lightning raises.
struct AutomaticCallingManual {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module]
impl AutomaticCallingManual {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> lightning::Result<Tensor> {
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.manual_backward(self, &loss)?;
        Ok(loss)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

#[test]
fn manual_backward_in_automatic_optimization_is_an_error() {
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root(), 3, 1, Default::default());
    let mut module = AutomaticCallingManual { vs, linear };
    let error = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .enable_progress_bar(false)
        .fit(&mut module, Loader::from(common::recorder::regression_batches(1)), None)
        .unwrap_err();
    assert!(error.to_string().contains("manual_optimization"), "{error}");
}

/// Two optimizers over two layers; `toggle_optimizer` keeps the backward of the first one's loss off the second.
struct Toggling {
    vs: nn::VarStore,
    first: nn::Linear,
    second: nn::Linear,
    checked: usize,
}

#[lightning_module(manual_optimization)]
impl Toggling {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> lightning::Result<()> {
        ctx.toggle_optimizer(0)?;
        assert!(self.first.ws.requires_grad() && !self.second.ws.requires_grad());
        let loss = self.second.forward(&self.first.forward(x)).mse_loss(y, Reduction::Mean);
        ctx.optimizers()[0].zero_grad()?;
        ctx.optimizers()[1].zero_grad()?;
        ctx.manual_backward(self, &loss)?;
        assert!(self.first.ws.grad().defined() && !self.second.ws.grad().defined());
        ctx.step_optimizer(self, 0)?;
        ctx.untoggle_optimizer(0)?;
        assert!(self.second.ws.requires_grad());
        self.checked += 1;
        Ok(())
    }

    fn configure_optimizers(&mut self) -> Vec<Optimizer> {
        let first = vec![self.first.ws.shallow_clone(), self.first.bs.as_ref().unwrap().shallow_clone()];
        let second = vec![self.second.ws.shallow_clone(), self.second.bs.as_ref().unwrap().shallow_clone()];
        vec![Optimizer::sgd(first, 0.1), Optimizer::sgd(second, 0.1)]
    }
}

#[test]
fn toggle_optimizer_keeps_the_other_optimizers_parameters_out_of_backward() {
    let vs = nn::VarStore::new(Device::Cpu);
    let first = nn::linear(vs.root() / "first", 3, 4, Default::default());
    let second = nn::linear(vs.root() / "second", 4, 1, Default::default());
    let mut module = Toggling { vs, first, second, checked: 0 };
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .fit(&mut module, Loader::from(common::recorder::regression_batches(2)), None)
        .unwrap();
    assert_eq!(module.checked, 2);
}
