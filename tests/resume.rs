//! Resuming from a checkpoint continues the run exactly: the same weights bit for bit, the same logged losses,
//! the hooks in Lightning's order, and no batch trained twice.

mod common;

use common::checkpointing::{
    assert_same_weights, same_weights, train_loader, val_loader, weights, MemoryLogger, Net, Opt, Saver,
    BATCHES_PER_EPOCH as B, MLP,
};
use common::recorder::{Log, Recorder, RecordingCallback};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, LoadFromCheckpoint, LoadOptions, Trainer};

const EPOCHS: usize = 6;
const SEED: u64 = 5;

/// A CPU Trainer sending every step's values to `logger`.
fn trainer(logger: &MemoryLogger) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .log_every_n_steps(1)
        .logger(logger.clone())
}

/// The uninterrupted run: EPOCHS epochs from the same start as every first run.
fn straight(opt: Opt) -> (Net, MemoryLogger, Trainer) {
    let logger = MemoryLogger::default();
    let mut module = Net::mlp(0.0, opt);
    let mut t = trainer(&logger).seed(SEED).max_epochs(EPOCHS);
    t.fit(&mut module, train_loader(SEED), val_loader()).unwrap();
    assert_eq!(t.global_step(), EPOCHS * B);
    (module, logger, t)
}

/// The records named `name`.
fn named(records: &[(String, f64, usize)], name: &str) -> Vec<(f64, usize)> {
    records.iter().filter(|(n, _, _)| n == name).map(|(_, v, s)| (*v, *s)).collect()
}

#[test]
fn resuming_from_an_epoch_end_checkpoint_is_exact() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("epoch-2.ckpt");
    let (straight, straight_log, straight_trainer) = straight(Opt::AdamStepLr);

    // Half the epochs, with a checkpoint at the end of the last one.
    let mut first = Net::mlp(0.0, Opt::AdamStepLr);
    let mut t = trainer(&MemoryLogger::default())
        .seed(SEED)
        .max_epochs(EPOCHS / 2)
        .callback(Saver::at_epoch_end(EPOCHS / 2 - 1, &ckpt));
    t.fit(&mut first, train_loader(SEED), val_loader()).unwrap();
    let saved = Checkpoint::read(&ckpt).unwrap();
    let at = EPOCHS / 2 * B;
    assert_eq!((saved.epoch(), saved.global_step()), (EPOCHS / 2 - 1, at));
    assert_eq!(saved.weight_names(), ["l1.bias", "l1.weight", "l2.bias", "l2.weight"]);
    assert_eq!(saved.callback_state("Saver"), Some(&serde_json::json!({ "requests": 1 })));

    // A new module (other initial weights), a new Trainer with another seed: the checkpoint's seed wins.
    let resumed_log = MemoryLogger::default();
    let mut resumed = Net::mlp(9.0, Opt::AdamStepLr);
    assert!(!same_weights(&weights(&resumed.vs), &weights(&first.vs)));
    let saver = Saver::default();
    let loaded = saver.loaded.clone();
    let mut t = trainer(&resumed_log).seed(SEED + 100).max_epochs(EPOCHS).callback(saver);
    t.fit_from(&mut resumed, train_loader(SEED), val_loader(), &ckpt).unwrap();

    assert_eq!(resumed.steps_run, (EPOCHS - EPOCHS / 2) * B, "finished epochs are not trained again");
    assert_eq!((t.global_step(), t.current_epoch()), (straight_trainer.global_step(), EPOCHS));
    assert_same_weights(&weights(&straight.vs), &weights(&resumed.vs), "straight vs resumed");
    let expected = straight_log.after(at);
    assert_eq!(named(&expected, "train_loss_step").len(), (EPOCHS - EPOCHS / 2) * B);
    assert_eq!(named(&expected, "val_loss").len(), EPOCHS - EPOCHS / 2);
    assert_eq!(resumed_log.records(), expected, "the resumed run logs what the straight run logged");
    assert_eq!(*loaded.lock().unwrap(), Some(serde_json::json!({ "requests": 1 })), "callback state restored");
    assert_eq!(t.callback_metrics(), straight_trainer.callback_metrics());

    // The control: dropout draws from the seed, so that the exactness above is not a given.
    let other_log = MemoryLogger::default();
    let mut other = Net::mlp(0.0, Opt::AdamStepLr);
    trainer(&other_log).seed(SEED + 1).max_epochs(1).fit(&mut other, train_loader(SEED), val_loader()).unwrap();
    let (a, b) = (straight_log.values("train_loss_step"), other_log.values("train_loss_step"));
    assert_ne!(a[..B], b[..B], "another run seed draws other dropout masks");
}

