//! The shipped loggers on real runs: `metrics.csv` holds what the Trainer sent, the TensorBoard event file
//! reads back with TensorBoard's own reader, versions count up, and unwritable folders are errors.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::python::tensorboard_python;
use std::sync::{Arc, Mutex};

use lightning::loggers::{CsvLogger, TensorBoardLogger};
use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Error, Logger, Trainer};
use serde::Serialize;

/// One `log_metrics` call as the Trainer made it.
type Call = (Vec<(String, f64)>, usize);

/// Keeps every call a run makes to its loggers, to compare the files with.
#[derive(Clone, Default)]
struct Recorder {
    calls: Arc<Mutex<Vec<Call>>>,
    hparams: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Logger for Recorder {
    fn log_metrics(&mut self, metrics: &[(String, f64)], step: usize) -> lightning::Result<()> {
        self.calls.lock().unwrap().push((metrics.to_vec(), step));
        Ok(())
    }

    fn log_hyperparams(&mut self, params: &serde_json::Value) -> lightning::Result<()> {
        self.hparams.lock().unwrap().push(params.clone());
        Ok(())
    }
}

#[derive(Serialize)]
struct Hyper {
    lr: f64,
    hidden: i64,
    activation: String,
    schedule: Schedule,
}

#[derive(Serialize)]
struct Schedule {
    warmup: bool,
    milestones: Vec<usize>,
}

struct Regression {
    vs: nn::VarStore,
    net: nn::Sequential,
    hyper: Hyper,
}

impl Regression {
    fn new() -> Self {
        tch::manual_seed(1);
        let hyper = Hyper {
            lr: 1e-2,
            hidden: 16,
            activation: "tanh".into(),
            schedule: Schedule { warmup: true, milestones: vec![2, 4] },
        };
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 4, hyper.hidden, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", hyper.hidden, 1, Default::default()));
        Regression { vs, net, hyper }
    }
}

#[lightning_module(hparams = hyper)]
impl Regression {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_step(true).on_epoch(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("val_loss", &loss);
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, self.hyper.lr)
    }
}

type Pairs = Loader<(Tensor, Tensor)>;

fn loaders() -> (Pairs, Pairs) {
    tch::manual_seed(7);
    let x = Tensor::rand([80, 4], (Kind::Float, Device::Cpu));
    let y = x.sum_dim_intlist(1, true, Kind::Float).sin();
    let train = DataLoader::new((x.narrow(0, 0, 64), y.narrow(0, 0, 64))).batch_size(16).build().unwrap();
    let val = DataLoader::new((x.narrow(0, 64, 16), y.narrow(0, 64, 16))).batch_size(8).build().unwrap();
    (train, val)
}

/// 3 epochs of 4 steps, step values every 2 steps, through `loggers` and a recorder; what the recorder got.
fn fit_with(loggers: Vec<Box<dyn FnOnce(Trainer) -> Trainer>>) -> Recorder {
    let recorder = Recorder::default();
    let mut trainer = Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(3)
        .accelerator(Accelerator::Cpu)
        .seed(3)
        .log_every_n_steps(2)
        .logger(recorder.clone());
    for add in loggers {
        trainer = add(trainer);
    }
    let (train, val) = loaders();
    trainer.fit(&mut Regression::new(), train, val).unwrap();
    recorder
}

fn both_loggers(save_dir: &Path) -> (CsvLogger, TensorBoardLogger) {
    let csv = CsvLogger::new(save_dir, "exp").unwrap();
    let tensorboard = TensorBoardLogger::new(save_dir, "exp").unwrap();
    (csv, tensorboard)
}

