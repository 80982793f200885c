//! `LightningCli`: config files (TOML and YAML) merged under flags, `--print-config` reading back, unknown keys
//! refused with a suggestion, and each subcommand running a real stage on a small regression model.

use std::path::Path;

mod common;

use common::serial;
use lightning::prelude::*;
use lightning::{
    CliData, CliInvocation, CliOutcome, DataLoader, FastDevRun, FromHparams, LightningCli, LimitValue, ModelCheckpoint,
};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Hyper {
    hidden: i64,
    lr: f64,
    layers: Vec<i64>,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper { hidden: 4, lr: 0.05, layers: vec![2, 3] }
    }
}

struct Net {
    vs: nn::VarStore,
    net: nn::Sequential,
    hyper: Hyper,
}

#[lightning_module(hparams = hyper)]
impl Net {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.net.forward(x).mse_loss(y, Reduction::Mean)
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("val_loss", self.net.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn test_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("test_loss", self.net.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn predict_step(&mut self, (x, _): &(Tensor, Tensor)) -> Tensor {
        self.net.forward(x)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, self.hyper.lr)
    }
}

impl FromHparams for Net {
    type Hparams = Hyper;

    fn from_hparams(hyper: Hyper) -> Self {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 3, hyper.hidden, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", hyper.hidden, 1, Default::default()));
        Net { vs, net, hyper }
    }
}

/// 8 batches of 4: `y = x · w`.
fn loader() -> Loader<(Tensor, Tensor)> {
    let x = (Tensor::arange(96, (Kind::Float, Device::Cpu)) * 0.37).sin().reshape([32, 3]);
    let y = x.matmul(&Tensor::from_slice(&[0.5f32, -1.0, 2.0]).reshape([3, 1]));
    DataLoader::new((x, y)).batch_size(4).build().unwrap()
}

fn data(_: &Hyper) -> CliData<(Tensor, Tensor)> {
    CliData { train: Some(loader()), val: Some(loader()), test: Some(loader()), predict: Some(loader()) }
}

fn cli() -> LightningCli<Net> {
    // No default logger or checkpoint: the tests write nothing into the working directory.
    LightningCli::<Net>::new()
        .about("train", "a test program")
        .with_validate()
        .with_test()
        .with_predict()
        .configure_trainer(|t| t.logger(false).enable_checkpointing(false))
}

fn args(rest: &[&str]) -> Vec<String> {
    std::iter::once("train").chain(rest.iter().copied()).map(String::from).collect()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn parsed(rest: &[&str]) -> lightning::CliConfig<Hyper> {
    match cli().parse_from(args(rest)).unwrap() {
        CliInvocation::Run(config) => *config,
        other => panic!("expected a run, got {other:?}"),
    }
}

#[test]
fn flags_override_the_config_file_which_overrides_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "run.toml",
        "[model]\nlr = 0.2\nhidden = 6\n\n[trainer]\nmax_epochs = 5\nlimit_train_batches = 3\nlimit_val_batches = 0.5\naccelerator = \"cpu\"\n",
    );
    let config = parsed(&["fit", "--config", &file, "--trainer.max_epochs", "2", "--model.hidden", "8"]);
    assert_eq!(config.model, Hyper { hidden: 8, lr: 0.2, layers: vec![2, 3] });
    let t = &config.trainer;
    assert_eq!(
        (t.max_epochs, t.limit_train_batches, t.limit_val_batches),
        (Some(2), Some(LimitValue::Batches(3)), Some(LimitValue::Fraction(0.5)))
    );
    assert_eq!((t.accelerator.as_str(), t.log_every_n_steps, t.fast_dev_run), ("cpu", 50, FastDevRun::Flag(false)));

    // A second file merges over the first, key by key; text options stay text.
    let second = write(dir.path(), "more.toml", "[trainer]\nprecision = \"64-true\"\nmax_epochs = 7\n");
    let config = parsed(&["fit", "--config", &file, "--config", &second, "--trainer.precision", "32"]);
    assert_eq!(
        (config.trainer.max_epochs, config.trainer.limit_train_batches),
        (Some(7), Some(LimitValue::Batches(3)))
    );
    assert_eq!(config.trainer.precision, "32");
    assert_eq!(config.model.lr, 0.2);
}

