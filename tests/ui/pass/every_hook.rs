//! A module that defines every hook of the catalogue, each with its full signature.
use lightning::prelude::*;
use lightning::{HookError, HOOK_NAMES};

struct Everything {
    vs: nn::VarStore,
}

#[lightning_module]
#[allow(deprecated)]
impl Everything {
    fn training_step(&mut self, _batch: &Tensor, _batch_idx: usize, _ctx: &mut Ctx) -> StepOutput {
        None
    }

    fn validation_step(&mut self, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) -> StepOutput {
        None
    }

    fn test_step(&mut self, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) -> StepOutput {
        None
    }

    fn predict_step(&mut self, batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) -> Tensor {
        batch.shallow_clone()
    }

    fn configure_callbacks(&mut self, _ctx: &mut Ctx) -> Vec<Box<dyn Callback>> {
        Vec::new()
    }

    fn example_input_array(&self) -> Tensor {
        Tensor::zeros([1], (Kind::Float, Device::Cpu))
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        x.shallow_clone()
    }

    fn configure_optimizers(&mut self, _ctx: &mut Ctx) -> Optimizers {
        Optimizer::sgd(&self.vs, 0.1).into()
    }

    fn configure_model(&mut self, _ctx: &mut Ctx) {
        
    }

    #[allow(deprecated)]
    fn configure_sharded_model(&mut self, _ctx: &mut Ctx) {
        
    }

    fn optimizer_step(&mut self, _epoch: usize, _batch_idx: usize, optimizer: &mut Optimizer, optimizer_closure: &mut OptimizerClosure<'_, Self>) -> Result<(), HookError> {
        optimizer.step_with(optimizer_closure, self).map_err(Into::into)
    }

    fn optimizer_zero_grad(&mut self, _epoch: usize, _batch_idx: usize, _optimizer: &mut Optimizer, _ctx: &mut Ctx) {
        
    }

    fn backward(&mut self, _loss: &Tensor, _ctx: &mut Ctx) {
        
    }

    fn configure_gradient_clipping(&mut self, _optimizer: &mut Optimizer, _gradient_clip_val: Option<f64>, _gradient_clip_algorithm: Option<GradClipAlgorithm>, _ctx: &mut Ctx) {
        
    }

    fn lr_scheduler_step(&mut self, _scheduler: &mut LrScheduler, _metric: Option<f64>, _ctx: &mut Ctx) {
        
    }

    fn on_fit_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_fit_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_train_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_train_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_predict_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_predict_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_train_batch_start(&mut self, _batch: &Tensor, _batch_idx: usize, _ctx: &mut Ctx) -> BatchControl {
        BatchControl::Continue
    }

    fn on_train_batch_end(&mut self, _outputs: &StepOutput, _batch: &Tensor, _batch_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_validation_batch_start(&mut self, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_validation_batch_end(&mut self, _outputs: &StepOutput, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_test_batch_start(&mut self, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_test_batch_end(&mut self, _outputs: &StepOutput, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_predict_batch_start(&mut self, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_predict_batch_end(&mut self, _outputs: &Tensor, _batch: &Tensor, _batch_idx: usize, _dataloader_idx: usize, _ctx: &mut Ctx) {
        
    }

    fn on_validation_model_zero_grad(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_model_eval(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_model_train(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_model_eval(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_model_train(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_predict_model_eval(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_train_epoch_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_train_epoch_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_epoch_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_validation_epoch_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_epoch_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_test_epoch_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_predict_epoch_start(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_predict_epoch_end(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_before_zero_grad(&mut self, _optimizer: &mut Optimizer, _ctx: &mut Ctx) {
        
    }

    fn on_before_backward(&mut self, _loss: &Tensor, _ctx: &mut Ctx) {
        
    }

    fn on_after_backward(&mut self, _ctx: &mut Ctx) {
        
    }

    fn on_before_optimizer_step(&mut self, _optimizer: &mut Optimizer, _ctx: &mut Ctx) {
        
    }

    fn prepare_data(&mut self, _ctx: &mut Ctx) {
        
    }

    fn setup(&mut self, _stage: Stage, _ctx: &mut Ctx) {
        
    }

    fn teardown(&mut self, _stage: Stage, _ctx: &mut Ctx) {
        
    }

    fn train_dataloader(&mut self, _ctx: &mut Ctx) -> Loader<Tensor> {
        Loader::from(vec![Tensor::zeros([2], (Kind::Float, Device::Cpu))])
    }

    fn val_dataloader(&mut self, _ctx: &mut Ctx) -> Loader<Tensor> {
        Loader::from(vec![Tensor::zeros([2], (Kind::Float, Device::Cpu))])
    }

    fn test_dataloader(&mut self, _ctx: &mut Ctx) -> Loader<Tensor> {
        Loader::from(vec![Tensor::zeros([2], (Kind::Float, Device::Cpu))])
    }

    fn predict_dataloader(&mut self, _ctx: &mut Ctx) -> Loader<Tensor> {
        Loader::from(vec![Tensor::zeros([2], (Kind::Float, Device::Cpu))])
    }

    fn transfer_batch_to_device(&mut self, batch: Tensor, _device: Device, _dataloader_idx: usize, _ctx: &mut Ctx) -> Tensor {
        batch
    }

    fn on_before_batch_transfer(&mut self, batch: Tensor, _dataloader_idx: usize, _ctx: &mut Ctx) -> Tensor {
        batch
    }

    fn on_after_batch_transfer(&mut self, batch: Tensor, _dataloader_idx: usize, _ctx: &mut Ctx) -> Tensor {
        batch
    }

    fn on_save_checkpoint(&mut self, _checkpoint: &mut Checkpoint, _ctx: &mut Ctx) {
        
    }

    fn on_load_checkpoint(&mut self, _checkpoint: &mut Checkpoint, _ctx: &mut Ctx) {
        
    }
}

fn main() {
    assert_eq!(lightning::defined_hooks::<Everything>(), HOOK_NAMES.to_vec());
    lightning::assert_fit::<Everything>();
}
