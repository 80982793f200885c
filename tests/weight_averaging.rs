//! `EMAWeightAveraging`, `WeightAveraging` and `StochasticWeightAveraging` on a real MLP: the averages equal
//! the ones computed by hand from every step's weights, validation sees them, checkpoints hold them, and a run
//! resumed from a mid-run checkpoint ends bit for bit where the uninterrupted run ends.

mod common;

use std::any::Any;
use std::sync::{Arc, Mutex};

use common::checkpointing::{
    assert_same_weights, train_loader, val_loader, weights, MemoryLogger, Net, Opt, Saver, BATCHES_PER_EPOCH as B,
};
use common::serial;
use lightning::prelude::*;
use lightning::{
    Accelerator, Annealing, AnyModule, CallbackResult, EMAWeightAveraging, LoadFromCheckpoint,
    StochasticWeightAveraging, Trainer, WeightAveraging,
};

const SEED: u64 = 11;

type Weights = Vec<(String, Tensor)>;

/// Copies the module's weights at chosen hooks: after every training batch, at the start of every training
/// epoch and of every validation batch (outside the sanity check), with the learning rate of each batch.
#[derive(Clone, Default)]
struct Snapshots {
    after_step: Arc<Mutex<Vec<Weights>>>,
    epoch_start: Arc<Mutex<Vec<Weights>>>,
    validation: Arc<Mutex<Vec<Weights>>>,
    lrs: Arc<Mutex<Vec<(usize, f64)>>>,
}

