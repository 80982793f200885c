//! `ModelCheckpoint` in real (tiny) training runs on the CPU: which files end up on disk, under which names,
//! what the callback reports, and that its bookkeeping survives a resumed run.
//!
//! The module logs a scripted `val_loss` per epoch (and `val_acc = 1 - val_loss`), so that which checkpoints
//! are "best" is known in advance; it still trains for real, so that the weights in each file differ. The
//! scripted values are dyadic fractions, exact in binary, so the epoch means are exactly the scripted values.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Limit, LoadFromCheckpoint, ModelCheckpoint, Trainer};

/// Training batches per epoch (of 8 samples each).
const BATCHES: usize = 4;

/// `y = x · w` with fixed data: no global RNG, so tests running in parallel threads stay deterministic.
fn data(n: i64, offset: i64) -> (Tensor, Tensor) {
    let x =
        (Tensor::arange_start(offset * 3, (offset + n) * 3, (Kind::Float, Device::Cpu)).reshape([n, 3]) / 50.0).sin();
    let w = Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([3, 1]);
    let y = x.matmul(&w);
    (x, y)
}

fn train_loader() -> Loader<(Tensor, Tensor)> {
    DataLoader::new(data(8 * BATCHES as i64, 0)).batch_size(8).build().unwrap()
}

/// One validation batch, so each epoch's validation mean is exactly the logged value.
fn val_loader() -> Loader<(Tensor, Tensor)> {
    DataLoader::new(data(8, 1000)).batch_size(8).build().unwrap()
}

struct Scripted {
    vs: nn::VarStore,
    linear: nn::Linear,
    /// `val_loss` per epoch; epochs past the end log nothing.
    script: Vec<f64>,
}

impl Scripted {
    fn new(script: &[f64]) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 3, 1, Default::default());
        // Fixed initial weights, not the global RNG's (other tests reseed it from their threads).
        tch::no_grad(|| {
            linear.ws.shallow_clone().copy_(&Tensor::from_slice(&[0.1f32, 0.2, -0.3]).reshape([1, 3]));
            let _ = linear.bs.as_ref().unwrap().shallow_clone().fill_(0.05);
        });
        Scripted { vs, linear, script: script.to_vec() }
    }
}

#[lightning_module]
impl Scripted {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("real_val_loss", &loss);
        if let Some(&value) = self.script.get(ctx.current_epoch()) {
            ctx.log("val_loss", value);
            ctx.log("val_acc", 1.0 - value);
        }
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.05)
    }
}

/// A CPU Trainer for `epochs` epochs with `checkpoint`.
fn trainer(epochs: usize, checkpoint: ModelCheckpoint) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(epochs)
        .accelerator(Accelerator::Cpu)
        .seed(0)
        .callback(checkpoint)
}

/// Fits a fresh module logging `script` for `script.len()` epochs.
fn fit(script: &[f64], checkpoint: ModelCheckpoint) -> (Scripted, Trainer) {
    let mut module = Scripted::new(script);
    let mut trainer = trainer(script.len(), checkpoint);
    trainer.fit(&mut module, train_loader(), val_loader()).unwrap();
    (module, trainer)
}

/// The file names in `dir` (temporary files of atomic writes, which start with `.`, excluded).
fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .filter(|name| !name.starts_with('.'))
                .collect()
        })
        .unwrap_or_default()
}

fn names<const N: usize>(names: [&str; N]) -> BTreeSet<String> {
    names.into_iter().map(String::from).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_str().unwrap().to_string()
}

/// `best_k_models` by file name.
fn by_name(models: BTreeMap<PathBuf, f64>) -> BTreeMap<String, f64> {
    models.into_iter().map(|(path, score)| (file_name(&path), score)).collect()
}

fn weights(vs: &nn::VarStore) -> BTreeMap<String, Tensor> {
    vs.variables().into_iter().collect()
}

fn same_weights(a: &nn::VarStore, b: &nn::VarStore) -> bool {
    let (a, b) = (weights(a), weights(b));
    a.len() == b.len() && a.iter().all(|(name, t)| b.get(name).is_some_and(|u| t.equal(u)))
}

