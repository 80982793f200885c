//! The order in which the Trainer calls hooks: a module that defines every hook of the catalogue, and a
//! callback that defines every callback hook, both writing each call into one shared trace. Prints the
//! numbered calls of `fit` (1 epoch of 2 training batches, 1 validation batch, with the sanity check), then of
//! `validate`, `test` and `predict`, and of loading the checkpoint `fit` wrote back into a fresh module; calls
//! made inside the optimizer closure are indented under `optimizer_step`, as in Lightning's own hook-order
//! listing. Ends with how many of `lightning::HOOK_NAMES` were called.
//!
//! Every hook the runtime depends on does what Lightning's default does (moving the batch, stepping,
//! zeroing, backward, clipping, the scheduler, the train/eval mode), so the run trains as it would without
//! them.
//!
//! Run with `cargo run --example hook_order`.

use std::any::Any;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use lightning::prelude::*;
use lightning::{AnyModule, CallbackResult, LoadFromCheckpoint, Trainer, HOOK_NAMES};

/// The calls so far, each with its nesting depth, and the current depth.
#[derive(Default)]
struct Trace {
    calls: Vec<(usize, String)>,
    depth: usize,
}

/// Shared by the module and the callback; a `Mutex` because callbacks must be `Send`.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Trace>>);

impl Log {
    fn trace(&self) -> MutexGuard<'_, Trace> {
        // A panicking hook poisons the lock; the trace is still worth printing.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, name: impl Into<String>) {
        let mut trace = self.trace();
        let depth = trace.depth;
        trace.calls.push((depth, name.into()));
    }

    /// Prints the calls since the last `print` as a numbered list, and returns them.
    fn print(&self, title: &str) -> Vec<String> {
        let calls = std::mem::take(&mut self.trace().calls);
        println!("{title}");
        for (i, (depth, name)) in calls.iter().enumerate() {
            println!("{:4}. {}{name}", i + 1, "    ".repeat(*depth));
        }
        println!();
        calls.into_iter().map(|(_, name)| name).collect()
    }
}

type Pair = (Tensor, Tensor);

/// `n` batches of 4 samples of `y = x · w`.
fn batches(n: usize) -> lightning::Result<Vec<Pair>> {
    let w = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).f_reshape([3, 1])?;
    (0..n)
        .map(|_| {
            let x = Tensor::f_rand([4, 3], (Kind::Float, Device::Cpu))?;
            let y = x.f_matmul(&w)?;
            Ok((x, y))
        })
        .collect()
}

// The module sits in a `mod` of its own only for two `allow`s that nothing narrower reaches, since both lints
// fire in code the attribute generates next to the `impl` block:
// - `deprecated`: `configure_sharded_model` is the deprecated alias of `configure_model`, defined here only to
//   show every hook of the catalogue;
// - `clippy::needless_update`: the attribute fills in the hook table as `{ defined hooks.., ..EMPTY }`, and with
//   every hook defined the `..EMPTY` is left with nothing to fill.
#[allow(deprecated, clippy::needless_update)]
mod every_hook {
    use lightning::prelude::*;
    use lightning::{Batch, HookError};

    use super::{batches, Log, Pair};

    pub struct EveryHook {
        vs: nn::VarStore,
        pub linear: nn::Linear,
        log: Log,
    }

    impl EveryHook {
        pub fn new(log: Log) -> Self {
            let vs = nn::VarStore::new(Device::Cpu);
            let linear = nn::linear(vs.root() / "linear", 3, 1, Default::default());
            EveryHook { vs, linear, log }
        }

        fn record(&self, name: &str) {
            self.log.record(name);
        }

        fn loss(&self, (x, y): &Pair) -> Tensor {
            self.linear.forward(x).mse_loss(y, Reduction::Mean)
        }
    }

    #[lightning_module]
    impl EveryHook {
        // ---- Steps ----

        fn training_step(&mut self, batch: &Pair, _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
            self.record("training_step");
            let loss = self.loss(batch);
            ctx.log("train_loss", &loss);
            loss
        }

        fn validation_step(
            &mut self,
            batch: &Pair,
            _batch_idx: usize,
            _dataloader_idx: usize,
            ctx: &mut Ctx,
        ) -> Tensor {
            self.record("validation_step");
            let loss = self.loss(batch);
            ctx.log("val_loss", &loss);
            loss
        }

