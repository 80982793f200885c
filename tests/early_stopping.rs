//! EarlyStopping stops `fit` on the epoch the rules say; LearningRateMonitor logs the rates the schedule gives.

use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{Accelerator, EarlyStopping, Interval, LearningRateMonitor, Logger, MonitorMode, Trainer};

/// Logs a scripted `score` at the end of each epoch (under a name held in a field, so that what it logs is known
/// only at run time, where these tests check the monitored metric; `monitor_check.rs` has the check at fit start).
struct Scripted {
    vs: nn::VarStore,
    w: Tensor,
    scores: Vec<f64>,
    name: &'static str,
}

impl Scripted {
    fn new(scores: &[f64]) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        Scripted { vs, w, scores: scores.to_vec(), name: "score" }
    }
}

#[lightning_module]
impl Scripted {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        (batch * &self.w).mean(Kind::Float)
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) {
        let score = self.scores.get(ctx.current_epoch()).copied().unwrap_or(f64::NAN);
        ctx.log(self.name, score);
    }

    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        (Optimizer::sgd(&self.vs, 1.0), LrScheduler::step_lr(1, 0.5))
    }
}

fn epochs_run(scores: &[f64], stop: EarlyStopping) -> lightning::Result<usize> {
    let mut module = Scripted::new(scores);
    let data = Loader::from(vec![Tensor::ones([2], (Kind::Float, Device::Cpu))]);
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(scores.len())
        .accelerator(Accelerator::Cpu)
        .callback(stop);
    trainer.fit(&mut module, data, None)?;
    Ok(trainer.current_epoch())
}

#[test]
fn stops_after_patience_checks_without_improvement() {
    let scores = [5.0, 4.0, 3.0, 3.5, 3.2, 3.1, 2.0, 1.0];
    assert_eq!(epochs_run(&scores, EarlyStopping::new("score").patience(3)).unwrap(), 6);
    // With min_delta 0.5, 3.5 and 3.2 do not improve on 3.0: patience 2 stops after epoch 4.
    assert_eq!(epochs_run(&scores, EarlyStopping::new("score").patience(2).min_delta(0.5)).unwrap(), 5);
    // Higher is better: 5.0 is never beaten.
    assert_eq!(epochs_run(&scores, EarlyStopping::new("score").mode(MonitorMode::Max).patience(2)).unwrap(), 3);
}

#[test]
fn a_handle_reads_why_and_when_it_stopped_after_fit() {
    let scores = [5.0, 4.0, 4.5, 4.2, 4.1, 3.0];
    let stop = EarlyStopping::new("score").patience(3);
    let handle = stop.handle();
    assert_eq!((handle.stopped_epoch(), handle.reason()), (None, None));
    assert_eq!(epochs_run(&scores, stop).unwrap(), 5);
    assert_eq!(handle.stopped_epoch(), Some(4));
    assert_eq!(handle.reason().as_deref(), Some("`score` did not improve for 3 checks (best 4)"));
    assert_eq!((handle.best_score(), handle.wait_count()), (Some(4.0), 3));
}

#[test]
fn thresholds_and_non_finite_values_stop_at_once() {
    let scores = [5.0, 4.0, 3.0, 2.0, 1.0];
    assert_eq!(epochs_run(&scores, EarlyStopping::new("score").stopping_threshold(3.5)).unwrap(), 3);
    let rising = [1.0, 2.0, 30.0, 4.0];
    assert_eq!(epochs_run(&rising, EarlyStopping::new("score").patience(10).divergence_threshold(10.0)).unwrap(), 3);
    let nan = [1.0, f64::NAN, 0.5];
    assert_eq!(epochs_run(&nan, EarlyStopping::new("score").patience(10)).unwrap(), 2);
}

#[test]
fn monitoring_a_metric_never_logged_is_an_error_naming_the_logged_ones() {
    let error = epochs_run(&[1.0, 2.0], EarlyStopping::new("val_loss")).unwrap_err().to_string();
    assert!(error.contains("monitors `val_loss`, which was never logged; the logged metrics are: [score]"), "{error}");
}

#[derive(Clone, Default)]
struct Rates(Arc<Mutex<Vec<(String, f64, usize)>>>);