/// The 0.5, 0.25, 0.375, 0.125, 0.625 script: the two lowest are epochs 3 and 1.
const SCRIPT: [f64; 5] = [0.5, 0.25, 0.375, 0.125, 0.625];

#[test]
fn filename_templates_render_like_lightning() {
    let metrics: BTreeMap<String, f64> = [
        ("val_loss".to_string(), 0.123456),
        ("val_acc".to_string(), 0.9876),
        ("tiny".to_string(), 1.5e-5),
        ("epoch_test".to_string(), 7.0),
    ]
    .into_iter()
    .collect();
    let name = |checkpoint: ModelCheckpoint| file_name(&checkpoint.format_checkpoint_name(3, 64, &metrics).unwrap());
    let new = || ModelCheckpoint::new("/ckpt");
    // The expected names are what Lightning 2.x's `format_checkpoint_name` gives for the same values.
    assert_eq!(name(new()), "epoch=3-step=64.ckpt");
    assert_eq!(name(new().filename("{epoch}-{val_loss:.2f}")), "epoch=3-val_loss=0.12.ckpt");
    assert_eq!(name(new().filename("{epoch:03d}")), "epoch=003.ckpt");
    assert_eq!(name(new().filename("sample-{epoch:02d}-{val_loss:.2e}")), "sample-epoch=03-val_loss=1.23e-01.ckpt");
    assert_eq!(name(new().filename("{val_loss}")), "val_loss=0.123456.ckpt", "no spec: Python's repr");
    assert_eq!(name(new().filename("{val_acc:.1%}")), "val_acc=98.8%.ckpt");
    assert_eq!(name(new().filename("{tiny:g}-{tiny}")), "tiny=1.5e-05-tiny=1.5e-05.ckpt");
    assert_eq!(name(new().filename("{epoch}_{epoch_test:.0f}")), "epoch=3_epoch_test=7.ckpt");
    assert_eq!(name(new().filename("{{x}}-{step}")), "{x}-step=64.ckpt", "doubled braces are literal");
    // A template that already says `name=` does not get it twice (Lightning would write `epoch=epoch=3`).
    assert_eq!(name(new().filename("epoch={epoch}-val_loss={val_loss:.3f}")), "epoch=3-val_loss=0.123.ckpt");
    assert_eq!(name(new().filename("epoch={epoch}-{val_loss:.3f}")), "epoch=3-val_loss=0.123.ckpt");
    assert_eq!(name(new().filename("{epoch:02d}-{val_loss:.3f}").auto_insert_metric_name(false)), "03-0.123.ckpt");
    assert_eq!(name(new().filename("e{epoch}-loss{val_loss:.2f}").auto_insert_metric_name(false)), "e3-loss0.12.ckpt");
    assert_eq!(new().format_checkpoint_name(0, 0, &metrics).unwrap(), Path::new("/ckpt/epoch=0-step=0.ckpt"));

    let error =
        |checkpoint: ModelCheckpoint| checkpoint.format_checkpoint_name(3, 64, &metrics).unwrap_err().to_string();
    let message = error(new().filename("{epoch}-{val_los:.2f}"));
    assert!(message.contains("`val_los`") && message.contains("[epoch_test, tiny, val_acc, val_loss]"), "{message}");
    let message = error(new().filename("{val_loss:.2q}"));
    assert!(message.contains("format type `q`"), "{message}");
    let message = error(new().filename("{val_loss:d}"));
    assert!(message.contains("`val_loss`") && message.contains("integer"), "{message}");
    let message = error(new().filename("{epoch"));
    assert!(message.contains("not closed"), "{message}");
}