#[test]
fn a_fit_with_both_loggers_writes_what_the_trainer_sent() {
    let tmp = tempfile::tempdir().unwrap();
    let (csv, tensorboard) = both_loggers(tmp.path());
    let log_dir = tmp.path().join("exp").join("version_0");
    // Built before either wrote, both pick version 0 and share its folder.
    assert_eq!(csv.log_dir(), log_dir);
    assert_eq!(tensorboard.log_dir(), log_dir);
    let recorder = fit_with(vec![Box::new(|t| t.logger(csv)), Box::new(|t| t.logger(tensorboard))]);
    let calls = recorder.calls.lock().unwrap().clone();
    // 12 steps: values at steps 2..=12 every 2 (6 calls), and per epoch one training and one validation call.
    assert_eq!(calls.len(), 6 + 3 * 2, "{calls:?}");

    check_csv(&log_dir.join("metrics.csv"), &calls);

    let hparams = recorder.hparams.lock().unwrap().clone();
    assert_eq!(hparams.len(), 1);
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log_dir.join("hparams.json")).unwrap()).unwrap();
    assert_eq!(written, hparams[0]);

    let events: Vec<PathBuf> = std::fs::read_dir(&log_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_str().unwrap().starts_with("events.out.tfevents."))
        .collect();
    assert_eq!(events.len(), 1, "one event file in {}", log_dir.display());
    check_tensorboard(tmp.path(), &log_dir, &calls, &hparams[0]);
}

/// The header is `step`, `epoch`, then the metric names as first sent; a row per call, equal to it.
fn check_csv(path: &Path, calls: &[Call]) {
    let mut names: Vec<String> = Vec::new();
    for (metrics, _) in calls {
        for (name, _) in metrics {
            if name != "epoch" && !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    let mut expected_header = vec!["step".to_string(), "epoch".to_string()];
    expected_header.extend(names);

    let mut reader = csv::Reader::from_path(path).unwrap();
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header, expected_header);
    for name in ["train_loss_step", "train_loss_epoch", "val_loss"] {
        assert!(header.iter().any(|h| h == name), "{name} missing from {header:?}");
    }
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), calls.len(), "a row per logging call");
    for (row, (metrics, step)) in rows.iter().zip(calls) {
        assert_eq!(row[0].parse::<usize>().unwrap(), *step, "{row:?}");
        for (column, name) in header.iter().enumerate().skip(1) {
            let cell = &row[column];
            match metrics.iter().find(|(n, _)| n == name) {
                Some((_, value)) if name == "epoch" => assert_eq!(cell, format!("{value}"), "epoch in {row:?}"),
                Some((_, value)) => assert_eq!(cell.parse::<f64>().unwrap(), *value, "{name} in {row:?}"),
                None => assert_eq!(cell, "", "{name} in {row:?}"),
            }
        }
    }
}

/// What TensorBoard reads from the run's folder, as JSON: through `EventAccumulator`, the file version, every
/// scalar tag's `(step, value)` list and the hparams plugin's session start info; through the hparams
/// plugin's own HTTP routes (what its dashboard asks), the experiment and the session it lists.
const READ_EVENTS: &str = r#"
import json, sys
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata
from google.protobuf import json_format

