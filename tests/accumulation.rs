//! Gradient accumulation stays exact around everything that can happen inside a window: validation, a checkpoint
//! taken mid-window, a panic that leaves a checkpoint, and checkpoints other callbacks ask for at epoch end.

mod common;

use std::path::Path;

use common::checkpointing::{
    assert_same_weights, data, train_loader, val_loader, weights, Net, Opt, Saver, BATCHES_PER_EPOCH,
};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, EarlyStopping, Error, ModelCheckpoint, OnExceptionCheckpoint, Trainer};

const SEED: u64 = 11;

fn cpu() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .seed(SEED)
        .enable_progress_bar(false)
        .enable_model_summary(false)
}

/// 18 shuffled batches of 16 per epoch.
fn long_loader() -> Loader<(Tensor, Tensor)> {
    DataLoader::new(data(16 * 18, 0)).batch_size(16).shuffle(true).seed(SEED).build().unwrap()
}

#[test]
fn validation_inside_an_accumulation_window_leaves_the_gradients_alone() {
    let _serial = serial();
    let run = |trainer: Trainer| {
        let mut module = Net::mlp(0.0, Opt::SgdMomentumCosine);
        let mut trainer = trainer.max_epochs(2).accumulate_grad_batches(3);
        trainer.fit(&mut module, long_loader(), val_loader()).unwrap();
        assert_eq!(trainer.global_step(), 12);
        weights(&module.vs)
    };
    let unvalidated = run(cpu().limit_val_batches(0));
    // Every 5 batches: batches 5, 10 and 15 end inside a window of 3; every 16: batch 16 does.
    let every_5 = run(cpu().val_check_interval(5));
    let every_16 = run(cpu().val_check_interval(16));
    assert_same_weights(&every_5, &every_16, "validating every 5 vs every 16 batches");
    assert_same_weights(&every_5, &unvalidated, "validating every 5 batches vs not at all");
}

#[test]
fn a_checkpoint_inside_an_accumulation_window_resumes_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mid-window.ckpt");
    // Global step 1 is reached at batch 2; the saver asks again at batches 3 and 4, the last of which is inside
    // the window of batches 3..=5: its file holds two batches' gradients.
    let mut first = Net::mlp(0.0, Opt::AdamStepLr);
    let mut trainer = cpu().max_epochs(3).accumulate_grad_batches(3).callback(Saver::at_step(1, &ckpt));
    trainer.fit(&mut first, train_loader(SEED), val_loader()).unwrap();
    let saved = Checkpoint::read(&ckpt).unwrap();
    assert_eq!(saved.global_step(), 1);

    let mut resumed = Net::mlp(5.0, Opt::AdamStepLr);
    let mut trainer = cpu().max_epochs(3).accumulate_grad_batches(3);
    trainer.fit_from(&mut resumed, train_loader(SEED), val_loader(), &ckpt).unwrap();
    assert_eq!(trainer.global_step(), 3 * BATCHES_PER_EPOCH / 3);
    assert_eq!(resumed.steps_run, 3 * BATCHES_PER_EPOCH - 5, "batches 0..=4 of the first epoch are not run again");
    assert_same_weights(&weights(&resumed.vs), &weights(&first.vs), "resumed mid-window vs uninterrupted");
}

/// The MLP, panicking in `training_step` at one batch of the first epoch.
struct PanicsOnce {
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
    at_batch: Option<usize>,
    /// Asks for a checkpoint from `training_step` at this batch of the first epoch.
    save_at: Option<(usize, std::path::PathBuf)>,
}

impl PanicsOnce {
    fn new(init: f64, at_batch: Option<usize>) -> Self {
        let Net { vs, layers, .. } = Net::mlp(init, Opt::SgdOnly);
        PanicsOnce { vs, layers, at_batch, save_at: None }
    }
}

#[lightning_module]
impl PanicsOnce {
    fn training_step(&mut self, batch: &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        if self.at_batch == Some(batch_idx) && ctx.current_epoch() == 0 {
            panic!("batch {batch_idx} is cursed");
        }
        if let Some((at, path)) = &self.save_at {
            if *at == batch_idx && ctx.current_epoch() == 0 {
                ctx.save_checkpoint(path.clone());
            }
        }
        let (x, y) = batch;
        let h = self.layers[0].forward(x).relu().dropout(0.2, ctx.is_training());
        self.layers[1].forward(&h).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-2)
    }
}

