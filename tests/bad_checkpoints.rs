//! A checkpoint that cannot be used is an `Err` naming the file and what is wrong with it, found before any hook
//! runs when the file itself is bad; a checkpoint that cannot be written leaves the previous one whole.

mod common;

use std::any::Any;
use std::path::{Path, PathBuf};

use common::checkpointing::{
    assert_same_weights, edit_metadata, join_safetensors, partial_files, split_safetensors, train_loader, val_loader,
    weights, Net, Opt, Saver, MLP,
};
use common::recorder::{Log, Recorder, RecordingCallback};
use lightning::prelude::*;
use lightning::{Accelerator, AnyModule, CallbackResult, LoadFromCheckpoint, Trainer, FORMAT_VERSION};

fn cpu() -> Trainer {
    Trainer::new().logger(false).enable_checkpointing(false).accelerator(Accelerator::Cpu)
}

/// A real checkpoint of the MLP (Adam, a step scheduler), written at the end of its first epoch.
fn good_checkpoint(dir: &Path) -> PathBuf {
    let path = dir.join("good.ckpt");
    let mut module = Net::mlp(0.0, Opt::AdamStepLr);
    cpu()
        .max_epochs(1)
        .seed(1)
        .callback(Saver::at_epoch_end(0, &path))
        .fit(&mut module, train_loader(1), val_loader())
        .unwrap();
    path
}

fn message<T>(result: lightning::Result<T>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(error) => error.to_string(),
    }
}

/// `Checkpoint::read`, `fit_from` and `load_from_checkpoint` all refuse `path`, saying `expected`; `fit_from`
/// does so before any hook (the module's or a callback's) runs.
fn refused_everywhere(path: &Path, expected: &str) {
    let prefix = format!("checkpoint {}: ", path.display());
    let error = message(Checkpoint::read(path));
    assert!(error.starts_with(&prefix) && error.contains(expected), "read: {error}\nexpected: {expected}");

    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    let before = module.linear.ws.copy();
    let mut trainer = cpu().max_epochs(1).callback(RecordingCallback(log.clone()));
    let error = message(trainer.fit_from(&mut module, None, None, path));
    assert!(error.starts_with(&prefix) && error.contains(expected), "fit_from: {error}");
    assert_eq!(*log.lock().unwrap(), Vec::<String>::new(), "no hook runs before the file is checked");
    assert!(module.linear.ws.equal(&before));

    let error = message(Net::mlp(0.0, Opt::AdamStepLr).load_from_checkpoint(path));
    assert!(error.starts_with(&prefix) && error.contains(expected), "load_from_checkpoint: {error}");
}

/// Bytes from a small deterministic generator.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

#[test]
fn broken_and_foreign_files_are_named_errors_before_any_hook() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let corrupt = "is not a checkpoint, or is truncated or corrupt";
    let write = |name: &str, contents: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    };

    refused_everywhere(&write("half.ckpt", &bytes[..bytes.len() / 2]), corrupt);
    refused_everywhere(&write("one-byte-short.ckpt", &bytes[..bytes.len() - 1]), corrupt);
    refused_everywhere(&write("cut-in-header.ckpt", &bytes[..100]), corrupt);
    refused_everywhere(&write("length-only.ckpt", &bytes[..8]), corrupt);
    refused_everywhere(&write("random.ckpt", &noise(4096, 7)), corrupt);
    let mut plausible = 64u64.to_le_bytes().to_vec();
    plausible.extend(noise(4096, 8));
    refused_everywhere(&write("random-after-length.ckpt", &plausible), corrupt);
    refused_everywhere(&write("empty.ckpt", &[]), corrupt);

    // A safetensors file, but not ours: no metadata at all, or someone else's.
    let foreign = dir.path().join("foreign.safetensors");
    let w = Tensor::ones([32, 8], (Kind::Float, Device::Cpu));
    Tensor::write_safetensors(&[("model.l1.weight", &w)], &foreign).unwrap();
    refused_everywhere(
        &foreign,
        "is a safetensors file, but not a checkpoint of Lightning for Rust (no `lightning-rs` metadata)",
    );
    let (mut header, data) = split_safetensors(&bytes);
    header["__metadata__"] = serde_json::json!({ "format": "pt" });
    let others = write("others.ckpt", &join_safetensors(&header, &data));
    refused_everywhere(&others, "no `lightning-rs` metadata");

    // Ours, with metadata that is not JSON, or lacks a part.
    header["__metadata__"] = serde_json::json!({ "lightning-rs": "{\"format_version\": 1, " });
    refused_everywhere(&write("bad-json.ckpt", &join_safetensors(&header, &data)), "has corrupt metadata");
    let no_progress = write("no-progress.ckpt", &bytes);
    edit_metadata(&no_progress, |meta| {
        meta.as_object_mut().unwrap().remove("progress");
    });
    refused_everywhere(&no_progress, "has corrupt metadata: missing field `progress`");

    refused_everywhere(&dir.path().join("not-there.ckpt"), "no such file");
    refused_everywhere(dir.path(), "cannot be read");

    assert_eq!(std::fs::read(&good).unwrap(), bytes, "the good checkpoint is untouched");
    Checkpoint::read(&good).unwrap();
}