        fn test_step(&mut self, batch: &Pair, _batch_idx: usize, _dataloader_idx: usize, ctx: &mut Ctx) -> Tensor {
            self.record("test_step");
            let loss = self.loss(batch);
            ctx.log("test_loss", &loss);
            loss
        }

        fn predict_step(&mut self, (x, _): &Pair, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) -> Tensor {
            self.record("predict_step");
            self.linear.forward(x)
        }

        // ---- Configuration ----

        fn configure_callbacks(&mut self, _ctx: &mut Ctx) -> Vec<Box<dyn Callback>> {
            self.record("configure_callbacks");
            Vec::new()
        }

        fn example_input_array(&self) -> Tensor {
            self.record("example_input_array");
            Tensor::zeros([4, 3], (Kind::Float, Device::Cpu))
        }

        /// What `ModelSummary` runs `example_input_array` through.
        fn forward(&self, x: &Tensor) -> Tensor {
            x.apply(&self.linear)
        }

        fn configure_optimizers(&mut self, _ctx: &mut Ctx) -> Optimizers {
            self.record("configure_optimizers");
            // A scheduler, so that `lr_scheduler_step` runs (at the end of the epoch: the default interval).
            (Optimizer::sgd(&self.vs, 0.01), LrScheduler::step_lr(1, 0.5)).into()
        }

        fn configure_model(&mut self, _ctx: &mut Ctx) {
            self.record("configure_model");
        }

        fn configure_sharded_model(&mut self, _ctx: &mut Ctx) {
            self.record("configure_sharded_model");
        }

        // ---- Optimization: each does what Lightning's default does ----

        fn optimizer_step(
            &mut self,
            _epoch: usize,
            _batch_idx: usize,
            optimizer: &mut Optimizer,
            optimizer_closure: &mut OptimizerClosure<'_, Self>,
        ) -> lightning::Result<()> {
            self.record("optimizer_step");
            // Everything the closure calls (training_step, zero_grad, backward, ...) is indented under this call.
            self.log.trace().depth += 1;
            let stepped = optimizer.step_with(optimizer_closure, self);
            self.log.trace().depth -= 1;
            stepped
        }

        fn optimizer_zero_grad(
            &mut self,
            _epoch: usize,
            _batch_idx: usize,
            optimizer: &mut Optimizer,
            _ctx: &mut Ctx,
        ) -> lightning::Result<()> {
            self.record("optimizer_zero_grad");
            optimizer.zero_grad()
        }

        fn backward(&mut self, loss: &Tensor, _ctx: &mut Ctx) -> Result<(), tch::TchError> {
            self.record("backward");
            loss.f_backward()
        }

        fn configure_gradient_clipping(
            &mut self,
            optimizer: &mut Optimizer,
            gradient_clip_val: Option<f64>,
            gradient_clip_algorithm: Option<GradClipAlgorithm>,
            _ctx: &mut Ctx,
        ) -> lightning::Result<()> {
            self.record("configure_gradient_clipping");
            optimizer.clip_gradients(gradient_clip_val, gradient_clip_algorithm)
        }

        fn lr_scheduler_step(&mut self, scheduler: &mut LrScheduler, _metric: Option<f64>, _ctx: &mut Ctx) {
            self.record("lr_scheduler_step");
            scheduler.step();
        }

        // ---- Model hooks: stages ----

        fn on_fit_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_fit_start");
        }