#[test]
fn metrics_in_file_names_during_a_run() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let ranked = ModelCheckpoint::new(a.path()).monitor("val_loss").save_top_k(-1).filename("{epoch}-{val_loss:.2f}");
    // A second checkpoint callback in the same Trainer, with its own template and no monitor.
    let every = ModelCheckpoint::new(b.path())
        .save_top_k(-1)
        .filename("run-{epoch:02d}-acc{val_acc:.3f}")
        .auto_insert_metric_name(false);
    let mut module = Scripted::new(&SCRIPT[..3]);
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .accelerator(Accelerator::Cpu)
        .callback(ranked)
        .callback(every)
        .fit(&mut module, train_loader(), val_loader())
        .unwrap();
    assert_eq!(
        files(a.path()),
        names(["epoch=0-val_loss=0.50.ckpt", "epoch=1-val_loss=0.25.ckpt", "epoch=2-val_loss=0.38.ckpt"])
    );
    assert_eq!(files(b.path()), names(["run-00-acc0.500.ckpt", "run-01-acc0.750.ckpt", "run-02-acc0.625.ckpt"]));
}

#[test]
fn save_top_2_by_val_loss_keeps_exactly_the_two_best() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint =
        ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(2).filename("{epoch}-{val_loss:.3f}");
    let handle = checkpoint.handle();
    fit(&SCRIPT, checkpoint);

    let best = dir.path().join("epoch=3-val_loss=0.125.ckpt");
    let second = dir.path().join("epoch=1-val_loss=0.250.ckpt");
    assert_eq!(files(dir.path()), names(["epoch=1-val_loss=0.250.ckpt", "epoch=3-val_loss=0.125.ckpt"]));
    assert_eq!(handle.best_model_path(), Some(best.clone()));
    assert_eq!(handle.best_model_score(), Some(0.125));
    assert_eq!(handle.best_k_models(), BTreeMap::from([(best.clone(), 0.125), (second.clone(), 0.25)]));
    assert_eq!(handle.last_model_path(), None, "save_last is off");
    assert_eq!(handle.current_score(), Some(0.125), "the last score that entered the top 2");
    // Each kept file is the checkpoint of its epoch.
    let saved = Checkpoint::read(&best).unwrap();
    assert_eq!((saved.epoch(), saved.global_step()), (3, 4 * BATCHES));
    assert_eq!(Checkpoint::read(&second).unwrap().epoch(), 1);
}

#[test]
fn save_top_k_minus_one_keeps_every_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(-1);
    let handle = checkpoint.handle();
    fit(&SCRIPT, checkpoint);
    let expected: Vec<String> = (0..5).map(|e| format!("epoch={e}-step={}.ckpt", (e + 1) * BATCHES)).collect();
    assert_eq!(files(dir.path()), expected.iter().cloned().collect());
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=3-step=16.ckpt")));
    assert_eq!(by_name(handle.best_k_models()), expected.into_iter().zip(SCRIPT).collect());

    // Without a monitor, -1 keeps every checkpoint too, and "best" is the latest.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).save_top_k(-1);
    let handle = checkpoint.handle();
    fit(&SCRIPT[..3], checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=0-step=4.ckpt", "epoch=1-step=8.ckpt", "epoch=2-step=12.ckpt"]));
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=2-step=12.ckpt")));
    assert_eq!((handle.best_model_score(), handle.best_k_models().len()), (None, 0), "no monitor, no scores");
}

#[test]
fn the_default_keeps_only_the_latest_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path());
    let handle = checkpoint.handle();
    fit(&SCRIPT[..3], checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=2-step=12.ckpt"]));
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=2-step=12.ckpt")));
}

#[test]
fn save_top_k_zero_saves_only_last() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(0).save_last(true);
    let handle = checkpoint.handle();
    let (module, _) = fit(&SCRIPT[..3], checkpoint);
    assert_eq!(files(dir.path()), names(["last.ckpt"]));
    let last = dir.path().join("last.ckpt");
    assert_eq!(handle.last_model_path(), Some(last.clone()));
    assert_eq!((handle.best_model_path(), handle.best_model_score()), (None, None));
    let saved = Checkpoint::read(&last).unwrap();
    assert_eq!((saved.epoch(), saved.global_step()), (2, 3 * BATCHES), "written at every epoch end");
    let loaded = Scripted::new(&[]).load_from_checkpoint(&last).unwrap();
    assert!(same_weights(&loaded.vs, &module.vs));

    // save_top_k(0) without save_last writes nothing at all.
    let dir = tempfile::tempdir().unwrap();
    fit(&SCRIPT[..2], ModelCheckpoint::new(dir.path()).save_top_k(0));
    assert_eq!(files(dir.path()), BTreeSet::new());
}