impl Callback for Snapshots {
    fn on_train_epoch_start(&mut self, _ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult {
        self.epoch_start.lock().unwrap().push(weights(module.var_store()));
        Ok(())
    }

    fn on_train_batch_start(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _batch: &dyn Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        let epoch = ctx.current_epoch();
        let lr = ctx.optimizers().first().map(|o| o.lr()).ok_or("no optimizer before the training step")?;
        self.lrs.lock().unwrap().push((epoch, lr));
        Ok(())
    }

    fn on_train_batch_end(
        &mut self,
        _ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        self.after_step.lock().unwrap().push(weights(module.var_store()));
        Ok(())
    }

    fn on_validation_batch_start(
        &mut self,
        ctx: &mut Ctx,
        module: &mut dyn AnyModule,
        _batch: &dyn Any,
        batch_idx: usize,
        _dataloader_idx: usize,
    ) -> CallbackResult {
        if !ctx.sanity_checking() && batch_idx == 0 {
            self.validation.lock().unwrap().push(weights(module.var_store()));
        }
        Ok(())
    }
}

/// A quiet CPU Trainer, seeded, sending every step's values to `logger`.
fn trainer(logger: &MemoryLogger) -> Trainer {
    Trainer::new()
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .log_every_n_steps(1)
        .seed(SEED)
        .logger(logger.clone())
}

/// A copy of a set of weights.
fn copy(w: &Weights) -> Weights {
    w.iter().map(|(n, t)| (n.clone(), t.copy())).collect()
}

/// `decay * avg + (1 - decay) * w`, as the callback computes it.
fn ema(avg: &Weights, w: &Weights, decay: f64) -> Weights {
    avg.iter().zip(w).map(|((n, a), (_, t))| (n.clone(), a * decay + t * (1.0 - decay))).collect()
}

#[test]
fn ema_weights_are_the_ema_of_every_steps_weights_and_validation_sees_them() {
    let _serial = serial();
    let decay = 0.8;
    let snaps = Snapshots::default();
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    let mut t = trainer(&MemoryLogger::default())
        .max_epochs(3)
        .callback(EMAWeightAveraging::new().decay(decay))
        .callback(snaps.clone());
    t.fit(&mut module, train_loader(SEED), val_loader()).unwrap();

    let steps = std::mem::take(&mut *snaps.after_step.lock().unwrap());
    assert_eq!(steps.len(), 3 * B);
    // The first update copies the weights; every later one folds the step's weights in.
    let mut expected = vec![copy(&steps[0])];
    for w in &steps[1..] {
        let next = ema(expected.last().unwrap(), w, decay);
        expected.push(next);
    }
    let validated = std::mem::take(&mut *snaps.validation.lock().unwrap());
    assert_eq!(validated.len(), 3);
    for (epoch, seen) in validated.iter().enumerate() {
        assert_same_weights(seen, &expected[(epoch + 1) * B - 1], &format!("validation after epoch {epoch}"));
        assert!(!seen.iter().zip(&steps[(epoch + 1) * B - 1]).all(|((_, a), (_, b))| a.equal(b)));
    }
    assert_same_weights(&weights(&module.vs), expected.last().unwrap(), "the module after fit");

    // Averaging changes nothing of the training itself: the same steps' weights as a run without it.
    let plain_snaps = Snapshots::default();
    let mut plain = Net::mlp(0.0, Opt::AdamStepLr);
    let mut t = trainer(&MemoryLogger::default()).max_epochs(3).callback(plain_snaps.clone());
    t.fit(&mut plain, train_loader(SEED), val_loader()).unwrap();
    assert_same_weights(&weights(&plain.vs), steps.last().unwrap(), "trained weights, with and without EMA");
}

#[test]
fn ema_schedule_updates_every_n_steps_from_the_start_step() {
    let _serial = serial();
    let (decay, every, start) = (0.5, 2, 3);
    let snaps = Snapshots::default();
    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let ema_cb = EMAWeightAveraging::new().decay(decay).update_every_n_steps(every).update_starting_at_step(start);
    let mut t = trainer(&MemoryLogger::default()).max_epochs(2).callback(ema_cb).callback(snaps.clone());
    t.fit(&mut module, train_loader(SEED), val_loader()).unwrap();
    let steps = std::mem::take(&mut *snaps.after_step.lock().unwrap());
    let mut avg: Option<Weights> = None;
    for (idx, w) in steps.iter().enumerate() {
        if idx >= start && idx % every == 0 {
            avg = Some(match avg {
                None => copy(w),
                Some(a) => ema(&a, w, decay),
            });
        }
    }
    assert_same_weights(&weights(&module.vs), &avg.unwrap(), "steps 4, 6, 8, 10 averaged");
}

#[test]
fn weight_averaging_defaults_to_the_mean_of_every_steps_weights() {
    let _serial = serial();
    let snaps = Snapshots::default();
    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let mut t =
        trainer(&MemoryLogger::default()).max_epochs(1).callback(WeightAveraging::new()).callback(snaps.clone());
    t.fit(&mut module, train_loader(SEED), val_loader()).unwrap();
    let steps = std::mem::take(&mut *snaps.after_step.lock().unwrap());
    let mut avg = copy(&steps[0]);
    for (n, w) in steps.iter().enumerate().skip(1) {
        avg = avg.iter().zip(w).map(|((name, a), (_, t))| (name.clone(), a + (t - a) / (n as f64 + 1.0))).collect();
    }
    assert_same_weights(&weights(&module.vs), &avg, "the running mean");
    let mean =
        steps.iter().fold(Tensor::zeros([1], (Kind::Float, Device::Cpu)), |acc, w| acc + &w[3].1.sum(Kind::Float));
    let diff = (mean / steps.len() as f64 - weights(&module.vs)[3].1.sum(Kind::Float)).abs().double_value(&[]);
    assert!(diff < 1e-5, "the running mean is the mean ({diff})");
}

/// An EMA run saving at `save_step` and stopped two steps later, resumed to `epochs` epochs with a new module
/// and callback: the same weights and validation losses as the run that never stopped.
#[test]
fn ema_resume_from_a_mid_run_checkpoint_is_exact() {
    let _serial = serial();
    let epochs = 4;
    let ema = || EMAWeightAveraging::new().decay(0.7).update_every_n_steps(2).update_starting_at_step(1);
    let straight_log = MemoryLogger::default();
    let mut straight = Net::mlp(0.0, Opt::AdamStepLr);
    trainer(&straight_log)
        .max_epochs(epochs)
        .callback(ema())
        .fit(&mut straight, train_loader(SEED), val_loader())
        .unwrap();

    for save_step in [9, 12] {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("mid.ckpt");
        let mut first = Net::mlp(0.0, Opt::AdamStepLr);
        let mut t = trainer(&MemoryLogger::default())
            .max_steps(save_step + 2)
            .callback(ema())
            .callback(Saver::at_step(save_step, &ckpt));
        t.fit(&mut first, train_loader(SEED), val_loader()).unwrap();

        let saved = Checkpoint::read(&ckpt).unwrap();
        let names = saved.tensor_names();
        assert!(names.contains(&"current_model.l1.weight") && names.contains(&"model.l1.weight"), "{names:?}");
        let (avg, current) =
            (saved.tensor("model.l1.weight").unwrap(), saved.tensor("current_model.l1.weight").unwrap());
        assert!(!avg.equal(current), "the checkpoint's model weights are the average, not the trained weights");
        let state = saved.callback_state("EMAWeightAveraging").unwrap();
        assert_eq!(state["latest_update_step"], if save_step % 2 == 1 { save_step } else { save_step - 1 });
        // `load_from_checkpoint` (inference) gets the averaged weights.
        let loaded = Net::mlp(5.0, Opt::AdamStepLr).load_from_checkpoint(&ckpt).unwrap();
        assert!(loaded.vs.variables()["l1.weight"].equal(avg));

        let resumed_log = MemoryLogger::default();
        let mut resumed = Net::mlp(3.0, Opt::AdamStepLr);
        let mut t = trainer(&resumed_log).seed(SEED + 50).max_epochs(epochs).callback(ema());
        t.fit_from(&mut resumed, train_loader(SEED), val_loader(), &ckpt).unwrap();
        let what = format!("resumed from step {save_step}");
        assert_same_weights(&weights(&straight.vs), &weights(&resumed.vs), &what);
        let after = |log: &MemoryLogger, name: &str| -> Vec<(f64, usize)> {
            log.records().into_iter().filter(|(n, _, s)| n == name && *s > save_step).map(|(_, v, s)| (v, s)).collect()
        };
        assert_eq!(after(&resumed_log, "val_loss"), after(&straight_log, "val_loss"), "{what}: validation losses");
        assert_eq!(after(&resumed_log, "train_loss_step"), after(&straight_log, "train_loss_step"), "{what}");
        assert!(!after(&resumed_log, "val_loss").is_empty());
    }

    // The control: without the callback on resume, the run ends elsewhere (the checkpoint's `model.*` are the
    // average, and only the callback puts the trained weights back).
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mid.ckpt");
    let mut first = Net::mlp(0.0, Opt::AdamStepLr);
    trainer(&MemoryLogger::default())
        .max_steps(9)
        .callback(ema())
        .callback(Saver::at_step(9, &ckpt))
        .fit(&mut first, train_loader(SEED), val_loader())
        .unwrap();
    let mut bare = Net::mlp(3.0, Opt::AdamStepLr);
    trainer(&MemoryLogger::default())
        .max_epochs(epochs)
        .fit_from(&mut bare, train_loader(SEED), val_loader(), &ckpt)
        .unwrap();
    assert!(!weights(&bare.vs).iter().zip(weights(&straight.vs)).all(|((_, a), (_, b))| a.equal(&b)));
}

#[test]
fn swa_averages_from_the_start_epoch_and_anneals_the_learning_rate() {
    let _serial = serial();
    let (base, swa_lr) = (5e-2, 1e-2);
    let snaps = Snapshots::default();
    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let swa =
        StochasticWeightAveraging::new(swa_lr).swa_epoch_start(3).annealing_epochs(2).annealing(Annealing::Linear);
    let mut t = trainer(&MemoryLogger::default()).max_epochs(5).callback(swa).callback(snaps.clone());
    t.fit(&mut module, train_loader(SEED), val_loader()).unwrap();

    // Epochs 3, 4 and 5 (zero-based 2, 3, 4) start with an update: the mean of the weights then.
    let starts = std::mem::take(&mut *snaps.epoch_start.lock().unwrap());
    assert_eq!(starts.len(), 5);
    let mut avg = copy(&starts[2]);
    for (n, w) in starts[3..].iter().enumerate() {
        avg = avg.iter().zip(w).map(|((name, a), (_, t))| (name.clone(), a + (t - a) / (n as f64 + 2.0))).collect();
    }
    assert_same_weights(&weights(&module.vs), &avg, "the module after fit holds the SWA average");

    // Validation saw the trained weights (Lightning's SWA swaps nothing in).
    let validated = std::mem::take(&mut *snaps.validation.lock().unwrap());
    let steps = std::mem::take(&mut *snaps.after_step.lock().unwrap());
    assert_same_weights(&validated[3], &steps[4 * B - 1], "validation of epoch 4");

    // The rate: unchanged before and in the first averaged epoch, then linearly to swa_lr over 2 epochs.
    let lrs = snaps.lrs.lock().unwrap().clone();
    let per_epoch: Vec<f64> = (0..5).map(|e| lrs.iter().find(|(ep, _)| *ep == e).unwrap().1).collect();
    let expected = [base, base, base, 0.5 * swa_lr + 0.5 * base, swa_lr];
    for (got, want) in per_epoch.iter().zip(expected) {
        assert!((got - want).abs() < 1e-12, "learning rates {per_epoch:?}, expected {expected:?}");
    }
    assert!(lrs.iter().all(|(e, lr)| *lr == per_epoch[*e]), "the rate holds within each epoch");
}

#[test]
fn swa_resume_from_a_mid_run_checkpoint_is_exact() {
    let _serial = serial();
    let epochs = 5;
    let swa = || StochasticWeightAveraging::new(2e-3).swa_epoch_start_fraction(0.4).annealing_epochs(3);
    let straight_log = MemoryLogger::default();
    let mut straight = Net::mlp(0.0, Opt::AdamStepLr);
    trainer(&straight_log)
        .max_epochs(epochs)
        .callback(swa())
        .fit(&mut straight, train_loader(SEED), val_loader())
        .unwrap();

    for save_step in [2 * B + 3, 3 * B] {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = dir.path().join("mid.ckpt");
        let mut first = Net::mlp(0.0, Opt::AdamStepLr);
        trainer(&MemoryLogger::default())
            .max_epochs(epochs)
            .max_steps(save_step + 1)
            .callback(swa())
            .callback(Saver::at_step(save_step, &ckpt))
            .fit(&mut first, train_loader(SEED), val_loader())
            .unwrap();
        let saved = Checkpoint::read(&ckpt).unwrap();
        assert!(saved.tensor_names().contains(&"swa.l1.weight"), "{:?}", saved.tensor_names());

        let resumed_log = MemoryLogger::default();
        let mut resumed = Net::mlp(3.0, Opt::AdamStepLr);
        trainer(&resumed_log)
            .max_epochs(epochs)
            .callback(swa())
            .fit_from(&mut resumed, train_loader(SEED), val_loader(), &ckpt)
            .unwrap();
        let what = format!("SWA resumed from step {save_step}");
        assert_same_weights(&weights(&straight.vs), &weights(&resumed.vs), &what);
        let after = |log: &MemoryLogger| -> Vec<(String, f64, usize)> { log.after(save_step) };
        assert_eq!(after(&resumed_log), after(&straight_log), "{what}: every value logged");
    }
}

#[test]
fn swa_without_max_epochs_is_a_clear_error() {
    let _serial = serial();
    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let err = trainer(&MemoryLogger::default())
        .max_steps(3)
        .callback(StochasticWeightAveraging::new(1e-2))
        .fit(&mut module, train_loader(SEED), val_loader())
        .unwrap_err();
    assert!(err.to_string().contains("max_epochs"), "{err}");
}