        fn on_fit_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_fit_end");
        }

        fn on_train_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_train_start");
        }

        fn on_train_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_train_end");
        }

        fn on_validation_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_validation_start");
        }

        fn on_validation_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_validation_end");
        }

        fn on_test_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_test_start");
        }

        fn on_test_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_test_end");
        }

        fn on_predict_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_predict_start");
        }

        fn on_predict_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_predict_end");
        }

        // ---- Model hooks: batches ----

        fn on_train_batch_start(&mut self, _batch: &Pair, _batch_idx: usize, _ctx: &mut Ctx) -> BatchControl {
            self.record("on_train_batch_start");
            BatchControl::Continue
        }

        fn on_train_batch_end(&mut self, _outputs: &StepOutput, _batch: &Pair, _batch_idx: usize, _ctx: &mut Ctx) {
            self.record("on_train_batch_end");
        }

        fn on_validation_batch_start(
            &mut self,
            _batch: &Pair,
            _batch_idx: usize,
            _dataloader_idx: usize,
            _ctx: &mut Ctx,
        ) {
            self.record("on_validation_batch_start");
        }

        fn on_validation_batch_end(
            &mut self,
            _outputs: &StepOutput,
            _batch: &Pair,
            _batch_idx: usize,
            _dataloader_idx: usize,
            _ctx: &mut Ctx,
        ) {
            self.record("on_validation_batch_end");
        }

        fn on_test_batch_start(&mut self, _batch: &Pair, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
            self.record("on_test_batch_start");
        }

        fn on_test_batch_end(
            &mut self,
            _outputs: &StepOutput,
            _batch: &Pair,
            _batch_idx: usize,
            _dataloader_idx: usize,
            _ctx: &mut Ctx,
        ) {
            self.record("on_test_batch_end");
        }

        fn on_predict_batch_start(&mut self, _batch: &Pair, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
            self.record("on_predict_batch_start");
        }

        fn on_predict_batch_end(
            &mut self,
            _outputs: &Tensor,
            _batch: &Pair,
            _batch_idx: usize,
            _dataloader_idx: usize,
            _ctx: &mut Ctx,
        ) {
            self.record("on_predict_batch_end");
        }

        // ---- Model hooks: mode (tch modules have no train/eval flag of their own: the Ctx holds it) ----

        fn on_validation_model_zero_grad(&mut self, _ctx: &mut Ctx) -> Result<(), tch::TchError> {
            self.record("on_validation_model_zero_grad");
            // Lightning's default: no gradients of training left over while validating.
            for variable in self.vs.trainable_variables() {
                let mut grad = variable.grad();
                if grad.defined() {
                    let _ = grad.f_zero_()?;
                }
            }
            Ok(())
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

        // ---- Model hooks: epochs ----

        fn on_train_epoch_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_train_epoch_start");
        }

        fn on_train_epoch_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_train_epoch_end");
        }

        fn on_validation_epoch_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_validation_epoch_start");
        }

        fn on_validation_epoch_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_validation_epoch_end");
        }

        fn on_test_epoch_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_test_epoch_start");
        }

        fn on_test_epoch_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_test_epoch_end");
        }

        fn on_predict_epoch_start(&mut self, _ctx: &mut Ctx) {
            self.record("on_predict_epoch_start");
        }

        fn on_predict_epoch_end(&mut self, _ctx: &mut Ctx) {
            self.record("on_predict_epoch_end");
        }

        // ---- Model hooks: around the optimizer step ----

        fn on_before_zero_grad(&mut self, _optimizer: &mut Optimizer, _ctx: &mut Ctx) {
            self.record("on_before_zero_grad");
        }

        fn on_before_backward(&mut self, _loss: &Tensor, _ctx: &mut Ctx) {
            self.record("on_before_backward");
        }

        fn on_after_backward(&mut self, _ctx: &mut Ctx) {
            self.record("on_after_backward");
        }

        fn on_before_optimizer_step(&mut self, _optimizer: &mut Optimizer, _ctx: &mut Ctx) {
            self.record("on_before_optimizer_step");
        }

        // ---- Data hooks ----

        fn prepare_data(&mut self, _ctx: &mut Ctx) {
            self.record("prepare_data");
        }

        fn setup(&mut self, _stage: Stage, _ctx: &mut Ctx) {
            self.record("setup");
        }

        fn teardown(&mut self, _stage: Stage, _ctx: &mut Ctx) {
            self.record("teardown");
        }

        // No data is passed to the Trainer: each entry point asks the module for it.
        fn train_dataloader(&mut self, _ctx: &mut Ctx) -> lightning::Result<Loader<Pair>> {
            self.record("train_dataloader");
            Ok(Loader::from(batches(2)?))
        }

        fn val_dataloader(&mut self, _ctx: &mut Ctx) -> lightning::Result<Loader<Pair>> {
            self.record("val_dataloader");
            Ok(Loader::from(batches(1)?))
        }

        fn test_dataloader(&mut self, _ctx: &mut Ctx) -> lightning::Result<Loader<Pair>> {
            self.record("test_dataloader");
            Ok(Loader::from(batches(1)?))
        }

        fn predict_dataloader(&mut self, _ctx: &mut Ctx) -> lightning::Result<Loader<Pair>> {
            self.record("predict_dataloader");
            Ok(Loader::from(batches(1)?))
        }

        fn transfer_batch_to_device(
            &mut self,
            batch: Pair,
            device: Device,
            _dataloader_idx: usize,
            _ctx: &mut Ctx,
        ) -> lightning::Result<Pair> {
            self.record("transfer_batch_to_device");
            batch.to_device(device)
        }

        fn on_before_batch_transfer(&mut self, batch: Pair, _dataloader_idx: usize, _ctx: &mut Ctx) -> Pair {
            self.record("on_before_batch_transfer");
            batch
        }

        fn on_after_batch_transfer(&mut self, batch: Pair, _dataloader_idx: usize, _ctx: &mut Ctx) -> Pair {
            self.record("on_after_batch_transfer");
            batch
        }

        // ---- Checkpoint hooks ----

        fn on_save_checkpoint(&mut self, checkpoint: &mut Checkpoint, _ctx: &mut Ctx) -> lightning::Result<()> {
            self.record("on_save_checkpoint");
            // The module's own entries travel in the checkpoint's header.
            checkpoint.insert("saved_by", "hook_order example")
        }

        // Any error type converts into the hook's: here `lightning::Error` (through `?`) and a `String`.
        fn on_load_checkpoint(&mut self, checkpoint: &mut Checkpoint, _ctx: &mut Ctx) -> Result<(), HookError> {
            self.record("on_load_checkpoint");
            let saved_by: Option<String> = checkpoint.get("saved_by")?;
            if saved_by.as_deref() != Some("hook_order example") {
                return Err(format!("expected the entry `on_save_checkpoint` wrote, found {saved_by:?}").into());
            }
            Ok(())
        }
    }
}