#[test]
fn print_config_prints_toml_that_reads_back_to_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--model.layers", "[5, 6, 7]", "--trainer.max_epochs", "3", "--trainer.limit_val_batches", "1.0"];
    let printed = match cli().parse_from(args(&[&["fit", "--print-config"], &flags[..]].concat())).unwrap() {
        CliInvocation::PrintConfig(text) => text,
        other => panic!("expected the printed config, got {other:?}"),
    };
    assert!(printed.contains("[model]\n") && printed.contains("layers = [5, 6, 7]"), "{printed}");
    assert!(printed.contains("max_epochs = 3") && printed.contains("# max_steps = (unset)"), "{printed}");
    assert!(printed.contains("limit_val_batches = 1.0"), "a fraction stays a fraction: {printed}");

    let file = write(dir.path(), "printed.toml", &printed);
    let from_file = parsed(&["fit", "--config", &file]);
    let from_flags = parsed(&[&["fit"], &flags[..]].concat());
    assert_eq!(from_file.model, from_flags.model);
    assert_eq!(from_file.trainer, from_flags.trainer);
    assert_eq!(from_file.to_toml().unwrap(), printed);
    assert_eq!(from_file.trainer.limit_val_batches, Some(LimitValue::Fraction(1.0)));
}

#[test]
fn unknown_keys_are_refused_with_a_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[trainer]\nmax_epoch = 3\n", "unknown key `trainer.max_epoch`", "did you mean `max_epochs`?"),
        ("[model]\nlrr = 0.1\n", "unknown key `model.lrr`", "did you mean `lr`?"),
        ("[trainr]\nmax_epochs = 3\n", "unknown key `trainr`", "did you mean `trainer`?"),
    ];
    for (text, what, hint) in cases {
        let file = write(dir.path(), "bad.toml", text);
        let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains(hint) && err.contains("bad.toml"), "{err}");
    }
    let err = cli().parse_from(args(&["fit", "--trainer.max_epoch", "3"])).unwrap_err().to_string();
    assert!(err.contains("--trainer.max_epoch") && err.contains("--trainer.max_epochs"), "{err}");
    // A value of the wrong type names its key.
    let err = cli().parse_from(args(&["fit", "--trainer.max_epochs", "many"])).unwrap_err().to_string();
    assert!(err.contains("trainer.max_epochs = \"many\"") && err.contains("invalid type"), "{err}");
    let file = write(dir.path(), "typed.toml", "[model]\nlayers = \"wide\"\n");
    let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
    assert!(err.contains("model.layers = \"wide\""), "{err}");
    let file = write(dir.path(), "broken.toml", "[trainer\n");
    let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
    assert!(err.contains("not valid TOML"), "{err}");
}

#[test]
fn help_lists_the_subcommands_and_every_option() {
    let CliOutcome::Help(top) = cli().run_from(args(&["--help"]), data).unwrap() else { panic!("no help") };
    for sub in ["fit", "validate", "test", "predict"] {
        assert!(top.contains(sub), "{top}");
    }
    let CliOutcome::Help(fit) = cli().run_from(args(&["fit", "--help"]), data).unwrap() else { panic!("no help") };
    for flag in
        ["--config", "--print-config", "--ckpt_path", "--model.lr", "--trainer.max_epochs", "--trainer.precision"]
    {
        assert!(fit.contains(flag), "{flag} in {fit}");
    }
    // The command line's own work is small: building the command and rendering the help (the process's start,
    // which loads libtorch, is the rest of `--help`'s time).
    let started = std::time::Instant::now();
    for _ in 0..10 {
        assert!(matches!(cli().parse_from(args(&["fit", "--help"])).unwrap(), CliInvocation::Help(_)));
    }
    let each = started.elapsed() / 10;
    eprintln!("fit --help, parsed and rendered in-process: {each:?}");
    assert!(each < std::time::Duration::from_millis(50), "{each:?}");
    // Without `with_test`, there is no `test` subcommand.
    let err = LightningCli::<Net>::new().parse_from(args(&["test"])).unwrap_err().to_string();
    assert!(err.contains("test"), "{err}");
}

