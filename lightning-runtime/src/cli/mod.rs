//! `LightningCli` (Lightning's `LightningCLI`): a command line built from the module's hyper-parameters type and
//! the Trainer's options, with `fit`, `validate`, `test` and `predict` subcommands, TOML or YAML config files,
//! `--print-config`, and unknown keys refused with a suggestion. `config.rs` merges configurations,
//! `format.rs` reads and prints the two file formats, `trainer_config.rs` holds the Trainer's options.

mod config;
mod format;
mod trainer_config;

use std::any::Any;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::marker::PhantomData;
use std::path::PathBuf;

use clap::builder::PossibleValue;
use clap::{Arg, ArgAction, Command};
use serde::Serialize;
use serde_json::{json, Value};

pub use trainer_config::{FastDevRun, LimitValue, TrainerConfig};

use format::ConfigFormat;

use crate::module::{Fit, HasPredictStep, HasTestStep, HasValidationStep, LightningModule};
use crate::{CkptPath, Error, FromHparams, Loader, Result, Trainer};

/// The stage a command line runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subcommand {
    /// `fit`: train, validating as configured.
    Fit,
    /// `validate`: one validation epoch.
    Validate,
    /// `test`: one test epoch.
    Test,
    /// `predict`: run `predict_step` over the prediction data.
    Predict,
}

impl Subcommand {
    fn name(self) -> &'static str {
        match self {
            Subcommand::Fit => "fit",
            Subcommand::Validate => "validate",
            Subcommand::Test => "test",
            Subcommand::Predict => "predict",
        }
    }
}

/// The data a command line's stage runs on, built once the hyper-parameters are known. A stage without data of
/// its own uses the module's `*_dataloader` hook.
pub struct CliData<B> {
    /// Training data (`fit`).
    pub train: Option<Loader<B>>,
    /// Validation data (`fit`, `validate`).
    pub val: Option<Loader<B>>,
    /// Test data.
    pub test: Option<Loader<B>>,
    /// Prediction data.
    pub predict: Option<Loader<B>>,
}

impl<B> Default for CliData<B> {
    fn default() -> Self {
        CliData { train: None, val: None, test: None, predict: None }
    }
}

/// A parsed, merged configuration: the subcommand, the module's hyper-parameters, the Trainer's options and the
/// checkpoint to start from.
#[derive(Debug)]
pub struct CliConfig<H> {
    /// The stage to run.
    pub subcommand: Subcommand,
    /// The `model` section: the module's hyper-parameters.
    pub model: H,
    /// The `trainer` section.
    pub trainer: TrainerConfig,
    /// `ckpt_path`: a checkpoint file, `"last"` or `"best"`.
    pub ckpt_path: Option<String>,
    merged: Value,
}

impl<H> CliConfig<H> {
    /// The configuration as a TOML config file (what `--print-config=toml` prints; it reads back to the same).
    ///
    /// # Errors
    /// A hyper-parameter TOML cannot hold.
    pub fn to_toml(&self) -> Result<String> {
        format::to_toml(&self.merged)
    }

    /// The configuration as a YAML config file in Lightning's layout (`trainer:`, `model:`, `ckpt_path:`), what
    /// `--print-config=yaml` prints; it reads back to the same.
    ///
    /// # Errors
    /// A hyper-parameter YAML cannot hold.
    pub fn to_yaml(&self) -> Result<String> {
        format::to_yaml(&self.merged)
    }
}

/// What a command line asked for.
#[derive(Debug)]
pub enum CliInvocation<H> {
    /// `--help` (or no subcommand): the help text.
    Help(String),
    /// `--print-config`: the merged configuration as TOML or YAML.
    PrintConfig(String),
    /// A stage to run.
    Run(Box<CliConfig<H>>),
}

/// What [`LightningCli::run_from`] did.
pub enum CliOutcome<M> {
    /// It printed nothing and ran nothing: the help text is here.
    Help(String),
    /// The merged configuration, as TOML or YAML.
    PrintedConfig(String),
    /// `fit` ran: the trained module and the Trainer.
    Fit {
        /// The module after `fit`.
        module: Box<M>,
        /// The Trainer (its `callback_metrics`, `global_step`, ...).
        trainer: Box<Trainer>,
    },
    /// `validate` ran: its metrics.
    Validate(BTreeMap<String, f64>),
    /// `test` ran: its metrics.
    Test(BTreeMap<String, f64>),
    /// `predict` ran: the predictions, a `Vec<M::Prediction>` (downcast it).
    Predict(Box<dyn Any>),
}

type EvalFn<M> = fn(
    &mut Trainer,
    &mut M,
    Option<Loader<<M as LightningModule>::Batch>>,
    Option<CkptPath>,
) -> Result<BTreeMap<String, f64>>;
type PredictFn<M> =
    fn(&mut Trainer, &mut M, Option<Loader<<M as LightningModule>::Batch>>, Option<CkptPath>) -> Result<Box<dyn Any>>;