#[test]
fn a_newer_format_version_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    let newer = dir.path().join("newer.ckpt");
    std::fs::copy(&good, &newer).unwrap();
    edit_metadata(&newer, |meta| meta["format_version"] = serde_json::json!(FORMAT_VERSION + 1));
    let expected = format!(
        "was written in checkpoint format {}, newer than this build reads (up to {FORMAT_VERSION}): update lightning",
        FORMAT_VERSION + 1
    );
    refused_everywhere(&newer, &expected);

    // The control: the same edit back to the current version gives a file that loads again, so that the
    // refusal above is the version's doing, not the editing's.
    edit_metadata(&newer, |meta| meta["format_version"] = serde_json::json!(FORMAT_VERSION));
    let a = Net::mlp(1.0, Opt::AdamStepLr).load_from_checkpoint(&newer).unwrap();
    let b = Net::mlp(2.0, Opt::AdamStepLr).load_from_checkpoint(&good).unwrap();
    assert_same_weights(&weights(&a.vs), &weights(&b.vs), "re-edited vs original");
}

/// A checkpoint that does not fit the model: refused by `load_from_checkpoint` and by `fit_from`, which runs
/// the opening hooks and `on_load_checkpoint` but never `configure_optimizers` or a step, changes no weight, and
/// writes nothing.
fn refused_by_model(good: &Path, layers: &[(&str, i64, i64)], to_double: bool, expected: &[&str]) {
    let build = || {
        let mut net = Net::new(layers, 4.0, Opt::AdamStepLr);
        if to_double {
            net.vs.double();
        }
        net
    };
    let error = message(build().load_from_checkpoint(good));
    assert!(error.starts_with(&format!("checkpoint {}: does not fit this model: ", good.display())), "{error}");
    for part in expected {
        assert!(error.contains(part), "load_from_checkpoint: {error}\nexpected: {part}");
    }

    let bytes = std::fs::read(good).unwrap();
    let mut module = build();
    let before = weights(&module.vs);
    let mut trainer = cpu().max_epochs(2).callback(Saver::at_step(1, good));
    let error = message(trainer.fit_from(&mut module, train_loader(1), val_loader(), good));
    for part in expected {
        assert!(error.contains(part), "fit_from: {error}\nexpected: {part}");
    }
    assert_eq!(module.steps_run, 0);
    assert_same_weights(&weights(&module.vs), &before, "a refused checkpoint changes no weight");
    assert_eq!(std::fs::read(good).unwrap(), bytes, "the checkpoint is untouched");
}

#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    refused_by_model(
        &good,
        &[MLP[0], MLP[1], ("l3", 1, 1)],
        false,
        &["missing keys (in the model, not in the checkpoint): l3.bias, l3.weight"],
    );
    refused_by_model(
        &good,
        &[MLP[0]],
        false,
        &["unexpected keys (in the checkpoint, not in the model): l2.bias, l2.weight"],
    );
    // l1 fits and l2 does not: l1 is not loaded either.
    refused_by_model(
        &good,
        &[("l1", 8, 32), ("l2", 32, 2)],
        false,
        &[
            "shape mismatch for `l2.bias`: [1] in the checkpoint, [2] in the model",
            "shape mismatch for `l2.weight`: [1, 32] in the checkpoint, [2, 32] in the model",
        ],
    );
    refused_by_model(&good, MLP, true, &["dtype mismatch for `l1.bias`: Float in the checkpoint, Double in the model"]);
    refused_by_model(
        &good,
        &[("l1", 8, 16), ("l9", 16, 1)],
        false,
        &[
            "missing keys (in the model, not in the checkpoint): l9.bias, l9.weight",
            "unexpected keys",
            "; shape mismatch",
        ],
    );

    // The hooks a refused resume runs: the opening ones and `on_load_checkpoint`, then the failure's.
    let log = Log::default();
    let mut module = Recorder::new(log.clone());
    let error =
        message(cpu().max_epochs(1).callback(RecordingCallback(log.clone())).fit_from(&mut module, None, None, &good));
    assert!(error.contains("missing keys (in the model, not in the checkpoint): bias, weight"), "{error}");
    let calls = log.lock().unwrap().clone();
    assert_eq!(calls.iter().filter(|c| c.as_str() == "on_load_checkpoint").count(), 1, "{calls:?}");
    for never in ["configure_optimizers", "Callback.on_load_checkpoint", "on_fit_start", "training_step"] {
        assert!(!calls.iter().any(|c| c == never), "`{never}` ran: {calls:?}");
    }
    assert_eq!(calls[calls.len() - 3..], ["Callback.on_exception", "Callback.teardown", "teardown"]);
}