impl Logger for Rates {
    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> lightning::Result<()> {
        let mut all = self.0.lock().unwrap();
        all.extend(metrics.iter().filter(|(n, _)| n.starts_with("lr")).map(|(n, v)| (n.clone(), *v, step)));
        Ok(())
    }
}

#[test]
fn learning_rate_monitor_logs_the_scheduled_rates() {
    let rates = Rates::default();
    let mut module = Scripted::new(&[1.0; 3]);
    let data = Loader::from((0..2).map(|_| Tensor::ones([2], (Kind::Float, Device::Cpu))).collect::<Vec<_>>());
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .accelerator(Accelerator::Cpu)
        .log_every_n_steps(1)
        .callback(LearningRateMonitor::new(Interval::Step))
        .logger(rates.clone());
    trainer.fit(&mut module, data, None).unwrap();
    let logged: Vec<f64> = rates.0.lock().unwrap().iter().filter(|(n, _, _)| n == "lr").map(|(_, v, _)| *v).collect();
    assert_eq!(logged, [1.0, 1.0, 0.5, 0.5, 0.25, 0.25], "the StepLR halves the rate every epoch");
}

/// Asks to stop at the end of the batch reaching `at` steps; counts the epoch ends it sees.
struct StopAt {
    at: usize,
    epoch_ends: Arc<Mutex<usize>>,
}

impl lightning::Callback for StopAt {
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn lightning::AnyModule,
        _: &StepOutput,
        _: &dyn std::any::Any,
        _: usize,
    ) -> lightning::CallbackResult {
        if ctx.global_step() == self.at {
            ctx.request_stop();
        }
        Ok(())
    }

    fn on_train_epoch_end(&mut self, _: &mut Ctx, _: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
        *self.epoch_ends.lock().unwrap() += 1;
        Ok(())
    }
}

#[test]
fn a_stop_asked_for_in_a_batch_ends_the_epoch_after_it_once_the_minimums_are_met() {
    let batches = || Loader::from((0..5).map(|_| Tensor::ones([2], (Kind::Float, Device::Cpu))).collect::<Vec<_>>());
    let run = |min_steps: usize| {
        let epoch_ends = Arc::new(Mutex::new(0));
        let mut module = Scripted::new(&[1.0; 4]);
        let stop = StopAt { at: 2, epoch_ends: epoch_ends.clone() };
        let mut trainer = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_epochs(4)
            .min_steps(min_steps)
            .accelerator(Accelerator::Cpu)
            .callback(stop);
        trainer.fit(&mut module, batches(), None).unwrap();
        let ends = *epoch_ends.lock().unwrap();
        (trainer.global_step(), trainer.current_epoch(), ends)
    };
    // Lightning's epoch loop is done after the batch that asked: `on_train_epoch_end` still runs.
    assert_eq!(run(0), (2, 1, 1));
    // Until `min_steps` are met the request stands and waits: the epoch ends after the batch that meets them.
    assert_eq!(run(4), (4, 1, 1));
}

/// Logs `val_score` from a validation step, and how many validation runs there were.
struct Validated {
    vs: nn::VarStore,
    w: Tensor,
    validations: usize,
}

#[lightning_module]
impl Validated {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        (batch * &self.w).mean(Kind::Float)
    }

    fn validation_step(&mut self, batch: &Tensor, ctx: &mut Ctx) {
        ctx.log("val_score", batch.mean(Kind::Float));
    }

    fn on_validation_epoch_end(&mut self) {
        self.validations += 1;
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

#[test]
fn a_stop_asked_for_in_a_batch_validates_once_more_before_the_epoch_ends() {
    let batches =
        |n: usize| Loader::from((0..n).map(|_| Tensor::ones([2], (Kind::Float, Device::Cpu))).collect::<Vec<_>>());
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().ones("w", &[1]);
    let mut module = Validated { vs, w, validations: 0 };
    let epoch_ends = Arc::new(Mutex::new(0));
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .num_sanity_val_steps(0)
        .accelerator(Accelerator::Cpu)
        .callback(StopAt { at: 2, epoch_ends })
        // EarlyStopping reads `val_score` at the epoch's end: the validation run the stop brought logged it.
        .callback(EarlyStopping::new("val_score"));
    trainer.fit(&mut module, batches(5), batches(1)).unwrap();
    assert_eq!((trainer.global_step(), module.validations), (2, 1));
}
