//! EarlyStopping stops `fit` on the epoch the rules say; LearningRateMonitor logs the rates the schedule gives.

use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{Accelerator, EarlyStopping, Interval, LearningRateMonitor, Logger, MonitorMode, Trainer};

/// Logs a scripted `score` at the end of each epoch.
struct Scripted {
    vs: nn::VarStore,
    w: Tensor,
    scores: Vec<f64>,
}

impl Scripted {
    fn new(scores: &[f64]) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        Scripted { vs, w, scores: scores.to_vec() }
    }
}

#[lightning_module]
impl Scripted {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        (batch * &self.w).mean(Kind::Float)
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) {
        let score = self.scores.get(ctx.current_epoch()).copied().unwrap_or(f64::NAN);
        ctx.log("score", score);
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
