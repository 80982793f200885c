//! A monitored metric that nothing logs is an error when `fit` starts, before any training step, when the module's
//! log calls name their metrics with literals (read by `#[lightning_module]`) and every callback says what it logs;
//! otherwise the check stays at run time (`early_stopping.rs`, `schedulers.rs`).

use lightning::prelude::*;
use lightning::{
    Accelerator, AnyModule, CallbackResult, EarlyStopping, LearningRateMonitor, ModelCheckpoint, Plateau, Trainer,
};

struct Model {
    vs: nn::VarStore,
    w: Tensor,
    steps: usize,
    plateau_on: Option<&'static str>,
}

impl Model {
    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        Model { vs, w, steps: 0, plateau_on: None }
    }

    fn loss(&self, x: &Tensor) -> Tensor {
        (x * &self.w).mean(Kind::Float)
    }
}

#[lightning_module]
impl Model {
    fn training_step(&mut self, x: &Tensor, ctx: &mut Ctx) -> Tensor {
        self.steps += 1;
        let loss = self.loss(x);
        ctx.log("train_loss", &loss).on_epoch(true);
        loss
    }

    fn validation_step(&mut self, x: &Tensor, ctx: &mut Ctx) {
        let loss = self.loss(x);
        self.log_validation(&loss, ctx);
    }

    #[lightning(helper)]
    fn log_validation(&self, loss: &Tensor, ctx: &mut Ctx) {
        ctx.log_dict([("val_loss", loss), ("val_acc", loss)]);
    }

    fn configure_optimizers(&self) -> (Vec<Optimizer>, Vec<LrScheduler>) {
        let schedulers = self.plateau_on.map(|m| LrScheduler::reduce_on_plateau(Plateau::new(m))).into_iter().collect();
        (vec![Optimizer::sgd(&self.vs, 0.1)], schedulers)
    }
}

fn data() -> Loader<Tensor> {
    vec![Tensor::ones([2], (Kind::Float, Device::Cpu))].into()
}

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(2)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(LearningRateMonitor::new(lightning::Interval::Epoch))
}

fn fit(trainer: Trainer, model: &mut Model) -> Result<(), String> {
    let mut trainer = trainer;
    trainer.fit(model, data(), data()).map_err(|e| e.to_string())
}

#[test]
fn a_monitor_nothing_logs_stops_fit_before_the_first_step_with_a_guess() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let error = fit(trainer().callback(ModelCheckpoint::new(dir.path()).monitor("val_los")), &mut model).unwrap_err();
    assert!(error.contains("ModelCheckpoint monitors `val_los`, but nothing logs it"), "{error}");
    assert!(error.contains("did you mean `val_loss`?"), "{error}");
    assert!(error.contains(r#"["train_loss", "val_acc", "val_loss", "lr"]"#), "{error}");
    assert_eq!(model.steps, 0);

    let error = fit(trainer().callback(EarlyStopping::new("accuracy")), &mut model).unwrap_err();
    assert!(error.contains("EarlyStopping monitors `accuracy`, but nothing logs it"), "{error}");
    model.plateau_on = Some("val_lss");
    let error = fit(trainer(), &mut model).unwrap_err();
    assert!(error.contains("ReduceLROnPlateau (LR scheduler 0) monitors `val_lss`"), "{error}");
    assert!(error.contains("did you mean `val_loss`?"), "{error}");
    assert_eq!(model.steps, 0);
}

#[test]
fn the_trainers_keys_of_logged_values_may_be_monitored() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    model.plateau_on = Some("val_acc");
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("train_loss_epoch");
    fit(trainer().callback(checkpoint).callback(EarlyStopping::new("lr")), &mut model).unwrap();
    assert_eq!(model.steps, 2);
}

/// A callback that does not say what it logs.
struct Silent;

impl lightning::Callback for Silent {
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        ctx.log("from_a_callback", 1.0);
        Ok(())
    }
}

#[test]
fn a_callback_that_does_not_say_what_it_logs_leaves_the_check_to_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut model = Model::new();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("from_a_callback");
    fit(trainer().callback(Silent).callback(checkpoint), &mut model).unwrap();
    assert_eq!(model.steps, 2);
}