#[test]
fn an_optimizer_or_schedulers_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let adam = good_checkpoint(dir.path());
    let mut module = Net::mlp(0.0, Opt::SgdMomentumCosine);
    let error = message(cpu().max_epochs(2).fit_from(&mut module, train_loader(1), val_loader(), &adam));
    assert!(error.contains("optimizer 0 is Adam") && error.contains("in the checkpoint but Sgd"), "{error}");
    assert_eq!(module.steps_run, 0);

    let sgd = dir.path().join("sgd.ckpt");
    let mut module = Net::mlp(0.0, Opt::SgdMomentumCosine);
    cpu().max_steps(3).callback(Saver::at_step(3, &sgd)).fit(&mut module, train_loader(1), val_loader()).unwrap();
    let mut module = Net::mlp(0.0, Opt::SgdOnly);
    let error = message(cpu().max_epochs(2).fit_from(&mut module, train_loader(1), val_loader(), &sgd));
    assert!(error.contains("holds 1 LR scheduler(s), but `configure_optimizers` returned 0"), "{error}");
    assert_eq!(module.steps_run, 0);
}

/// Asks for one checkpoint at the end of the batch reaching `step`, replacing `old` once it is written.
struct SaveReplacing {
    step: usize,
    path: PathBuf,
    old: Vec<PathBuf>,
}

impl Callback for SaveReplacing {
    fn on_train_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        _outputs: &StepOutput,
        _batch: &dyn Any,
        _batch_idx: usize,
    ) -> CallbackResult {
        if ctx.global_step() == self.step {
            ctx.save_checkpoint_replacing(self.path.clone(), self.old.clone());
        }
        Ok(())
    }
}

/// A model with a variable checkpoints cannot store (complex numbers).
struct Complex {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module]
impl Complex {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.linear.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }
}

#[test]
fn a_failed_write_leaves_the_previous_checkpoint_whole() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_checkpoint(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    let intact = || {
        assert_eq!(std::fs::read(&good).unwrap(), bytes, "the previous checkpoint is untouched");
        assert_eq!(partial_files(dir.path()), Vec::<String>::new(), "no temporary file is left behind");
    };
    let fit_saving_with = |saver: SaveReplacing, background: bool| {
        let mut module = Net::mlp(0.0, Opt::AdamStepLr);
        let mut trainer = cpu().max_epochs(1).callback(saver).async_checkpointing(background);
        let result = trainer.fit(&mut module, train_loader(1), val_loader());
        (message(result), module.steps_run)
    };
    let fit_saving = |saver: SaveReplacing| fit_saving_with(saver, true);

    // A destination whose parent is a file; the old checkpoint it would replace stays. Written in the
    // background, the failure comes out when the stage ends (no later save here); written synchronously, the
    // run stops at the failed save.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let target = file.join("last.ckpt");
    for background in [true, false] {
        let saver = SaveReplacing { step: 2, path: target.clone(), old: vec![good.clone()] };
        let (error, steps) = fit_saving_with(saver, background);
        assert!(error.starts_with(&format!("checkpoint {}: cannot be written: ", target.display())), "{error}");
        if background {
            assert!(steps > 2, "the background write does not hold the run up: {steps} steps");
        } else {
            assert_eq!(steps, 2, "the run stops at the failed save");
        }
        intact();
    }

    // A destination that is a folder: the temporary file is written, the rename fails, and it is removed.
    let folder = dir.path().join("folder.ckpt");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("inside"), b"x").unwrap();
    let (error, _) = fit_saving(SaveReplacing { step: 1, path: folder.clone(), old: vec![good.clone()] });
    assert!(error.starts_with(&format!("checkpoint {}: cannot be written: ", folder.display())), "{error}");
    intact();

    // The same destination, by a model with a tensor checkpoints cannot store: nothing is written at all.
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root() / "l1", 8, 1, Default::default());
    let _ = vs.root().add("phase", Tensor::zeros([2], (Kind::ComplexFloat, Device::Cpu)), false);
    let mut module = Complex { vs, linear };
    let saver = SaveReplacing { step: 1, path: good.clone(), old: Vec::new() };
    let error = message(cpu().max_epochs(1).callback(saver).fit(&mut module, train_loader(1), None));
    assert!(
        error.contains(&format!("checkpoint {}: tensor `model.phase` has dtype ComplexFloat", good.display())),
        "{error}"
    );
    intact();

    // A read-only folder (where permissions bind: not for root).
    use std::os::unix::fs::PermissionsExt;
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let inside = locked.join("last.ckpt");
    std::fs::copy(&good, &inside).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(locked.join("probe"), b"").is_ok() {
        eprintln!("permissions do not stop this user's writes (root?): the read-only folder case is skipped");
    } else {
        let (error, _) = fit_saving(SaveReplacing { step: 1, path: inside.clone(), old: Vec::new() });
        assert!(error.contains("cannot be written"), "{error}");
        assert_eq!(std::fs::read(&inside).unwrap(), bytes);
        assert_eq!(partial_files(&locked), Vec::<String>::new());
    }
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    Checkpoint::read(&good).unwrap();
}