/// A first run that saves at the end of the batch reaching `save_step`, and is stopped at `stop_step`; a second
/// run resumes from the checkpoint and must end exactly where the straight run ended.
fn resume_mid_epoch(opt: Opt, save_step: usize, stop_step: usize, straight: &(Net, MemoryLogger, Trainer)) {
    let what = format!("{opt:?}, saved at step {save_step}, stopped at step {stop_step}");
    let (straight, straight_log, _) = straight;
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("mid.ckpt");
    let mut first = Net::mlp(0.0, opt);
    let mut t =
        trainer(&MemoryLogger::default()).seed(SEED).max_steps(stop_step).callback(Saver::at_step(save_step, &ckpt));
    t.fit(&mut first, train_loader(SEED), val_loader()).unwrap();
    assert_eq!(t.global_step(), stop_step, "{what}");
    let saved = Checkpoint::read(&ckpt).unwrap();
    let (epoch, batches_done) = ((save_step - 1) / B, (save_step - 1) % B + 1);
    assert_eq!((saved.epoch(), saved.global_step()), (epoch, save_step), "{what}");

    let resumed_log = MemoryLogger::default();
    let mut resumed = Net::mlp(3.0, opt);
    let mut t = trainer(&resumed_log).max_epochs(EPOCHS);
    t.fit_from(&mut resumed, train_loader(SEED), val_loader(), &ckpt).unwrap();

    assert_eq!(resumed.steps_run, EPOCHS * B - save_step, "{what}: batches run on resume");
    assert_eq!(t.global_step(), EPOCHS * B, "{what}");
    assert_same_weights(&weights(&straight.vs), &weights(&resumed.vs), &what);
    let (expected, got) = (straight_log.records(), resumed_log.records());
    let steps_after = |records: &[(String, f64, usize)]| -> Vec<(f64, usize)> {
        named(records, "train_loss_step").into_iter().filter(|(_, s)| *s > save_step).collect()
    };
    assert_eq!(steps_after(&got), steps_after(&expected), "{what}: per-step losses");
    assert_eq!(steps_after(&got).len(), EPOCHS * B - save_step, "{what}");
    // The epoch means: the resumed epoch's too, from the partial sums the checkpoint kept.
    let first_resumed_epoch_end = epoch * B + 1;
    let epochs_from = |records: &[(String, f64, usize)]| -> Vec<(f64, usize)> {
        named(records, "train_loss_epoch").into_iter().filter(|(_, s)| *s >= first_resumed_epoch_end).collect()
    };
    assert_eq!(epochs_from(&got), epochs_from(&expected), "{what}: epoch means");
    assert_eq!(epochs_from(&got).len(), EPOCHS - epoch, "{what}");
    let val_after = |records: &[(String, f64, usize)]| -> Vec<(f64, usize)> {
        named(records, "val_loss").into_iter().filter(|(_, s)| *s > save_step).collect()
    };
    assert_eq!(val_after(&got), val_after(&expected), "{what}: validation losses");
    if batches_done < B {
        assert_eq!(got.len(), expected.iter().filter(|(_, _, s)| *s > save_step).count(), "{what}: {got:?}");
    }
}