/// A command line for module `M` (Lightning's `LightningCLI`): `fit` always, `validate`, `test` and `predict`
/// when enabled (they need the module's steps). Options come from the `model` (the fields of `M::Hparams`,
/// their defaults from `Default`) and `trainer` ([`TrainerConfig`]) sections of config files given with
/// `--config` (YAML for `.yaml`/`.yml`, as Lightning's, TOML otherwise; several merge in order), then from
/// `--model.<field>` and `--trainer.<option>` flags, which win; `--ckpt_path` starts from a checkpoint.
/// `--print-config` prints the merged configuration and exits (`--print-config=yaml` or `=toml`; by default
/// in the last config file's format, TOML without one); a key no section has is an error that suggests the
/// nearest one.
///
/// ```no_run
/// use lightning_runtime::tch::{nn, Device, Kind, Tensor};
/// use lightning_runtime::{CliData, FromHparams, LightningCli, Optimizer};
///
/// #[derive(Default, serde::Serialize, serde::Deserialize)]
/// struct Hyper {
///     lr: f64,
/// }
///
/// struct Net {
///     vs: nn::VarStore,
///     hyper: Hyper,
/// }
///
/// #[lightning_macros::lightning_module(crate = lightning_runtime, hparams = hyper)]
/// impl Net {
///     fn training_step(&mut self, x: &Tensor) -> Tensor {
///         x.sum(Kind::Float)
///     }
///
///     fn configure_optimizers(&mut self) -> Optimizer {
///         Optimizer::sgd(&self.vs, self.hyper.lr)
///     }
/// }
///
/// impl FromHparams for Net {
///     type Hparams = Hyper;
///     fn from_hparams(hyper: Hyper) -> Self {
///         Net { vs: nn::VarStore::new(Device::Cpu), hyper }
///     }
/// }
///
/// // `my_program fit --config run.yaml --trainer.max_epochs 3 --model.lr 0.1`
/// LightningCli::<Net>::new().run(|_hyper| CliData::default())?;
/// # Ok::<(), lightning_runtime::Error>(())
/// ```
pub struct LightningCli<M: FromHparams + Fit> {
    name: String,
    about: Option<String>,
    configure_trainer: Option<Box<dyn FnOnce(Trainer) -> Trainer>>,
    validate: Option<EvalFn<M>>,
    test: Option<EvalFn<M>>,
    predict: Option<PredictFn<M>>,
    module: PhantomData<M>,
}

impl<M> Default for LightningCli<M>
where
    M: FromHparams + Fit,
    M::Hparams: Serialize + Default,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M> LightningCli<M>