#[test]
fn every_subcommand_runs_its_stage() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "run.toml",
        "[trainer]\nmax_epochs = 2\nlimit_train_batches = 3\naccelerator = \"cpu\"\nenable_progress_bar = false\nenable_model_summary = false\nseed = 1\n",
    );
    let ckpt_dir = dir.path().join("ckpt");
    let saver = ckpt_dir.clone();
    let fit = cli()
        .configure_trainer(move |t| t.logger(false).callback(ModelCheckpoint::new(saver).save_last(true)))
        .run_from(args(&["fit", "--config", &file, "--model.lr", "0.1"]), data)
        .unwrap();
    let CliOutcome::Fit { mut module, trainer } = fit else { panic!("fit did not run") };
    assert_eq!((trainer.global_step(), trainer.current_epoch()), (6, 2));
    assert_eq!(module.hyper.lr, 0.1);
    let last = ckpt_dir.join("last.ckpt");
    assert!(last.exists());

    // `validate` from the checkpoint gives what validating the trained module gives.
    let expected =
        lightning::TrainerConfig { accelerator: "cpu".into(), enable_progress_bar: false, ..Default::default() }
            .build()
            .unwrap()
            .logger(false)
            .validate(&mut *module, loader())
            .unwrap();
    let last_text = last.display().to_string();
    let CliOutcome::Validate(metrics) =
        cli().run_from(args(&["validate", "--config", &file, "--ckpt_path", &last_text]), data).unwrap()
    else {
        panic!("validate did not run")
    };
    assert_eq!(metrics, expected);
    // Without the checkpoint the module is untrained: another loss.
    let CliOutcome::Validate(fresh) = cli().run_from(args(&["validate", "--config", &file]), data).unwrap() else {
        panic!("validate did not run")
    };
    assert_ne!(fresh["val_loss"], metrics["val_loss"]);

    let CliOutcome::Test(metrics) =
        cli().run_from(args(&["test", "--config", &file, "--ckpt_path", &last_text]), data).unwrap()
    else {
        panic!("test did not run")
    };
    assert_eq!(metrics["test_loss"], expected["val_loss"], "the same data, the same loss");

    let CliOutcome::Predict(predictions) = cli()
        .run_from(
            args(&["predict", "--config", &file, "--ckpt_path", &last_text, "--trainer.limit_predict_batches", "5"]),
            data,
        )
        .unwrap()
    else {
        panic!("predict did not run")
    };
    let predictions = predictions.downcast::<Vec<Tensor>>().unwrap();
    assert_eq!(predictions.len(), 5);
    assert_eq!(predictions[0].size(), [4, 1]);

    // A checkpoint that is not there is the stage's error.
    let err = cli().run_from(args(&["test", "--config", &file, "--ckpt_path", "nowhere.ckpt"]), data).err().unwrap();
    assert!(err.to_string().contains("nowhere.ckpt"), "{err}");
}

fn printed(rest: &[&str]) -> String {
    match cli().parse_from(args(rest)).unwrap() {
        CliInvocation::PrintConfig(text) => text,
        other => panic!("expected the printed config, got {other:?}"),
    }
}

