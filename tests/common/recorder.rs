//! A module that defines every hook (doing what Lightning's defaults do) and records each call, and a
//! callback that records each of its calls, into one shared log.

use std::any::Any;
use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{AnyModule, Batch, CallbackResult, HookError};

pub type Log = Arc<Mutex<Vec<String>>>;

/// Data: `y = x · w` for a fixed `w`, in batches of 4.
pub fn regression_batches(batches: usize) -> Vec<(Tensor, Tensor)> {
    let w = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([3, 1]);
    (0..batches)
        .map(|i| {
            let x = Tensor::arange_start(i as i64 * 12, (i as i64 + 1) * 12, (Kind::Float, Device::Cpu))
                .reshape([4, 3])
                / 10.0;
            let y = x.matmul(&w);
            (x, y)
        })
        .collect()
}

pub struct Recorder {
    pub vs: nn::VarStore,
    pub linear: nn::Linear,
    pub log: Log,
    /// `on_train_batch_start` returns `SkipRestOfEpoch` at this batch index.
    pub skip_at: Option<usize>,
    /// Batches its dataloader hooks hand out.
    pub train_batches: usize,
    pub val_batches: usize,
}

impl Recorder {
    pub fn new(log: Log) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 3, 1, Default::default());
        Recorder { vs, linear, log, skip_at: None, train_batches: 4, val_batches: 2 }
    }

    fn record(&self, name: &str) {
        self.log.lock().unwrap().push(name.to_string());
    }

    fn loss(&self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.linear.forward(x).mse_loss(y, Reduction::Mean)
    }
}