log_dir, save_dir = sys.argv[1], sys.argv[2]
acc = event_accumulator.EventAccumulator(log_dir, size_guidance={event_accumulator.SCALARS: 0})
acc.Reload()
scalars = {tag: [[e.step, e.value] for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
content = acc.PluginTagToContent(metadata.PLUGIN_NAME)
start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
hparams = {name: json_format.MessageToDict(value) for name, value in start.hparams.items()}

from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import hparams_plugin
from tensorboard.plugins.scalar import scalars_plugin
from werkzeug import test, wrappers

multiplexer = plugin_event_multiplexer.EventMultiplexer()
multiplexer.AddRunsFromDirectory(save_dir)
multiplexer.Reload()
plugins = {}
context = base_plugin.TBContext(logdir=save_dir, multiplexer=multiplexer, plugin_name_to_instance=plugins,
                                data_provider=data_provider.MultiplexerDataProvider(multiplexer, save_dir))
plugins["scalars"] = scalars_plugin.ScalarsPlugin(context)
routes = hparams_plugin.HParamsPlugin(context).get_plugin_apps()
def ask(route, request):
    response = test.Client(routes[route], wrappers.Response).post(
        "/", data=json.dumps(request), content_type="application/json")
    assert response.status_code == 200, response.get_data()
    return json.loads(response.get_data())
experiment = ask("/experiment", {"experimentName": ""})
columns = [{"hparam": h["name"]} for h in experiment["hparamInfos"]]
columns += [{"metric": m["name"]} for m in experiment["metricInfos"]]
groups = ask("/session_groups", {"experimentName": "", "colParams": columns, "startIndex": 0, "sliceSize": 10,
    "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]})
print(json.dumps({
    "file_version": acc.file_version, "scalars": scalars, "hparams": hparams, "hparam_tags": sorted(content),
    "dashboard": {
        "hparams": sorted(h["name"] for h in experiment["hparamInfos"]),
        "metrics": sorted(m["name"]["tag"] for m in experiment["metricInfos"]),
        "sessions": [{"name": g["name"], "hparams": g["hparams"],
                      "metrics": {m["name"]["tag"]: [m["trainingStep"], m["value"]] for m in g["metricValues"]}}
                     for g in groups["sessionGroups"]],
    },
}))
"#;

fn check_tensorboard(save_dir: &Path, log_dir: &Path, calls: &[Call], hparams: &serde_json::Value) {
    let python = tensorboard_python();
    let output = Command::new(&python).arg("-c").arg(READ_EVENTS).arg(log_dir).arg(save_dir).output().unwrap();
    assert!(output.status.success(), "{} failed: {}", python.display(), String::from_utf8_lossy(&output.stderr));
    let read: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // TensorBoard parses "brain.Event:2" to its number.
    assert_eq!(read["file_version"], 2.0);

    // Every call's values, per tag in order, as the 32-bit floats TensorBoard keeps.
    let mut expected = serde_json::Map::new();
    for (metrics, step) in calls {
        for (name, value) in metrics {
            let points = expected.entry(name.clone()).or_insert_with(|| serde_json::json!([]));
            points.as_array_mut().unwrap().push(serde_json::json!([step, *value as f32 as f64]));
        }
    }
    assert_eq!(read["scalars"], serde_json::Value::Object(expected));

    assert_eq!(read["hparam_tags"], serde_json::json!(["_hparams_/session_start_info"]));
    let expected_hparams = serde_json::json!({
        "lr": hparams["lr"],
        "hidden": hparams["hidden"],
        "activation": hparams["activation"],
        "schedule/warmup": hparams["schedule"]["warmup"],
        "schedule/milestones": "[2,4]",
    });
    // `MessageToDict` of a `google.protobuf.Value` is the plain JSON value (numbers as floats).
    let same_hparams = |read: &serde_json::Value| {
        let read = read.as_object().unwrap();
        assert_eq!(read.len(), 5, "{read:?}");
        for (name, value) in expected_hparams.as_object().unwrap() {
            match value.as_f64() {
                Some(number) => assert_eq!(read[name].as_f64(), Some(number), "{name}"),
                None => assert_eq!(&read[name], value, "{name}"),
            }
        }
    };
    same_hparams(&read["hparams"]);

    // The HPARAMS dashboard: one session, the run's folder, with these hyper-parameters, and the run's scalars
    // as its metrics, each at its last step and value.
    let dashboard = &read["dashboard"];
    let mut names: Vec<&str> = expected_hparams.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(dashboard["hparams"], serde_json::json!(names));
    let tags = read["scalars"].as_object().unwrap();
    assert_eq!(dashboard["metrics"], serde_json::json!(tags.keys().collect::<Vec<_>>()));
    let sessions = dashboard["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["name"], "exp/version_0");
    same_hparams(&sessions[0]["hparams"]);
    for (tag, points) in tags {
        assert_eq!(sessions[0]["metrics"][tag], *points.as_array().unwrap().last().unwrap(), "{tag}");
    }
}

#[test]
fn versions_count_up_across_runs() {
    let tmp = tempfile::tempdir().unwrap();
    for version in 0..2 {
        let (csv, tensorboard) = both_loggers(tmp.path());
        assert_eq!(csv.current_version(), version);
        assert_eq!(tensorboard.current_version(), version);
        fit_with(vec![Box::new(|t| t.logger(csv)), Box::new(|t| t.logger(tensorboard))]);
        let dir = tmp.path().join("exp").join(format!("version_{version}"));
        assert!(dir.join("metrics.csv").is_file() && dir.join("hparams.json").is_file());
    }
    // A logger pinned to an existing version writes there; the next free one is still 2.
    let pinned = CsvLogger::new(tmp.path(), "exp").unwrap().version(0);
    assert_eq!(pinned.log_dir(), tmp.path().join("exp").join("version_0"));
    assert_eq!(TensorBoardLogger::new(tmp.path(), "exp").unwrap().current_version(), 2);
}

#[test]
fn a_path_that_cannot_be_a_folder_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a_file");
    std::fs::write(&file, b"").unwrap();

    // `save_dir/name` is a file.
    let error = CsvLogger::new(tmp.path(), "a_file").err().expect("a file where the logger folder goes");
    assert!(matches!(error, Error::Config(_)), "{error}");
    assert!(error.to_string().contains("a_file"), "{error}");
    // `save_dir` is a file.
    let error = TensorBoardLogger::new(&file, "exp").err().expect("a file where save_dir goes");
    assert!(matches!(error, Error::Io(_)), "{error}");
    assert!(error.to_string().contains("a_file"), "{error}");

    // The version folder turns out to be a file by the time the run writes: the run ends with the error.
    for make in [make_csv as fn(&Path) -> Box<dyn FnOnce(Trainer) -> Trainer>, make_tensorboard] {
        let tmp = tempfile::tempdir().unwrap();
        let add = make(tmp.path());
        std::fs::create_dir(tmp.path().join("exp")).unwrap();
        std::fs::write(tmp.path().join("exp").join("version_0"), b"").unwrap();
        let (train, val) = loaders();
        let mut trainer =
            add(Trainer::new().logger(false).enable_checkpointing(false).max_epochs(1).accelerator(Accelerator::Cpu));
        let error = trainer.fit(&mut Regression::new(), train, val).unwrap_err();
        assert!(matches!(error, Error::Io(_)), "{error}");
        assert!(error.to_string().contains("version_0"), "{error}");
    }
}

fn make_csv(dir: &Path) -> Box<dyn FnOnce(Trainer) -> Trainer> {
    let logger = CsvLogger::new(dir, "exp").unwrap();
    Box::new(|t| t.logger(logger))
}

fn make_tensorboard(dir: &Path) -> Box<dyn FnOnce(Trainer) -> Trainer> {
    let logger = TensorBoardLogger::new(dir, "exp").unwrap();
    Box::new(|t| t.logger(logger))
}

#[cfg(unix)]
#[test]
fn a_read_only_folder_is_an_io_error() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("locked");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(dir.join("probe"), b"").is_ok() {
        // Root ignores permission bits: nothing to test here.
        eprintln!("permission bits are not enforced for this user: the read-only folder case is skipped");
        return;
    }
    let mut csv = CsvLogger::new(&dir, "exp").unwrap();
    let error = csv.log_metrics(&[("loss".into(), 1.0)], 0).unwrap_err();
    assert!(matches!(error, Error::Io(_)) && error.to_string().contains("locked"), "{error}");
    let mut tensorboard = TensorBoardLogger::new(&dir, "exp").unwrap();
    let error = tensorboard.log_hyperparams(&serde_json::json!({"lr": 0.1})).unwrap_err();
    assert!(matches!(error, Error::Io(_)) && error.to_string().contains("locked"), "{error}");
}