/// The trained weights, by name.
fn weights(module: &Net) -> Vec<(String, Vec<f32>)> {
    let mut named: Vec<_> = module
        .vs
        .variables()
        .into_iter()
        .map(|(name, t)| (name, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn a_yaml_file_runs_as_the_same_toml_file_does() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let toml = write(
        dir.path(),
        "run.toml",
        "[model]\nlr = 0.2\nlayers = [1, 2]\n\n[trainer]\nmax_epochs = 2\nlimit_train_batches = 3\nlimit_val_batches = 0.5\naccelerator = \"cpu\"\nenable_progress_bar = false\nenable_model_summary = false\nseed = 7\n",
    );
    // Lightning's layout: `trainer:` first, `seed_everything` at the top level (our `trainer.seed`).
    let yaml = write(
        dir.path(),
        "run.yaml",
        "# lightning-style\nseed_everything: 7\ntrainer:\n  max_epochs: 2\n  limit_train_batches: 3\n  limit_val_batches: 0.5\n  accelerator: cpu\n  enable_progress_bar: false\n  enable_model_summary: false\nmodel:\n  lr: 0.2\n  layers: [1, 2]\n",
    );
    let (from_toml, from_yaml) = (parsed(&["fit", "--config", &toml]), parsed(&["fit", "--config", &yaml]));
    assert_eq!(from_yaml.model, from_toml.model);
    assert_eq!(from_yaml.trainer, from_toml.trainer);
    assert_eq!(from_yaml.trainer.limit_val_batches, Some(LimitValue::Fraction(0.5)));
    assert_eq!(from_yaml.trainer.seed, Some(7));

    let fit = |file: &str| {
        let CliOutcome::Fit { module, trainer } = cli().run_from(args(&["fit", "--config", file]), data).unwrap()
        else {
            panic!("fit did not run")
        };
        (weights(&module), trainer.global_step(), trainer.callback_metrics().clone())
    };
    let (toml_run, yaml_run) = (fit(&toml), fit(&yaml));
    assert_eq!(toml_run.1, 6);
    assert_eq!(yaml_run, toml_run, "the same configuration, the same run");

    // Files of both formats merge in order, and flags still win.
    let more = write(dir.path(), "more.yml", "trainer:\n  max_epochs: 4\n  precision: 64-true\n");
    let config = parsed(&["fit", "--config", &toml, "--config", &more, "--model.lr", "0.3"]);
    assert_eq!((config.trainer.max_epochs, config.trainer.precision.as_str()), (Some(4), "64-true"));
    assert_eq!((config.trainer.limit_train_batches, config.model.lr), (Some(LimitValue::Batches(3)), 0.3));
    // `seed_everything: true` (Lightning's default, a random seed) unsets the seed an earlier file gave.
    let random = write(dir.path(), "random.yaml", "seed_everything: true\n");
    assert_eq!(parsed(&["fit", "--config", &toml, "--config", &random]).trainer.seed, None);
    let clash = write(dir.path(), "clash.yaml", "seed_everything: 1\ntrainer:\n  seed: 2\n");
    let err = cli().parse_from(args(&["fit", "--config", &clash])).unwrap_err().to_string();
    assert!(err.contains("clash.yaml") && err.contains("disagree"), "{err}");
}

#[test]
fn print_config_prints_yaml_that_reads_back_to_the_same_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--model.layers", "[5, 6, 7]", "--trainer.max_epochs", "3", "--trainer.limit_val_batches", "1.0"];
    let yaml = printed(&[&["fit", "--print-config=yaml"], &flags[..]].concat());
    assert!(yaml.starts_with("trainer:\n"), "Lightning's order, the Trainer first: {yaml}");
    assert!(yaml.contains("  max_epochs: 3\n") && yaml.contains("  max_steps: null\n"), "{yaml}");
    assert!(yaml.contains("  limit_val_batches: 1.0\n"), "a fraction stays a fraction: {yaml}");
    assert!(yaml.contains("model:\n") && yaml.contains("ckpt_path: null"), "{yaml}");

    let file = write(dir.path(), "printed.yaml", &yaml);
    let from_file = parsed(&["fit", "--config", &file]);
    let from_flags = parsed(&[&["fit"], &flags[..]].concat());
    assert_eq!(from_file.model, from_flags.model);
    assert_eq!(from_file.trainer, from_flags.trainer);
    assert_eq!(from_file.to_yaml().unwrap(), yaml);
    // Without a format, `--print-config` answers in the last config file's; `=toml` asks for TOML.
    assert_eq!(printed(&["fit", "--config", &file, "--print-config"]), yaml);
    assert_eq!(printed(&["fit", "--config", &file, "--print_config=toml"]), from_file.to_toml().unwrap());
    assert_eq!(printed(&["fit", "--print-config"]), parsed(&["fit"]).to_toml().unwrap());
    let err = cli().parse_from(args(&["fit", "--print-config=json"])).unwrap_err().to_string();
    assert!(err.contains("json") && err.contains("yaml"), "{err}");
}

#[test]
fn yaml_mistakes_name_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("trainer:\n  max_epoch: 3\n", "unknown key `trainer.max_epoch`", "did you mean `max_epochs`?"),
        ("model:\n  lrr: 0.1\n", "unknown key `model.lrr`", "did you mean `lr`?"),
        ("trainr:\n  max_epochs: 3\n", "unknown key `trainr`", "did you mean `trainer`?"),
        ("data:\n  batch_size: 3\n", "unknown key `data`", "the top-level keys are"),
    ];
    for (text, what, hint) in cases {
        let file = write(dir.path(), "bad.yaml", text);
        let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
        assert!(err.contains(what) && err.contains(hint) && err.contains("bad.yaml"), "{err}");
    }
    let file = write(dir.path(), "typed.yaml", "trainer:\n  max_epochs: many\n");
    let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
    assert!(err.contains("trainer.max_epochs = \"many\""), "{err}");
    for broken in ["trainer:\n  max_epochs: [1,\n", "trainer:\n max_epochs: 1\n  min_epochs: 2\n", "- just\n- a list\n"]
    {
        let file = write(dir.path(), "broken.yml", broken);
        let err = cli().parse_from(args(&["fit", "--config", &file])).unwrap_err().to_string();
        assert!(err.contains("broken.yml"), "{err}");
    }
    let err = cli()
        .parse_from(args(&["fit", "--config", &write(dir.path(), "syntax.yaml", "trainer: {max_epochs: 1\n")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("syntax.yaml is not valid YAML") && err.contains("line"), "{err}");
}