use every_hook::EveryHook;

/// Records every callback hook as `Callback.<hook>`.
struct RecordingCallback(Log);

impl RecordingCallback {
    fn record(&self, name: &str) -> CallbackResult {
        self.0.record(format!("Callback.{name}"));
        Ok(())
    }
}

type Module<'a> = &'a mut dyn AnyModule;

impl Callback for RecordingCallback {
    fn setup(&mut self, _: &mut Ctx, _: Module, _: Stage) -> CallbackResult {
        self.record("setup")
    }
    fn teardown(&mut self, _: &mut Ctx, _: Module, _: Stage) -> CallbackResult {
        self.record("teardown")
    }
    fn on_fit_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_fit_start")
    }
    fn on_fit_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_fit_end")
    }
    fn on_sanity_check_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_sanity_check_start")
    }
    fn on_sanity_check_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_sanity_check_end")
    }
    fn on_train_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_train_start")
    }
    fn on_train_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_train_end")
    }
    fn on_train_epoch_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_train_epoch_start")
    }
    fn on_train_epoch_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_train_epoch_end")
    }
    fn on_train_batch_start(&mut self, _: &mut Ctx, _: Module, _: &dyn Any, _: usize) -> CallbackResult {
        self.record("on_train_batch_start")
    }
    fn on_train_batch_end(&mut self, _: &mut Ctx, _: Module, _: &StepOutput, _: &dyn Any, _: usize) -> CallbackResult {
        self.record("on_train_batch_end")
    }
    fn on_validation_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_validation_start")
    }
    fn on_validation_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_validation_end")
    }
    fn on_validation_epoch_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_validation_epoch_start")
    }
    fn on_validation_epoch_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_validation_epoch_end")
    }
    fn on_validation_batch_start(&mut self, _: &mut Ctx, _: Module, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_validation_batch_start")
    }
    fn on_validation_batch_end(
        &mut self,
        _: &mut Ctx,
        _: Module,
        _: &StepOutput,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_validation_batch_end")
    }
    fn on_test_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_test_start")
    }
    fn on_test_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_test_end")
    }
    fn on_test_epoch_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_test_epoch_start")
    }
    fn on_test_epoch_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_test_epoch_end")
    }
    fn on_test_batch_start(&mut self, _: &mut Ctx, _: Module, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_test_batch_start")
    }
    fn on_test_batch_end(
        &mut self,
        _: &mut Ctx,
        _: Module,
        _: &StepOutput,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_test_batch_end")
    }
    fn on_predict_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_predict_start")
    }
    fn on_predict_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_predict_end")
    }
    fn on_predict_epoch_start(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_predict_epoch_start")
    }
    fn on_predict_epoch_end(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_predict_epoch_end")
    }
    fn on_predict_batch_start(&mut self, _: &mut Ctx, _: Module, _: &dyn Any, _: usize, _: usize) -> CallbackResult {
        self.record("on_predict_batch_start")
    }
    fn on_predict_batch_end(
        &mut self,
        _: &mut Ctx,
        _: Module,
        _: &dyn Any,
        _: &dyn Any,
        _: usize,
        _: usize,
    ) -> CallbackResult {
        self.record("on_predict_batch_end")
    }
    fn on_before_backward(&mut self, _: &mut Ctx, _: Module, _: &Tensor) -> CallbackResult {
        self.record("on_before_backward")
    }
    fn on_after_backward(&mut self, _: &mut Ctx, _: Module) -> CallbackResult {
        self.record("on_after_backward")
    }
    fn on_before_optimizer_step(&mut self, _: &mut Ctx, _: Module, _: &mut Optimizer) -> CallbackResult {
        self.record("on_before_optimizer_step")
    }
    fn on_before_zero_grad(&mut self, _: &mut Ctx, _: Module, _: &mut Optimizer) -> CallbackResult {
        self.record("on_before_zero_grad")
    }
    fn on_save_checkpoint(&mut self, _: &mut Ctx, _: Module, _: &mut Checkpoint) -> CallbackResult {
        self.record("on_save_checkpoint")
    }
    fn on_load_checkpoint(&mut self, _: &mut Ctx, _: Module, _: &mut Checkpoint) -> CallbackResult {
        self.record("on_load_checkpoint")
    }
    // Only a failing run reaches it; this one does not fail.
    fn on_exception(&mut self, _: &mut Ctx, _: Module, _: &lightning::Error) -> CallbackResult {
        self.record("on_exception")
    }
}