where
    M: FromHparams + Fit,
    M::Hparams: Serialize + Default,
{
    /// A command line with the `fit` subcommand, named after the running program.
    pub fn new() -> Self {
        let name = std::env::args_os()
            .next()
            .map(PathBuf::from)
            .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "lightning".into());
        LightningCli {
            name,
            about: None,
            configure_trainer: None,
            validate: None,
            test: None,
            predict: None,
            module: PhantomData,
        }
    }

    /// The program's name and one-line description in `--help`.
    pub fn about(mut self, name: impl Into<String>, about: impl Into<String>) -> Self {
        (self.name, self.about) = (name.into(), Some(about.into()));
        self
    }

    /// Adds what a config file cannot say (callbacks, loggers) to the Trainer the configuration built.
    pub fn configure_trainer(mut self, configure: impl FnOnce(Trainer) -> Trainer + 'static) -> Self {
        self.configure_trainer = Some(Box::new(configure));
        self
    }

    /// Enables the `validate` subcommand.
    pub fn with_validate(mut self) -> Self
    where
        M: HasValidationStep,
    {
        self.validate = Some(|t, m, data, ckpt| match ckpt {
            Some(ckpt) => t.validate_from(m, data, ckpt),
            None => t.validate(m, data),
        });
        self
    }

    /// Enables the `test` subcommand.
    pub fn with_test(mut self) -> Self
    where
        M: HasTestStep,
    {
        self.test = Some(|t, m, data, ckpt| match ckpt {
            Some(ckpt) => t.test_from(m, data, ckpt),
            None => t.test(m, data),
        });
        self
    }

    /// Enables the `predict` subcommand.
    pub fn with_predict(mut self) -> Self
    where
        M: HasPredictStep,
    {
        self.predict = Some(|t, m, data, ckpt| {
            let predictions = match ckpt {
                Some(ckpt) => t.predict_from(m, data, ckpt)?,
                None => t.predict(m, data)?,
            };
            Ok(Box::new(predictions) as Box<dyn Any>)
        });
        self
    }

    /// The defaults every configuration starts from.
    fn defaults(&self) -> Result<Value> {
        let model = serde_json::to_value(M::Hparams::default())
            .map_err(|e| Error::Config(format!("the module's hyper-parameters cannot be written as JSON: {e}")))?;
        let trainer = serde_json::to_value(TrainerConfig::default())
            .map_err(|e| Error::Config(format!("the Trainer's options cannot be written as JSON: {e}")))?;
        Ok(json!({ "ckpt_path": null, "model": model, "trainer": trainer }))
    }

    /// The clap command: every subcommand with the same options, one flag per key of the defaults.
    fn command(&self, defaults: &Value) -> Command {
        let mut flags = vec![
            Arg::new("config").long("config").value_name("FILE").action(ArgAction::Append).help(
                "A config file, YAML (.yaml, .yml) or TOML (model, trainer sections, ckpt_path); several merge \
                     in order",
            ),
            Arg::new("print_config")
                .long("print-config")
                .alias("print_config")
                .value_name("FORMAT")
                .num_args(0..=1)
                .require_equals(true)
                // Without a value: the last config file's format (a YAML user gets YAML back), TOML without one.
                .default_missing_value("auto")
                .value_parser([
                    PossibleValue::new("toml"),
                    PossibleValue::new("yaml").alias("yml"),
                    PossibleValue::new("auto").hide(true),
                ])
                .help("Print the merged configuration and exit: =yaml, =toml, or the last config file's format"),
            Arg::new("ckpt_path").long("ckpt_path").value_name("PATH").help("A checkpoint file, \"last\" or \"best\""),
        ];
        for section in ["model", "trainer"] {
            let Some(Value::Object(table)) = defaults.get(section) else { continue };
            for (key, default) in table {
                let id = format!("{section}.{key}");
                let default = if default.is_null() { "unset".to_string() } else { default.to_string() };
                flags.push(Arg::new(id.clone()).long(id).value_name("VALUE").help(format!("(default: {default})")));
            }
        }
        let mut command = Command::new(self.name.clone()).subcommand_required(true).arg_required_else_help(true);
        if let Some(about) = &self.about {
            command = command.about(about.clone());
        }
        let stages = [
            (Subcommand::Fit, "Train the model", true),
            (Subcommand::Validate, "Run one validation epoch", self.validate.is_some()),
            (Subcommand::Test, "Run one test epoch", self.test.is_some()),
            (Subcommand::Predict, "Predict over the prediction data", self.predict.is_some()),
        ];
        for (stage, about, enabled) in stages {
            if enabled {
                command = command.subcommand(Command::new(stage.name()).about(about).args(flags.clone()));
            }
        }
        command
    }

    /// Parses a command line (the program's name first, as `std::env::args` gives it) into what it asks for.
    ///
    /// # Errors
    /// A flag or subcommand clap does not know (its message suggests the nearest), a config file that cannot be
    /// read or holds an unknown key (with a suggestion), or values of the wrong type for their option.
    pub fn parse_from<I, T>(&self, args: I) -> Result<CliInvocation<M::Hparams>>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let defaults = self.defaults()?;
        let matches = match self.command(&defaults).try_get_matches_from(args) {
            Ok(matches) => matches,
            Err(e) => {
                use clap::error::ErrorKind::*;
                return match e.kind() {
                    DisplayHelp | DisplayVersion | DisplayHelpOnMissingArgumentOrSubcommand => {
                        Ok(CliInvocation::Help(e.render().to_string()))
                    }
                    _ => Err(Error::Config(e.render().to_string())),
                };
            }
        };
        let (name, sub) = matches.subcommand().ok_or_else(|| Error::Config("no subcommand given".into()))?;
        let subcommand = [Subcommand::Fit, Subcommand::Validate, Subcommand::Test, Subcommand::Predict]
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::Config(format!("unknown subcommand `{name}`")))?;
        let mut merged = defaults.clone();
        let mut last_format = ConfigFormat::Toml;
        for file in sub.get_many::<String>("config").into_iter().flatten() {
            config::merge_file(&mut merged, &defaults, file.as_ref())?;
            last_format = ConfigFormat::of_path(file.as_ref());
        }
        if let Some(path) = sub.get_one::<String>("ckpt_path") {
            config::set(&mut merged, None, "ckpt_path", Value::String(path.clone()));
        }
        for section in ["model", "trainer"] {
            let Some(Value::Object(table)) = defaults.get(section) else { continue };
            for (key, default) in table {
                if let Some(text) = sub.get_one::<String>(&format!("{section}.{key}")) {
                    config::set(&mut merged, Some(section), key, config::flag_value(text, Some(default)));
                }
            }
        }
        if let Some(name) = sub.get_one::<String>("print_config") {
            let format = ConfigFormat::named(name).unwrap_or(last_format);
            return Ok(CliInvocation::PrintConfig(format::print(&merged, format)?));
        }
        let model = section::<M::Hparams>(&merged, &defaults, "model", "the module's hyper-parameters")?;
        let trainer = section::<TrainerConfig>(&merged, &defaults, "trainer", "the Trainer's options")?;
        let ckpt_path = match &merged["ckpt_path"] {
            Value::Null => None,
            Value::String(path) => Some(path.clone()),
            other => return Err(Error::Config(format!("ckpt_path = {other}: expected a path, \"last\" or \"best\""))),
        };
        Ok(CliInvocation::Run(Box::new(CliConfig { subcommand, model, trainer, ckpt_path, merged })))
    }

    /// Parses `args` and runs the stage they ask for on the data `data` builds from the hyper-parameters; help
    /// and `--print-config` come back as text, nothing run.
    ///
    /// # Errors
    /// [`parse_from`](Self::parse_from)'s, the Trainer's options' ([`TrainerConfig::build`]), and the stage's.
    pub fn run_from<I, T>(self, args: I, data: impl FnOnce(&M::Hparams) -> CliData<M::Batch>) -> Result<CliOutcome<M>>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let config = match self.parse_from(args)? {
            CliInvocation::Help(text) => return Ok(CliOutcome::Help(text)),
            CliInvocation::PrintConfig(text) => return Ok(CliOutcome::PrintedConfig(text)),
            CliInvocation::Run(config) => *config,
        };
        let mut data = data(&config.model);
        let mut trainer = config.trainer.build()?;
        if let Some(configure) = self.configure_trainer {
            trainer = configure(trainer);
        }
        let ckpt = config.ckpt_path.as_deref().map(CkptPath::from);
        let mut module = M::from_hparams(config.model);
        let missing = |what: &str| Error::Config(format!("this program does not enable the `{what}` subcommand"));
        Ok(match config.subcommand {
            Subcommand::Fit => {
                let (train, val) = (data.train.take(), data.val.take());
                match ckpt {
                    Some(ckpt) => trainer.fit_from(&mut module, train, val, ckpt)?,
                    None => trainer.fit(&mut module, train, val)?,
                }
                CliOutcome::Fit { module: Box::new(module), trainer: Box::new(trainer) }
            }
            Subcommand::Validate => {
                let run = self.validate.ok_or_else(|| missing("validate"))?;
                CliOutcome::Validate(run(&mut trainer, &mut module, data.val.take(), ckpt)?)
            }
            Subcommand::Test => {
                let run = self.test.ok_or_else(|| missing("test"))?;
                CliOutcome::Test(run(&mut trainer, &mut module, data.test.take(), ckpt)?)
            }
            Subcommand::Predict => {
                let run = self.predict.ok_or_else(|| missing("predict"))?;
                CliOutcome::Predict(run(&mut trainer, &mut module, data.predict.take(), ckpt)?)
            }
        })
    }

    /// [`run_from`](Self::run_from) on the program's own arguments, for `main`: help and `--print-config` are
    /// printed to stdout; a mistake on the command line or in a config file is printed to stderr and the
    /// process exits with status 2, as command-line programs do.
    ///
    /// # Errors
    /// The stage's errors (the Trainer's options' too).
    pub fn run(self, data: impl FnOnce(&M::Hparams) -> CliData<M::Batch>) -> Result<CliOutcome<M>> {
        let args: Vec<OsString> = std::env::args_os().collect();
        if let Err(error) = self.parse_from(args.clone()) {
            // clap's messages open with `error:` already; the config file's get the same opening.
            let message = match error {
                Error::Config(message) if message.starts_with("error:") => message,
                Error::Config(message) => format!("error: {message}"),
                other => format!("error: {other}"),
            };
            eprintln!("{}", message.trim_end());
            std::process::exit(2);
        }
        let outcome = self.run_from(args, data)?;
        match &outcome {
            CliOutcome::Help(text) | CliOutcome::PrintedConfig(text) => print!("{text}"),
            _ => {}
        }
        Ok(outcome)
    }
}

/// The `name` section of the merged configuration as `T`; a value of the wrong type names its key
/// (`trainer.max_epochs = "many": invalid type: ...`), wherever it came from (a file or a flag).
fn section<T: serde::de::DeserializeOwned>(merged: &Value, defaults: &Value, name: &str, what: &str) -> Result<T> {
    serde_json::from_value(merged[name].clone()).map_err(|e| {
        let fits = |value: Value| serde_json::from_value::<T>(value).map(drop);
        match config::blame(&merged[name], &defaults[name], fits) {
            Some((key, value, problem)) => Error::Config(format!("{name}.{key} = {value}: {problem} (in {what})")),
            None => Error::Config(format!("the `{name}` section does not fit {what}: {e}")),
        }
    })
}