#[test]
fn the_checkpoint_a_panic_leaves_resumes_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let fit = |module: &mut PanicsOnce, trainer: &mut Trainer| trainer.fit(module, train_loader(SEED), None);

    let mut straight = PanicsOnce::new(0.0, None);
    fit(&mut straight, &mut cpu().max_epochs(2).accumulate_grad_batches(2)).unwrap();

    // Batch 3 closes the window of batches 2 and 3: the panic comes with batch 2's gradient accumulated.
    let mut crashing = PanicsOnce::new(0.0, Some(3));
    let mut trainer = cpu().max_epochs(2).accumulate_grad_batches(2).callback(OnExceptionCheckpoint::new(dir.path()));
    match fit(&mut crashing, &mut trainer) {
        Err(Error::Panic { hook: "training_step", message }) => assert!(message.contains("cursed"), "{message}"),
        other => panic!("expected the panic, got {other:?}"),
    }
    let path = dir.path().join("on_exception.ckpt");
    let saved = Checkpoint::read(&path).unwrap();
    assert_eq!(saved.global_step(), 1);

    let mut resumed = PanicsOnce::new(3.0, None);
    let mut trainer = cpu().max_epochs(2).accumulate_grad_batches(2);
    trainer.fit_from(&mut resumed, train_loader(SEED), None, &path).unwrap();
    assert_eq!(trainer.global_step(), 2 * BATCHES_PER_EPOCH / 2);
    assert_same_weights(&weights(&resumed.vs), &weights(&straight.vs), "resumed after the panic");
}

/// Early stopping that never sees an improvement after the first epoch: it stops after `patience` more.
fn never_improving(patience: usize) -> EarlyStopping {
    EarlyStopping::new("train_loss_epoch").min_delta(100.0).patience(patience)
}

fn stop_epoch(trainer: &Trainer) -> usize {
    trainer.current_epoch()
}

#[test]
fn a_checkpoint_asked_for_at_epoch_end_holds_every_callbacks_end_of_epoch_state() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let saver_ckpt = dir.path().join("saver.ckpt");
    let checkpoints = dir.path().join("mc");
    let fit = |module: &mut Net, trainer: &mut Trainer, from: Option<&Path>| match from {
        None => trainer.fit(module, train_loader(SEED), val_loader()),
        Some(path) => trainer.fit_from(module, train_loader(SEED), val_loader(), path),
    };

    let mut straight = Net::mlp(0.0, Opt::AdamStepLr);
    let mut trainer = cpu().max_epochs(20).callback(never_improving(4));
    fit(&mut straight, &mut trainer, None).unwrap();
    let stopped = stop_epoch(&trainer);
    assert_eq!(stopped, 5, "the best at epoch 0, then 4 epochs without improvement");

    // The saver (an ordinary callback) and a ModelCheckpoint added before EarlyStopping both write at the end of
    // epoch 2, before EarlyStopping has counted that epoch.
    let mut first = Net::mlp(0.0, Opt::AdamStepLr);
    let mut trainer = cpu()
        .max_epochs(3)
        .callback(Saver::at_epoch_end(2, &saver_ckpt))
        .callback(ModelCheckpoint::new(&checkpoints).filename("{epoch}"))
        .callback(never_improving(4));
    fit(&mut first, &mut trainer, None).unwrap();
    let mc_ckpt = checkpoints.join("epoch=2.ckpt");
    for path in [&saver_ckpt, &mc_ckpt] {
        let state = Checkpoint::read(path).unwrap().callback_state("EarlyStopping").cloned().unwrap();
        assert_eq!(state["wait"], 2, "{}: EarlyStopping's state after epoch 2: {state}", path.display());

        let mut resumed = Net::mlp(1.0, Opt::AdamStepLr);
        let mut trainer = cpu().max_epochs(20).callback(never_improving(4));
        fit(&mut resumed, &mut trainer, Some(path)).unwrap();
        assert_eq!(stop_epoch(&trainer), stopped, "resumed from {}", path.display());
        assert_same_weights(&weights(&resumed.vs), &weights(&straight.vs), "resumed at epoch end vs straight");
    }
}

#[test]
fn a_checkpoint_asked_for_in_training_step_resumes_exactly() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-training-step.ckpt");
    let fit = |module: &mut PanicsOnce, trainer: &mut Trainer| trainer.fit(module, train_loader(SEED), None);

    // Batch 2 opens the window of batches 2 and 3: the checkpoint, taken once batch 2 is done, holds its gradient.
    let mut first = PanicsOnce::new(0.0, None);
    first.save_at = Some((2, path.clone()));
    fit(&mut first, &mut cpu().max_epochs(2).accumulate_grad_batches(2)).unwrap();
    let saved = Checkpoint::read(&path).unwrap();
    assert_eq!(saved.global_step(), 1, "taken after batch 2, before the window's step");

    let mut resumed = PanicsOnce::new(4.0, None);
    let mut trainer = cpu().max_epochs(2).accumulate_grad_batches(2);
    trainer.fit_from(&mut resumed, train_loader(SEED), None, &path).unwrap();
    assert_same_weights(&weights(&resumed.vs), &weights(&first.vs), "resumed from training_step's checkpoint");
}