#[test]
fn save_last_with_top_k_writes_both() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(1).save_last(true);
    let handle = checkpoint.handle();
    fit(&SCRIPT, checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=3-step=16.ckpt", "last.ckpt"]));
    assert_eq!(Checkpoint::read(dir.path().join("last.ckpt")).unwrap().epoch(), 4);
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=3-step=16.ckpt")));
}

#[test]
fn every_n_train_steps_saves_at_those_steps() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).every_n_train_steps(3).save_top_k(-1).save_last(true);
    let handle = checkpoint.handle();
    fit(&SCRIPT[..3], checkpoint);
    // Steps 1-4 are epoch 0, 5-8 epoch 1, 9-12 epoch 2.
    let expected = [("epoch=0-step=3.ckpt", 0, 3), ("epoch=1-step=6.ckpt", 1, 6), ("epoch=2-step=9.ckpt", 2, 9)];
    let mut all: BTreeSet<String> = expected.iter().map(|(name, _, _)| name.to_string()).collect();
    all.insert("epoch=2-step=12.ckpt".into());
    all.insert("last.ckpt".into());
    assert_eq!(files(dir.path()), all);
    for (name, epoch, step) in expected {
        let saved = Checkpoint::read(dir.path().join(name)).unwrap();
        assert_eq!((saved.epoch(), saved.global_step()), (epoch, step), "{name}");
    }
    // The save at step 12 (the last batch) makes the epoch end skip a second save at the same step.
    assert_eq!(Checkpoint::read(dir.path().join("last.ckpt")).unwrap().global_step(), 12);
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=2-step=12.ckpt")));

    // The default save_top_k(1) without a monitor keeps the latest one only.
    let dir = tempfile::tempdir().unwrap();
    fit(&SCRIPT[..2], ModelCheckpoint::new(dir.path()).every_n_train_steps(3));
    assert_eq!(files(dir.path()), names(["epoch=1-step=6.ckpt"]));
}

#[test]
fn accumulated_batches_save_once_per_optimizer_step() {
    // Two batches per optimizer step: each global step is seen at two batch ends (and step 0 at the first,
    // before any step was taken), but saved once.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).every_n_train_steps(1).save_top_k(-1);
    let mut module = Scripted::new(&SCRIPT[..2]);
    let mut t = trainer(2, checkpoint).accumulate_grad_batches(2);
    t.fit(&mut module, train_loader(), val_loader()).unwrap();
    assert_eq!(t.global_step(), BATCHES);
    assert_eq!(
        files(dir.path()),
        names(["epoch=0-step=1.ckpt", "epoch=0-step=2.ckpt", "epoch=1-step=3.ckpt", "epoch=1-step=4.ckpt"])
    );
}

#[test]
fn every_n_epochs_saves_every_nth_epoch_and_last_at_each() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).every_n_epochs(2).save_top_k(-1).save_last(true);
    fit(&SCRIPT, checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt", "last.ckpt"]));
    assert_eq!(Checkpoint::read(dir.path().join("last.ckpt")).unwrap().epoch(), 4);
}

#[test]
fn train_time_interval_saves_when_the_interval_has_passed() {
    // A nanosecond passes between any two batches: a checkpoint at every step.
    let dir = tempfile::tempdir().unwrap();
    fit(&SCRIPT[..2], ModelCheckpoint::new(dir.path()).train_time_interval(Duration::from_nanos(1)).save_top_k(-1));
    let expected: BTreeSet<String> =
        (1..=2 * BATCHES).map(|step| format!("epoch={}-step={step}.ckpt", (step - 1) / BATCHES)).collect();
    assert_eq!(files(dir.path()), expected);

    // An hour never passes here: only last.ckpt, at the epoch ends.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint =
        ModelCheckpoint::new(dir.path()).train_time_interval(Duration::from_secs(3600)).save_top_k(-1).save_last(true);
    fit(&SCRIPT[..2], checkpoint);
    assert_eq!(files(dir.path()), names(["last.ckpt"]));
}