#[lightning_module]
impl Recorder {
    fn training_step(&mut self, batch: &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        self.record("training_step");
        let loss = self.loss(batch);
        ctx.log("train_loss", &loss);
        loss
    }
    fn validation_step(
        &mut self,
        batch: &(Tensor, Tensor),
        _batch_idx: usize,
        _dataloader_idx: usize,
        ctx: &mut Ctx,
    ) -> Tensor {
        self.record("validation_step");
        let loss = self.loss(batch);
        ctx.log("val_loss", &loss);
        loss
    }
    fn test_step(
        &mut self,
        batch: &(Tensor, Tensor),
        _batch_idx: usize,
        _dataloader_idx: usize,
        ctx: &mut Ctx,
    ) -> Tensor {
        self.record("test_step");
        let loss = self.loss(batch);
        ctx.log("test_loss", &loss);
        loss
    }
    fn predict_step(&mut self, batch: &(Tensor, Tensor)) -> Tensor {
        self.record("predict_step");
        self.linear.forward(&batch.0)
    }
    fn configure_callbacks(&mut self) -> Vec<Box<dyn Callback>> {
        self.record("configure_callbacks");
        Vec::new()
    }
    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        self.record("configure_optimizers");
        (Optimizer::sgd(&self.vs, 0.01), LrScheduler::step_lr(1, 0.5))
    }
    fn configure_model(&mut self) {
        self.record("configure_model");
    }
    fn optimizer_step(
        &mut self,
        _epoch: usize,
        _batch_idx: usize,
        optimizer: &mut Optimizer,
        closure: &mut OptimizerClosure<'_, Self>,
    ) -> lightning::Result<()> {
        self.record("optimizer_step");
        optimizer.step_with(closure, self)
    }
    fn optimizer_zero_grad(
        &mut self,
        _epoch: usize,
        _batch_idx: usize,
        optimizer: &mut Optimizer,
    ) -> lightning::Result<()> {
        self.record("optimizer_zero_grad");
        optimizer.zero_grad()
    }
    fn backward(&mut self, loss: &Tensor) {
        self.record("backward");
        loss.backward();
    }
    fn configure_gradient_clipping(
        &mut self,
        optimizer: &mut Optimizer,
        value: Option<f64>,
        algorithm: Option<GradClipAlgorithm>,
    ) -> lightning::Result<()> {
        self.record("configure_gradient_clipping");
        optimizer.clip_gradients(value, algorithm)
    }
    fn lr_scheduler_step(&mut self, scheduler: &mut LrScheduler) {
        self.record("lr_scheduler_step");
        scheduler.step();
    }
    fn on_fit_start(&mut self) {
        self.record("on_fit_start");
    }
    fn on_fit_end(&mut self) {
        self.record("on_fit_end");
    }
    fn on_train_start(&mut self) {
        self.record("on_train_start");
    }
    fn on_train_end(&mut self) {
        self.record("on_train_end");
    }
    fn on_validation_start(&mut self) {
        self.record("on_validation_start");
    }
    fn on_validation_end(&mut self) {
        self.record("on_validation_end");
    }
    fn on_test_start(&mut self) {
        self.record("on_test_start");
    }
    fn on_test_end(&mut self) {
        self.record("on_test_end");
    }
    fn on_predict_start(&mut self) {
        self.record("on_predict_start");
    }
    fn on_predict_end(&mut self) {
        self.record("on_predict_end");
    }
    fn on_train_batch_start(&mut self, _batch: &(Tensor, Tensor), batch_idx: usize) -> BatchControl {
        self.record("on_train_batch_start");
        if self.skip_at == Some(batch_idx) {
            BatchControl::SkipRestOfEpoch
        } else {
            BatchControl::Continue
        }
    }
    fn on_train_batch_end(&mut self, _outputs: &StepOutput, _batch: &(Tensor, Tensor)) {
        self.record("on_train_batch_end");
    }
    fn on_validation_batch_start(&mut self, _batch: &(Tensor, Tensor)) {
        self.record("on_validation_batch_start");
    }
    fn on_validation_batch_end(&mut self, _outputs: &StepOutput, _batch: &(Tensor, Tensor)) {
        self.record("on_validation_batch_end");
    }
    fn on_test_batch_start(&mut self, _batch: &(Tensor, Tensor)) {
        self.record("on_test_batch_start");
    }
    fn on_test_batch_end(&mut self, _outputs: &StepOutput, _batch: &(Tensor, Tensor)) {
        self.record("on_test_batch_end");
    }
    fn on_predict_batch_start(&mut self, _batch: &(Tensor, Tensor)) {
        self.record("on_predict_batch_start");
    }
    fn on_predict_batch_end(&mut self, _outputs: &Tensor, _batch: &(Tensor, Tensor)) {
        self.record("on_predict_batch_end");
    }
    fn on_validation_model_zero_grad(&mut self) -> lightning::Result<()> {
        self.record("on_validation_model_zero_grad");
        Optimizer::sgd(&self.vs, 0.0).zero_grad()
    }
    fn on_validation_model_eval(&mut self, ctx: &mut Ctx) {
        self.record("on_validation_model_eval");
        ctx.set_training(false);
    }
    fn on_validation_model_train(&mut self, ctx: &mut Ctx) {
        self.record("on_validation_model_train");
        ctx.set_training(true);
    }
    fn on_test_model_eval(&mut self, ctx: &mut Ctx) {
        self.record("on_test_model_eval");
        ctx.set_training(false);
    }
    fn on_test_model_train(&mut self, ctx: &mut Ctx) {
        self.record("on_test_model_train");
        ctx.set_training(true);
    }
    fn on_predict_model_eval(&mut self, ctx: &mut Ctx) {
        self.record("on_predict_model_eval");
        ctx.set_training(false);
    }
    fn on_train_epoch_start(&mut self) {
        self.record("on_train_epoch_start");
    }
    fn on_train_epoch_end(&mut self) {
        self.record("on_train_epoch_end");
    }
    fn on_validation_epoch_start(&mut self) {
        self.record("on_validation_epoch_start");
    }
    fn on_validation_epoch_end(&mut self) {
        self.record("on_validation_epoch_end");
    }
    fn on_test_epoch_start(&mut self) {
        self.record("on_test_epoch_start");
    }
    fn on_test_epoch_end(&mut self) {
        self.record("on_test_epoch_end");
    }
    fn on_predict_epoch_start(&mut self) {
        self.record("on_predict_epoch_start");
    }
    fn on_predict_epoch_end(&mut self) {
        self.record("on_predict_epoch_end");
    }
    fn on_before_zero_grad(&mut self, _optimizer: &mut Optimizer) {
        self.record("on_before_zero_grad");
    }
    fn on_before_backward(&mut self, _loss: &Tensor) {
        self.record("on_before_backward");
    }
    fn on_after_backward(&mut self) {
        self.record("on_after_backward");
    }
    fn on_before_optimizer_step(&mut self, _optimizer: &mut Optimizer) {
        self.record("on_before_optimizer_step");
    }
    fn prepare_data(&mut self) {
        self.record("prepare_data");
    }
    fn setup(&mut self, _stage: Stage) {
        self.record("setup");
    }
    fn teardown(&mut self, _stage: Stage) {
        self.record("teardown");
    }
    fn train_dataloader(&mut self) -> Loader<(Tensor, Tensor)> {
        self.record("train_dataloader");
        Loader::from(regression_batches(self.train_batches))
    }
    fn val_dataloader(&mut self) -> Loader<(Tensor, Tensor)> {
        self.record("val_dataloader");
        Loader::from(regression_batches(self.val_batches))
    }
    fn test_dataloader(&mut self) -> Loader<(Tensor, Tensor)> {
        self.record("test_dataloader");
        Loader::from(regression_batches(2))
    }
    fn predict_dataloader(&mut self) -> Loader<(Tensor, Tensor)> {
        self.record("predict_dataloader");
        Loader::from(regression_batches(2))
    }
    fn transfer_batch_to_device(
        &mut self,
        batch: (Tensor, Tensor),
        device: Device,
    ) -> Result<(Tensor, Tensor), lightning::Error> {
        self.record("transfer_batch_to_device");
        batch.to_device(device)
    }
    fn on_before_batch_transfer(&mut self, batch: (Tensor, Tensor)) -> (Tensor, Tensor) {
        self.record("on_before_batch_transfer");
        batch
    }
    fn on_after_batch_transfer(&mut self, batch: (Tensor, Tensor)) -> (Tensor, Tensor) {
        self.record("on_after_batch_transfer");
        batch
    }
    fn on_save_checkpoint(&mut self, _checkpoint: &mut Checkpoint) {
        self.record("on_save_checkpoint");
    }
    fn on_load_checkpoint(&mut self, _checkpoint: &mut Checkpoint) {
        self.record("on_load_checkpoint");
    }
}