#[test]
fn resuming_mid_epoch_with_shuffling_is_exact() {
    let _serial = serial();
    for opt in [Opt::AdamStepLr, Opt::SgdMomentumCosine, Opt::RmspropCustom] {
        let straight = straight(opt);
        // (save, stop): mid-epoch and stopped two batches later; on an epoch's first batch, stopped right there;
        // in the first epoch; on an epoch's last batch (before its end-of-epoch scheduler step is due again).
        for (save_step, stop_step) in [(14, 16), (13, 13), (4, 4), (2 * B, 2 * B + 2)] {
            resume_mid_epoch(opt, save_step, stop_step, &straight);
        }
    }
}

/// The position of the only `name` in `calls`.
fn only(calls: &[String], name: &str) -> usize {
    let at: Vec<usize> = calls.iter().enumerate().filter(|(_, c)| *c == name).map(|(i, _)| i).collect();
    assert_eq!(at.len(), 1, "`{name}` once in {calls:?}");
    at[0]
}

fn count(calls: &[String], name: &str) -> usize {
    calls.iter().filter(|c| *c == name).count()
}

#[test]
fn resume_restores_before_configure_optimizers_and_skips_what_was_done() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (mid, end) = (dir.path().join("mid.ckpt"), dir.path().join("end.ckpt"));
    let first_log = Log::default();
    let mut first = Recorder::new(first_log.clone());
    let saver = Saver { at_step: vec![(6, mid.clone())], at_epoch_end: vec![(0, end.clone())], ..Saver::default() };
    let mut t = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(2)
        .callback(RecordingCallback(first_log.clone()))
        .callback(saver);
    t.fit(&mut first, None, None).unwrap();
    let calls = first_log.lock().unwrap().clone();
    assert_eq!(count(&calls, "on_save_checkpoint"), 2);
    let (cb, module) = (
        calls.iter().position(|c| c == "Callback.on_save_checkpoint"),
        calls.iter().position(|c| c == "on_save_checkpoint"),
    );
    assert!(cb < module, "Callback.on_save_checkpoint before the module's: {calls:?}");

    // Mid-epoch: 4 batches per epoch, saved after batch 1 of epoch 1 (step 6). The resumed epoch has started
    // already: only epoch 2 calls `on_train_epoch_start` (as Lightning's
    // `test_trainer_model_hook_system_fit_no_val_and_resume_max_steps` asserts).
    for (ckpt, steps_left, epochs_started) in [(&mid, 2 + 4, 1), (&end, 4 + 4, 2)] {
        let log = Log::default();
        let mut resumed = Recorder::new(log.clone());
        let mut t = Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .accelerator(Accelerator::Cpu)
            .max_epochs(3)
            .callback(RecordingCallback(log.clone()));
        t.fit_from(&mut resumed, None, None, ckpt).unwrap();
        let calls = log.lock().unwrap().clone();
        let order = [
            only(&calls, "configure_model"),
            only(&calls, "on_load_checkpoint"),
            only(&calls, "Callback.on_load_checkpoint"),
            only(&calls, "configure_optimizers"),
            only(&calls, "Callback.on_fit_start"),
            only(&calls, "on_train_start"),
        ];
        assert!(order.windows(2).all(|w| w[0] < w[1]), "restore order {order:?} in {calls:?}");
        let first_step = calls.iter().position(|c| c == "training_step").unwrap();
        assert!(order[3] < first_step);
        assert_eq!(count(&calls, "training_step"), steps_left, "{}: only the batches not yet run", ckpt.display());
        assert_eq!(count(&calls, "optimizer_step"), steps_left);
        assert_eq!(count(&calls, "on_train_epoch_start"), epochs_started, "{}", ckpt.display());
        assert_eq!(count(&calls, "on_save_checkpoint"), 0);
        assert_eq!((t.global_step(), t.current_epoch()), (12, 3));
    }

    // `load_from_checkpoint` runs `configure_model` and `on_load_checkpoint`, then loads the weights.
    let log = Log::default();
    let loaded = Recorder::new(log.clone()).load_from_checkpoint(&end).unwrap();
    assert_eq!(*log.lock().unwrap(), ["configure_model", "on_load_checkpoint"]);
    let saved = Checkpoint::read(&end).unwrap();
    assert_eq!(saved.global_step(), 4);
    assert!(!loaded.linear.ws.equal(&first.linear.ws), "the end-of-epoch-0 weights, not the final ones");
}