#[test]
fn step_saves_before_the_first_validation_wait_for_the_monitored_metric() {
    // Validation runs after the epoch's last batch: steps 2 and 4 come before any `val_loss` exists, so they
    // are skipped (with a warning, as in Lightning); from epoch 1 on, epoch 0's value ranks the checkpoints.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").every_n_train_steps(2).save_top_k(-1);
    let handle = checkpoint.handle();
    fit(&SCRIPT[..3], checkpoint);
    assert_eq!(
        files(dir.path()),
        names(["epoch=1-step=6.ckpt", "epoch=1-step=8.ckpt", "epoch=2-step=10.ckpt", "epoch=2-step=12.ckpt"])
    );
    let scores = by_name(handle.best_k_models());
    assert_eq!(scores["epoch=1-step=6.ckpt"], SCRIPT[0]);
    assert_eq!(scores["epoch=2-step=12.ckpt"], SCRIPT[1]);
}

#[test]
fn monitoring_an_unlogged_metric_is_an_error_listing_the_logged_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut module = Scripted::new(&SCRIPT);
    let mut t = trainer(5, ModelCheckpoint::new(dir.path()).monitor("val_los"));
    let error = t.fit(&mut module, train_loader(), val_loader()).unwrap_err().to_string();
    // The module's log calls all name their metric literally: `fit` says so before the first step.
    assert!(error.contains("ModelCheckpoint monitors `val_los`, but nothing logs it"), "{error}");
    assert!(error.contains(r#"["real_val_loss", "train_loss", "val_acc", "val_loss"]"#), "{error}");
    assert!(error.contains("did you mean `val_loss`?"), "{error}");
    assert_eq!((t.current_epoch(), t.global_step()), (0, 0), "before the first step");
    assert_eq!(files(dir.path()), BTreeSet::new());

    // Without validation, a step-based schedule cannot wait for it: the first epoch end says so.
    let dir = tempfile::tempdir().unwrap();
    let mut module = Scripted::new(&SCRIPT);
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").every_n_train_steps(1);
    let mut t = trainer(5, checkpoint).limit_val_batches(Limit::Batches(0));
    let error = t.fit(&mut module, train_loader(), None).unwrap_err().to_string();
    assert!(error.contains("`val_loss`") && error.contains("[train_loss]"), "{error}");
    assert_eq!((t.current_epoch(), t.global_step()), (0, BATCHES));

    // A template naming a metric that is never logged.
    let dir = tempfile::tempdir().unwrap();
    let mut module = Scripted::new(&SCRIPT);
    let mut t = trainer(5, ModelCheckpoint::new(dir.path()).filename("{epoch}-{val_accuracy:.2f}"));
    let error = t.fit(&mut module, train_loader(), val_loader()).unwrap_err().to_string();
    assert!(error.contains("\"{epoch}-{val_accuracy:.2f}\" uses `val_accuracy`"), "{error}");
    assert!(error.contains("[real_val_loss, train_loss, val_acc, val_loss]"), "{error}");
}

#[test]
fn mode_max_keeps_the_highest() {
    let dir = tempfile::tempdir().unwrap();
    // `MonitorMode::Max`; parsed from Lightning's string here, which also tests `FromStr`.
    let checkpoint = ModelCheckpoint::new(dir.path())
        .monitor("val_acc")
        .mode(lightning::MonitorMode::Max)
        .save_top_k(2)
        .filename("{epoch}-{val_acc:.3f}");
    let handle = checkpoint.handle();
    fit(&SCRIPT, checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=1-val_acc=0.750.ckpt", "epoch=3-val_acc=0.875.ckpt"]));
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=3-val_acc=0.875.ckpt")));
    assert_eq!(handle.best_model_score(), Some(0.875));
}

#[test]
fn nan_and_infinite_scores_never_beat_a_finite_one() {
    // top 1: NaN and -inf (which `<` would call the best loss) never replace the 0.5 checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss");
    let handle = checkpoint.handle();
    fit(&[0.5, f64::NAN, f64::NEG_INFINITY, 0.75], checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=0-step=4.ckpt"]));
    assert_eq!(handle.best_model_score(), Some(0.5));

    // A free slot still takes a NaN checkpoint (as in Lightning), ranked worst: the next finite score evicts it.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(2);
    let handle = checkpoint.handle();
    fit(&[f64::NAN, 0.5, 0.75, 0.25], checkpoint);
    assert_eq!(files(dir.path()), names(["epoch=1-step=8.ckpt", "epoch=3-step=16.ckpt"]));
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=3-step=16.ckpt")));
}

#[test]
fn colliding_names_get_a_version_suffix() {
    let dir = tempfile::tempdir().unwrap();
    // A file from elsewhere with the first name: kept as it is.
    std::fs::write(dir.path().join("val_loss=0.5.ckpt"), b"not ours").unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(-1).filename("{val_loss:.1f}");
    fit(&[0.5, 0.5, 0.5], checkpoint);
    assert_eq!(
        files(dir.path()),
        names(["val_loss=0.5.ckpt", "val_loss=0.5-v1.ckpt", "val_loss=0.5-v2.ckpt", "val_loss=0.5-v3.ckpt"])
    );
    assert_eq!(std::fs::read(dir.path().join("val_loss=0.5.ckpt")).unwrap(), b"not ours");

    // When the new checkpoint replaces the one that falls out of the top k, it may take its name.
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(1).filename("best");
    let handle = checkpoint.handle();
    fit(&[0.5, 0.25], checkpoint);
    assert_eq!(files(dir.path()), names(["best.ckpt"]));
    assert_eq!(Checkpoint::read(dir.path().join("best.ckpt")).unwrap().epoch(), 1);
    assert_eq!(handle.best_model_score(), Some(0.25));

    // A template that renders as `last` does not collide with `save_last`'s file.
    let dir = tempfile::tempdir().unwrap();
    fit(&[0.5], ModelCheckpoint::new(dir.path()).filename("last").save_last(true));
    assert_eq!(files(dir.path()), names(["last-v1.ckpt", "last.ckpt"]));
}

#[test]
fn checkpoints_load_back_with_the_trained_weights() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(-1);
    let state_key = lightning::Callback::state_key(&checkpoint);
    let handle = checkpoint.handle();
    let (module, _) = fit(&SCRIPT, checkpoint);
    // Lightning's state key: several checkpoint callbacks in one run each get their own state back.
    assert_eq!(
        state_key,
        "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, \
         'train_time_interval': None}"
    );

    let final_path = dir.path().join("epoch=4-step=20.ckpt");
    let saved = Checkpoint::read(&final_path).unwrap();
    assert_eq!(saved.weight_names(), ["bias", "weight"]);
    assert_eq!((saved.epoch(), saved.global_step()), (4, 5 * BATCHES));
    let loaded = Scripted::new(&[]).load_from_checkpoint(&final_path).unwrap();
    assert!(same_weights(&loaded.vs, &module.vs), "the last epoch's checkpoint holds the final weights");

    // The best checkpoint (epoch 3) holds earlier weights, and its state already lists itself.
    let best = handle.best_model_path().unwrap();
    let loaded_best = Scripted::new(&[]).load_from_checkpoint(&best).unwrap();
    assert!(!same_weights(&loaded_best.vs, &module.vs));
    let state = Checkpoint::read(&best).unwrap().callback_state(&state_key).cloned().unwrap();
    assert_eq!(state["best_model_path"], best.to_str().unwrap());
    assert_eq!(state["best_model_score"], 0.125);
    assert_eq!(state["best_k_models"].as_array().unwrap().len(), 4, "epochs 0 to 3 when epoch 3 was saved");
}

#[test]
fn resuming_keeps_the_top_k_bookkeeping() {
    // Epochs 0-2 then a resumed 3-5, against one straight run of 0-5. Top 2: after epoch 2 the run keeps
    // epochs 1 and 2; the resumed run must delete those files (written by the first run) as better ones come.
    let script = [0.5, 0.25, 0.375, 0.125, 0.625, 0.1875];
    let settings = |dir: &Path| {
        ModelCheckpoint::new(dir).monitor("val_loss").save_top_k(2).save_last(true).filename("{epoch}-{val_loss:.4f}")
    };

    let straight_dir = tempfile::tempdir().unwrap();
    let straight = settings(straight_dir.path());
    let straight_handle = straight.handle();
    fit(&script, straight);

    let dir = tempfile::tempdir().unwrap();
    let mut first = Scripted::new(&script);
    trainer(3, settings(dir.path())).fit(&mut first, train_loader(), val_loader()).unwrap();
    assert_eq!(files(dir.path()), names(["epoch=1-val_loss=0.2500.ckpt", "epoch=2-val_loss=0.3750.ckpt", "last.ckpt"]));

    let resumed = settings(dir.path());
    let handle = resumed.handle();
    let mut module = Scripted::new(&script);
    let mut trainer = trainer(6, resumed);
    trainer.fit_from(&mut module, train_loader(), val_loader(), dir.path().join("last.ckpt")).unwrap();
    assert_eq!(trainer.global_step(), 6 * BATCHES);

    let expected = names(["epoch=3-val_loss=0.1250.ckpt", "epoch=5-val_loss=0.1875.ckpt", "last.ckpt"]);
    assert_eq!(files(dir.path()), expected, "the first run's files fell out of the top 2 and were deleted");
    assert_eq!(files(straight_dir.path()), expected);
    assert_eq!(by_name(handle.best_k_models()), by_name(straight_handle.best_k_models()));
    assert_eq!(handle.best_model_path(), Some(dir.path().join("epoch=3-val_loss=0.1250.ckpt")));
    assert_eq!(handle.best_model_score(), Some(0.125));
    assert_eq!(handle.last_model_path(), Some(dir.path().join("last.ckpt")));
}

#[test]
fn state_dict_round_trips() {
    use lightning::Callback as _;

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(3).save_last(true);
    let handle = checkpoint.handle();
    let mut module = Scripted::new(&[0.5, f64::NAN, 0.25]);
    let mut trainer = trainer(3, checkpoint);
    trainer.fit(&mut module, train_loader(), val_loader()).unwrap();

    // The state is in the last checkpoint; a NaN score is kept as the worst value, not JSON's `null`.
    let key = "ModelCheckpoint{'monitor': 'val_loss', 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, \
               'train_time_interval': None}";
    let state = Checkpoint::read(dir.path().join("last.ckpt")).unwrap().callback_state(key).cloned().unwrap();
    assert_eq!(state["best_k_models"][1]["score"], "inf", "{state}");

    let mut restored = ModelCheckpoint::new(dir.path()).monitor("val_loss").save_top_k(3);
    restored.load_state_dict(state.clone()).unwrap();
    assert_eq!(restored.best_k_models(), handle.best_k_models());
    assert_eq!(restored.best_model_path(), handle.best_model_path());
    assert_eq!(restored.best_model_score(), Some(0.25));
    assert_eq!(restored.last_model_path(), Some(dir.path().join("last.ckpt")));
    assert_eq!(restored.state_dict(), Some(state.clone()));

    // Another folder: only best_model_path comes back, as in Lightning.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut moved = ModelCheckpoint::new(elsewhere.path()).monitor("val_loss").save_top_k(3);
    moved.load_state_dict(state.clone()).unwrap();
    assert_eq!(moved.best_model_path(), handle.best_model_path());
    assert_eq!((moved.best_k_models().len(), moved.best_model_score(), moved.last_model_path()), (0, None, None));

    // A state for another metric, or ranked the other way, is refused.
    let mut other = ModelCheckpoint::new(dir.path()).monitor("val_acc");
    let error = other.load_state_dict(state.clone()).unwrap_err().to_string();
    assert!(error.contains("val_loss") && error.contains("val_acc"), "{error}");
    let mut other = ModelCheckpoint::new(dir.path()).monitor("val_loss").mode(lightning::MonitorMode::Max);
    let error = other.load_state_dict(state).unwrap_err().to_string();
    assert!(error.contains("mode min") && error.contains("is max"), "{error}");
}

#[test]
fn misconfigurations_fail_in_setup_naming_the_problem() {
    let cases: Vec<(ModelCheckpoint, &str)> = vec![
        (ModelCheckpoint::new("unused").save_top_k(2), "save_top_k=2, monitor=None"),
        (ModelCheckpoint::new("unused").save_top_k(-2), "invalid save_top_k=-2"),
        (ModelCheckpoint::new("unused").every_n_epochs(1).every_n_train_steps(10), "mutually exclusive"),
        (
            ModelCheckpoint::new("unused").every_n_train_steps(10).train_time_interval(Duration::from_secs(60)),
            "mutually exclusive",
        ),
        (ModelCheckpoint::new("unused").train_time_interval(Duration::ZERO), "longer than zero"),
        (ModelCheckpoint::new("unused").filename("{epoch}-{val_loss:.2x}"), "format type `x`"),
        (ModelCheckpoint::new("unused").filename("epoch}"), "closes no field"),
        (ModelCheckpoint::new("unused").monitor(""), "name is empty"),
    ];
    for (checkpoint, expected) in cases {
        let mut module = Scripted::new(&SCRIPT);
        let mut trainer = trainer(1, checkpoint);
        let error = trainer.fit(&mut module, train_loader(), val_loader()).unwrap_err().to_string();
        assert!(error.contains("in `setup`") && error.contains(expected), "expected {expected:?} in: {error}");
        assert_eq!(trainer.global_step(), 0);
    }
    assert!(!Path::new("unused").exists(), "no folder is created for a run that never saves");
    // Lightning's mode strings parse; anything else is refused by name.
    let parsed = "maximum".parse();
    if let Ok(mode) = &parsed {
        let _ = ModelCheckpoint::new("unused").mode(*mode);
    }
    assert_eq!(parsed.unwrap_err(), "`mode` can be min or max, but got \"maximum\"");
}

#[test]
fn ckpt_path_best_and_last_pick_the_model_checkpoints_files() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = || ModelCheckpoint::new(dir.path()).monitor("val_loss").save_last(true);
    let first = checkpoint();
    let handle = first.handle();
    // val_loss 0.5, 0.125, 0.375: the best is epoch 1's, the last epoch 2's.
    let (mut module, mut fitted) = fit(&[0.5, 0.125, 0.375], first);
    let best = handle.best_model_path().unwrap();
    assert_eq!(file_name(&best), "epoch=1-step=8.ckpt");
    let mut loaded = Scripted::new(&[]).load_from_checkpoint(&best).unwrap();
    let expected = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .validate(&mut loaded, val_loader())
        .unwrap();
    let from_best = fitted.validate_from(&mut module, val_loader(), "best").unwrap();
    assert_eq!(
        from_best["real_val_loss"], expected["real_val_loss"],
        "validate(ckpt_path=\"best\") used other weights"
    );
    assert!(same_weights(&module.vs, &loaded.vs));
    let from_last = fitted.validate_from(&mut module, val_loader(), "last").unwrap();
    assert_ne!(from_last["real_val_loss"], from_best["real_val_loss"]);

    // A new Trainer (a re-run of a killed job) continues from the folder's last checkpoint: one more epoch.
    let mut resumed = Scripted::new(&[0.5, 0.125, 0.375, 0.25]);
    let mut again = trainer(4, checkpoint());
    again.fit_from(&mut resumed, train_loader(), val_loader(), "last").unwrap();
    assert_eq!((again.global_step(), again.current_epoch()), (4 * BATCHES, 4));
}

#[test]
fn ckpt_path_last_with_no_checkpoint_starts_afresh_and_best_without_a_model_checkpoint_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut module = Scripted::new(&[0.5]);
    let mut fresh = trainer(1, ModelCheckpoint::new(dir.path().join("none-yet")).save_last(true));
    fresh.fit_from(&mut module, train_loader(), val_loader(), "last").unwrap();
    assert_eq!(fresh.global_step(), BATCHES);
    let error = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .validate_from(&mut module, val_loader(), "best")
        .unwrap_err();
    assert!(error.to_string().contains("ModelCheckpoint"), "{error}");
}