/// Saves a checkpoint at the end of the training epoch, as `ModelCheckpoint` does: a monitoring callback, so
/// it runs after the module's `on_train_epoch_end`, and the save calls every `on_save_checkpoint`.
struct SaveAtEpochEnd(PathBuf);

impl Callback for SaveAtEpochEnd {
    fn monitors(&self) -> bool {
        true
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _: Module) -> CallbackResult {
        ctx.save_checkpoint(&self.0);
        Ok(())
    }
}

fn main() -> lightning::Result<()> {
    run().map(drop)
}

/// Runs and prints everything; returns the hooks of the catalogue that were never called (the hook-order tests
/// check that there are none: a hook the dispatcher never calls fails them).
pub fn run() -> lightning::Result<Vec<&'static str>> {
    let log = Log::default();
    let dir = std::env::temp_dir().join(format!("lightning-hook-order-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let checkpoint = dir.join("epoch-end.ckpt");

    tch::manual_seed(0);
    let mut module = EveryHook::new(log.clone());
    // Lightning's hook-order test turns its default logger and checkpoint off too.
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(1)
        .limit_train_batches(2)
        .limit_val_batches(1)
        .num_sanity_val_steps(2)
        .seed(0)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(RecordingCallback(log.clone()))
        .callback(SaveAtEpochEnd(checkpoint.clone()));

    let mut called = Vec::new();
    trainer.fit(&mut module, None, None)?;
    called.extend(log.print("fit (1 epoch, 2 training batches, 1 validation batch, sanity check on)"));
    trainer.validate(&mut module, None)?;
    called.extend(log.print("validate"));
    trainer.test(&mut module, None)?;
    called.extend(log.print("test"));
    trainer.predict(&mut module, None)?;
    called.extend(log.print("predict"));

    // Outside the Trainer: a fresh module, loaded from the checkpoint `fit` wrote (no callbacks take part).
    let restored = EveryHook::new(log.clone()).load_from_checkpoint(&checkpoint)?;
    called.extend(log.print("load_from_checkpoint"));
    let same = restored.linear.ws.f_equal(&module.linear.ws.f_to_device(Device::Cpu)?)?;
    println!("restored weights equal the trained ones: {same}\n");

    // The model summary (off in the runs above, as in Lightning's hook-order test) runs `example_input_array`
    // through `forward` for each submodule's input and output shapes.
    let rows = lightning::ModelSummary::rows_with_shapes(&mut module)?;
    called.extend(log.print("ModelSummary::rows_with_shapes"));
    println!("linear: in {:?}, out {:?}\n", rows[0].in_size, rows[0].out_size);
    std::fs::remove_dir_all(&dir)?;

    let defined = lightning::defined_hooks::<EveryHook>();
    println!("EveryHook defines {} of the {} hooks in lightning::HOOK_NAMES", defined.len(), HOOK_NAMES.len());
    let missed: Vec<&str> = HOOK_NAMES.iter().copied().filter(|hook| !called.iter().any(|c| c == hook)).collect();
    println!("{} of them were called at least once", HOOK_NAMES.len() - missed.len());
    if !missed.is_empty() {
        println!("never called: {}", missed.join(", "));
    }
    Ok(missed)
}