#[test]
fn load_from_checkpoint_is_strict_unless_told_otherwise() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("end.ckpt");
    let mut first = Net::mlp(0.0, Opt::SgdMomentumCosine);
    let mut t = trainer(&MemoryLogger::default()).seed(SEED).max_epochs(2).callback(Saver::at_epoch_end(1, &ckpt));
    t.fit(&mut first, train_loader(SEED), val_loader()).unwrap();
    let trained = weights(&first.vs);

    let loaded = Net::mlp(7.0, Opt::SgdMomentumCosine).load_from_checkpoint(&ckpt).unwrap();
    assert_same_weights(&weights(&loaded.vs), &trained, "load_from_checkpoint");
    let message = |r: lightning::Result<Net>| r.err().expect("an error").to_string();
    let lenient = LoadOptions { strict: false };

    // A model with a layer the checkpoint lacks: strict refuses, lenient loads the rest and keeps the new layer.
    let extra = [MLP[0], MLP[1], ("l3", 1, 1)];
    let error = message(Net::new(&extra, 1.0, Opt::SgdOnly).load_from_checkpoint(&ckpt));
    assert!(error.contains("missing keys (in the model, not in the checkpoint): l3.bias, l3.weight"), "{error}");
    assert!(error.contains(&ckpt.display().to_string()), "{error}");
    let fresh = weights(&Net::new(&extra, 1.0, Opt::SgdOnly).vs);
    let loaded = Net::new(&extra, 1.0, Opt::SgdOnly).load_from_checkpoint_with(&ckpt, lenient).unwrap();
    let loaded = weights(&loaded.vs);
    assert_same_weights(&loaded[..4], &trained, "the layers the checkpoint has");
    assert_same_weights(&loaded[4..], &fresh[4..], "the layer it lacks keeps its initial values");

    // A model without a layer the checkpoint has.
    let fewer = [MLP[0]];
    let error = message(Net::new(&fewer, 1.0, Opt::SgdOnly).load_from_checkpoint(&ckpt));
    assert!(error.contains("unexpected keys (in the checkpoint, not in the model): l2.bias, l2.weight"), "{error}");
    let loaded = Net::new(&fewer, 1.0, Opt::SgdOnly).load_from_checkpoint_with(&ckpt, lenient).unwrap();
    assert_same_weights(&weights(&loaded.vs), &trained[..2], "l1 only");

    // Another shape is an error either way, and nothing is half-loaded.
    let narrow = [("l1", 8, 16), ("l2", 16, 1)];
    for options in [LoadOptions::default(), lenient] {
        let error = message(Net::new(&narrow, 1.0, Opt::SgdOnly).load_from_checkpoint_with(&ckpt, options));
        assert!(error.contains("shape mismatch for `l1.bias`: [32] in the checkpoint, [16] in the model"), "{error}");
        assert!(error.contains("shape mismatch for `l2.weight`: [1, 32] in the checkpoint, [1, 16] in the model"));
    }
}

/// Partial epoch sums, learning rates and the module's own entries are f64s in the header's JSON: they must come
/// back bit for bit, or a resumed run drifts by an ulp.
#[test]
fn checkpoint_metadata_keeps_floats_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("floats.ckpt");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let values: Vec<f64> = (0..2000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64 * 40.0
        })
        .collect();
    let mut checkpoint = Checkpoint::default();
    checkpoint.insert("values", &values).unwrap();
    checkpoint.write(&path).unwrap();
    let back: Vec<f64> = Checkpoint::read(&path).unwrap().get("values").unwrap().unwrap();
    let changed: Vec<(f64, f64)> =
        values.iter().zip(&back).filter(|(a, b)| a.to_bits() != b.to_bits()).map(|(a, b)| (*a, *b)).take(3).collect();
    assert!(changed.is_empty(), "f64s changed through a checkpoint, e.g. {changed:?}");
    assert_eq!(back.len(), values.len());
}
