//! Lightning's defaults on real runs: a Trainer given no logger writes `lightning_logs/version_N/` under
//! `default_root_dir` (the working directory unless set) with TensorBoard events, `metrics.csv` and
//! `hparams.json`, and keeps a checkpoint of the last epoch in `version_N/checkpoints/`; `logger(false)` and
//! `enable_checkpointing(false)` turn them off; a `ModelCheckpoint::in_log_dir()` of one's own takes the
//! default one's place.

use std::path::{Path, PathBuf};
use std::process::Command;

use lightning::loggers::CsvLogger;
use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, ModelCheckpoint, Trainer};
use serde::Serialize;

mod common;
use common::python::tensorboard_python;

#[derive(Serialize)]
struct Hyper {
    lr: f64,
}

struct Line {
    vs: nn::VarStore,
    linear: nn::Linear,
    hyper: Hyper,
}

impl Line {
    fn new() -> Self {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 2, 1, Default::default());
        Line { vs, linear, hyper: Hyper { lr: 0.1 } }
    }
}

#[lightning_module(hparams = hyper)]
impl Line {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> Tensor {
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("val_loss", self.linear.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn test_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("test_loss", self.linear.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, self.hyper.lr)
    }
}

fn data() -> Loader<(Tensor, Tensor)> {
    tch::manual_seed(1);
    let x = Tensor::rand([32, 2], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist(1, true, Kind::Float);
    DataLoader::new((x, y)).batch_size(8).build().unwrap()
}

fn quiet(trainer: Trainer) -> Trainer {
    trainer.max_epochs(3).accelerator(Accelerator::Cpu).log_every_n_steps(2).enable_progress_bar(false)
}

/// The folder's entries, sorted, `events.out.tfevents.*` shortened to `events`.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .map(|name| if name.starts_with("events.out.tfevents.") { "events".into() } else { name })
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

/// The scalar tags TensorBoard reads from the folder.
fn tensorboard_tags(log_dir: &Path) -> Vec<String> {
    let script = "import json, sys\nfrom tensorboard.backend.event_processing import event_accumulator as ea\n\
                  acc = ea.EventAccumulator(sys.argv[1]); acc.Reload()\nprint(json.dumps(sorted(acc.Tags()['scalars'])))";
    let python = tensorboard_python();
    let output = Command::new(&python).arg("-c").arg(script).arg(log_dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn a_trainer_without_logger_writes_lightning_logs_and_keeps_the_last_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let mut trainer = quiet(Trainer::new()).default_root_dir(tmp.path());
    assert_eq!(trainer.log_dir(), None, "made when a stage starts");
    trainer.fit(&mut Line::new(), data(), data()).unwrap();

    let version_0 = tmp.path().join("lightning_logs").join("version_0");
    assert_eq!(entries(tmp.path()), ["lightning_logs"]);
    assert_eq!(trainer.log_dir(), Some(version_0.clone()));
    assert_eq!(entries(&version_0), ["checkpoints", "events", "hparams.json", "metrics.csv"]);
    // The default ModelCheckpoint keeps one file: the last epoch's (3 epochs of 4 steps).
    assert_eq!(entries(&version_0.join("checkpoints")), ["epoch=2-step=12.ckpt"]);

    let hparams: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(version_0.join("hparams.json")).unwrap()).unwrap();
    assert_eq!(hparams, serde_json::json!({"lr": 0.1}));
    let mut csv = csv::Reader::from_path(version_0.join("metrics.csv")).unwrap();
    let header: Vec<String> = csv.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, ["step", "epoch", "train_loss", "val_loss"]);
    assert_eq!(tensorboard_tags(&version_0), ["epoch", "train_loss", "val_loss"]);

    // "best" is the default checkpoint's file; a test run logs into the same version.
    let results = trainer.test_from(&mut Line::new(), data(), "best").unwrap();
    assert!(results.contains_key("test_loss"));
    let rows = csv::Reader::from_path(version_0.join("metrics.csv")).unwrap().into_records().count();
    let test_rows = csv::Reader::from_path(version_0.join("metrics.csv"))
        .unwrap()
        .into_deserialize::<std::collections::HashMap<String, String>>()
        .filter(|row| row.as_ref().unwrap().get("test_loss").is_some_and(|v| !v.is_empty()))
        .count();
    assert!(rows > 0 && test_rows == 1, "{rows} rows, {test_rows} with test_loss");

    // A second Trainer takes the next version.
    let mut second = quiet(Trainer::new()).default_root_dir(tmp.path());
    second.fit(&mut Line::new(), data(), data()).unwrap();
    assert_eq!(second.log_dir(), Some(tmp.path().join("lightning_logs").join("version_1")));
    assert_eq!(entries(&tmp.path().join("lightning_logs")), ["version_0", "version_1"]);
}

#[test]
fn logger_false_and_enable_checkpointing_false_turn_the_defaults_off() {
    // No logger: the default checkpoint goes to default_root_dir/checkpoints.
    let tmp = tempfile::tempdir().unwrap();
    let mut trainer = quiet(Trainer::new()).default_root_dir(tmp.path()).logger(false);
    trainer.fit(&mut Line::new(), data(), data()).unwrap();
    assert_eq!(trainer.log_dir(), None);
    assert_eq!(entries(tmp.path()), ["checkpoints"]);
    assert_eq!(entries(&tmp.path().join("checkpoints")), ["epoch=2-step=12.ckpt"]);

    // Neither: nothing is written.
    let tmp = tempfile::tempdir().unwrap();
    let mut trainer = quiet(Trainer::new()).default_root_dir(tmp.path()).logger(false).enable_checkpointing(false);
    trainer.fit(&mut Line::new(), data(), data()).unwrap();
    trainer.test(&mut Line::new(), data()).unwrap();
    assert!(entries(tmp.path()).is_empty());

    // Only checkpointing off: the logs are there, no checkpoints folder.
    let tmp = tempfile::tempdir().unwrap();
    let mut trainer = quiet(Trainer::new()).default_root_dir(tmp.path()).enable_checkpointing(false);
    trainer.fit(&mut Line::new(), data(), data()).unwrap();
    let version_0 = tmp.path().join("lightning_logs").join("version_0");
    assert_eq!(entries(&version_0), ["events", "hparams.json", "metrics.csv"]);
}

#[test]
fn a_checkpoint_and_a_logger_of_ones_own_take_the_defaults_place() {
    let tmp = tempfile::tempdir().unwrap();
    let best = ModelCheckpoint::in_log_dir().monitor("val_loss").save_last(true).filename("{epoch}-{val_loss:.4f}");
    let handle = best.handle();
    let csv = CsvLogger::new(tmp.path(), "mine").unwrap();
    let mut trainer = quiet(Trainer::new()).default_root_dir(tmp.path()).logger(csv).callback(best);
    trainer.fit(&mut Line::new(), data(), data()).unwrap();

    // The given logger only (no lightning_logs), and its folder holds the given checkpoint's files only.
    let version_0 = tmp.path().join("mine").join("version_0");
    assert_eq!(entries(tmp.path()), ["mine"]);
    assert_eq!(entries(&version_0), ["checkpoints", "hparams.json", "metrics.csv"]);
    let files = entries(&version_0.join("checkpoints"));
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files.contains(&"last.ckpt".to_string()) && files.iter().any(|f| f.contains("val_loss=")), "{files:?}");
    let best_path = handle.best_model_path().unwrap();
    assert_eq!(best_path.parent().unwrap(), std::path::absolute(version_0.join("checkpoints")).unwrap());
}

/// Set in the child process `the_working_directory_is_the_default_root_dir` starts.
const CHILD: &str = "LIGHTNING_DEFAULTS_TEST_CHILD";

#[test]
fn the_working_directory_is_the_default_root_dir() {
    if std::env::var_os(CHILD).is_some() {
        // In the child, whose working directory is a scratch folder: a Trainer with nothing set.
        quiet(Trainer::new()).fit(&mut Line::new(), data(), data()).unwrap();
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let status = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "the_working_directory_is_the_default_root_dir", "--test-threads", "1"])
        .current_dir(tmp.path())
        .env(CHILD, "1")
        .status()
        .unwrap();
    assert!(status.success());
    let version_0: PathBuf = tmp.path().join("lightning_logs").join("version_0");
    assert_eq!(entries(&version_0), ["checkpoints", "events", "hparams.json", "metrics.csv"]);
    assert_eq!(entries(&version_0.join("checkpoints")), ["epoch=2-step=12.ckpt"]);
}