/// A callback that records every call as `Callback.<hook>`.
pub struct RecordingCallback(pub Log);

impl RecordingCallback {
    fn record(&self, name: &str) -> CallbackResult {
        self.0.lock().unwrap().push(format!("Callback.{name}"));
        Ok(())
    }
}

type M<'a> = &'a mut dyn AnyModule;

impl Callback for RecordingCallback {
    fn setup(&mut self, _: &mut Ctx, _: M, _: Stage) -> CallbackResult {
        self.record("setup")
    }
    fn teardown(&mut self, _: &mut Ctx, _: M, _: Stage) -> CallbackResult {
        self.record("teardown")
    }
    fn on_fit_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_fit_start")
    }
    fn on_fit_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_fit_end")
    }
    fn on_sanity_check_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_sanity_check_start")
    }
    fn on_sanity_check_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_sanity_check_end")
    }
    fn on_train_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_train_start")
    }
    fn on_train_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_train_end")
    }
    fn on_train_epoch_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_train_epoch_start")
    }
    fn on_train_epoch_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_train_epoch_end")
    }
    fn on_train_batch_start(&mut self, _: &mut Ctx, _: M, _: &dyn Any, _: usize) -> CallbackResult {
        self.record("on_train_batch_start")
    }
    fn on_train_batch_end(&mut self, _: &mut Ctx, _: M, _: &StepOutput, _: &dyn Any, _: usize) -> CallbackResult {
        self.record("on_train_batch_end")
    }
    fn on_validation_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_validation_start")
    }
    fn on_validation_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_validation_end")
    }
    fn on_validation_epoch_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_validation_epoch_start")
    }
    fn on_validation_epoch_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_validation_epoch_end")
    }
    fn on_validation_batch_start(&mut self, _: &mut Ctx, _: M, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_validation_batch_start")
    }
    fn on_validation_batch_end(
        &mut self,
        _: &mut Ctx,
        _: M,
        _: &StepOutput,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_validation_batch_end")
    }
    fn on_test_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_test_start")
    }
    fn on_test_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_test_end")
    }
    fn on_test_epoch_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_test_epoch_start")
    }
    fn on_test_epoch_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_test_epoch_end")
    }
    fn on_test_batch_start(&mut self, _: &mut Ctx, _: M, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_test_batch_start")
    }
    fn on_test_batch_end(
        &mut self,
        _: &mut Ctx,
        _: M,
        _: &StepOutput,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_test_batch_end")
    }
    fn on_predict_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_predict_start")
    }
    fn on_predict_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_predict_end")
    }
    fn on_predict_epoch_start(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_predict_epoch_start")
    }
    fn on_predict_epoch_end(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_predict_epoch_end")
    }
    fn on_predict_batch_start(&mut self, _: &mut Ctx, _: M, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_predict_batch_start")
    }
    fn on_predict_batch_end(
        &mut self,
        _: &mut Ctx,
        _: M,
        _: &dyn Any,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_predict_batch_end")
    }
    fn on_before_backward(&mut self, _: &mut Ctx, _: M, _: &Tensor) -> CallbackResult {
        self.record("on_before_backward")
    }
    fn on_after_backward(&mut self, _: &mut Ctx, _: M) -> CallbackResult {
        self.record("on_after_backward")
    }
    fn on_before_optimizer_step(&mut self, _: &mut Ctx, _: M, _: &mut Optimizer) -> CallbackResult {
        self.record("on_before_optimizer_step")
    }
    fn on_before_zero_grad(&mut self, _: &mut Ctx, _: M, _: &mut Optimizer) -> CallbackResult {
        self.record("on_before_zero_grad")
    }
    fn on_save_checkpoint(&mut self, _: &mut Ctx, _: M, _: &mut Checkpoint) -> CallbackResult {
        self.record("on_save_checkpoint")
    }
    fn on_load_checkpoint(&mut self, _: &mut Ctx, _: M, _: &mut Checkpoint) -> CallbackResult {
        self.record("on_load_checkpoint")
    }
    fn on_exception(&mut self, _: &mut Ctx, _: M, _: &lightning::Error) -> CallbackResult {
        self.record("on_exception")
    }
}

/// Hook errors for tests of failing hooks.
pub fn hook_error(message: &str) -> HookError {
    message.into()
}
