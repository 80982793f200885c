//! The Trainer's options as a config file and the command line name them (Lightning's `trainer:` section), and
//! the Trainer they build.

use serde::{Deserialize, Serialize};

use crate::{Accelerator, Error, GradClipAlgorithm, Limit, Precision, Result, Trainer};

/// A count of batches (an integer: `5`) or a fraction of them (a float: `0.25`; `1.0` is all), as Lightning's
/// `limit_*_batches`, `overfit_batches` and `val_check_interval` take them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LimitValue {
    /// This many batches.
    Batches(usize),
    /// This fraction of the batches.
    Fraction(f64),
}

impl From<LimitValue> for Limit {
    fn from(value: LimitValue) -> Limit {
        match value {
            LimitValue::Batches(n) => Limit::from(n),
            LimitValue::Fraction(f) => Limit::from(f),
        }
    }
}

/// Lightning's `fast_dev_run`: `true` (one batch) or a number of batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FastDevRun {
    /// `true`: one batch; `false`: off.
    Flag(bool),
    /// This many batches of each stage.
    Batches(usize),
}

/// The Trainer's options a [`LightningCli`](crate::LightningCli) reads from the `trainer` section of a config
/// file and from `--trainer.<option>` flags, with the Trainer's defaults. Unset options (`None`) print as
/// `null` in `--print-config=yaml` and as commented lines in `--print-config=toml`.
///
/// ```
/// use lightning_runtime::TrainerConfig;
/// let config = TrainerConfig { max_epochs: Some(3), accelerator: "cpu".into(), ..TrainerConfig::default() };
/// let trainer = config.build().unwrap();
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainerConfig {
    /// Stop after this many epochs.
    pub max_epochs: Option<usize>,
    /// Train at least this many epochs.
    pub min_epochs: Option<usize>,
    /// Stop after this many optimizer steps.
    pub max_steps: Option<usize>,
    /// Train at least this many optimizer steps.
    pub min_steps: Option<usize>,
    /// Stop after this many seconds.
    pub max_time: Option<f64>,
    /// `"auto"`, `"cpu"`, `"cuda"` (or `"gpu"`), or `"cuda:N"`.
    pub accelerator: String,
    /// Processes per machine.
    pub devices: usize,
    /// Machines.
    pub num_nodes: usize,
    /// Lightning's precision names: `"32-true"`, `"bf16-mixed"`, `"16-mixed"`, ...
    pub precision: String,
    /// The seed of every run.
    pub seed: Option<u64>,
    /// Training batches per epoch.
    pub limit_train_batches: Option<LimitValue>,
    /// Validation batches per validation run.
    pub limit_val_batches: Option<LimitValue>,
    /// Test batches.
    pub limit_test_batches: Option<LimitValue>,
    /// Prediction batches.
    pub limit_predict_batches: Option<LimitValue>,
    /// Train on the first batches again and again.
    pub overfit_batches: Option<LimitValue>,
    /// Validate every this many training batches (an integer) or at this fraction of the epoch (a float).
    pub val_check_interval: Option<LimitValue>,
    /// Validate every this many epochs (0 turns epoch-end validation off, Lightning's `None`).
    pub check_val_every_n_epoch: usize,
    /// Accumulate gradients over this many batches.
    pub accumulate_grad_batches: usize,
    /// Clip gradients to this value.
    pub gradient_clip_val: Option<f64>,
    /// `"norm"` or `"value"`.
    pub gradient_clip_algorithm: Option<String>,
    /// Send step values to the loggers every this many steps.
    pub log_every_n_steps: usize,
    /// `true` or a number of batches: a quick run of every stage.
    pub fast_dev_run: FastDevRun,
    /// Validation batches run before training.
    pub num_sanity_val_steps: usize,
    /// Report progress on stderr.
    pub enable_progress_bar: bool,
    /// Print the model summary when `fit` starts.
    pub enable_model_summary: bool,
}

impl Default for TrainerConfig {
    /// The Trainer's own defaults.
    fn default() -> Self {
        TrainerConfig {
            max_epochs: None,
            min_epochs: None,
            max_steps: None,
            min_steps: None,
            max_time: None,
            accelerator: "auto".into(),
            devices: 1,
            num_nodes: 1,
            precision: "32-true".into(),
            seed: None,
            limit_train_batches: None,
            limit_val_batches: None,
            limit_test_batches: None,
            limit_predict_batches: None,
            overfit_batches: None,
            val_check_interval: None,
            check_val_every_n_epoch: 1,
            accumulate_grad_batches: 1,
            gradient_clip_val: None,
            gradient_clip_algorithm: None,
            log_every_n_steps: 50,
            fast_dev_run: FastDevRun::Flag(false),
            num_sanity_val_steps: 2,
            enable_progress_bar: true,
            enable_model_summary: true,
        }
    }
}

/// Lightning's accelerator names.
fn accelerator(name: &str) -> Result<Accelerator> {
    Ok(match name {
        "auto" => Accelerator::Auto,
        "cpu" => Accelerator::Cpu,
        "cuda" | "gpu" => Accelerator::Cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse) {
            Some(Ok(index)) => Accelerator::Cuda(index),
            _ => {
                return Err(Error::Config(format!(
                    "trainer.accelerator = {other:?}: expected \"auto\", \"cpu\", \"cuda\" (or \"gpu\") or \"cuda:N\""
                )))
            }
        },
    })
}

impl TrainerConfig {
    /// The Trainer these options describe.
    ///
    /// # Errors
    /// An accelerator, precision or clipping algorithm that is not one of the names above, or a negative or
    /// non-finite `max_time`. (The Trainer checks the other values when a stage starts.)
    pub fn build(&self) -> Result<Trainer> {
        let mut t = Trainer::new()
            .accelerator(accelerator(&self.accelerator)?)
            .devices(self.devices)
            .num_nodes(self.num_nodes)
            .precision(self.precision.parse::<Precision>()?)
            .accumulate_grad_batches(self.accumulate_grad_batches)
            .log_every_n_steps(self.log_every_n_steps)
            .num_sanity_val_steps(self.num_sanity_val_steps)
            .enable_progress_bar(self.enable_progress_bar)
            .enable_model_summary(self.enable_model_summary)
            .check_val_every_n_epoch((self.check_val_every_n_epoch > 0).then_some(self.check_val_every_n_epoch))
            .min_epochs(self.min_epochs.unwrap_or(0))
            .min_steps(self.min_steps.unwrap_or(0));
        if let Some(n) = self.max_epochs {
            t = t.max_epochs(n);
        }
        if let Some(n) = self.max_steps {
            t = t.max_steps(n);
        }
        if let Some(seconds) = self.max_time {
            let time = std::time::Duration::try_from_secs_f64(seconds)
                .map_err(|e| Error::Config(format!("trainer.max_time = {seconds}: {e}")))?;
            t = t.max_time(time);
        }
        if let Some(seed) = self.seed {
            t = t.seed(seed);
        }
        for (limit, set) in [
            (self.limit_train_batches, Trainer::limit_train_batches as fn(Trainer, Limit) -> Trainer),
            (self.limit_val_batches, Trainer::limit_val_batches),
            (self.limit_test_batches, Trainer::limit_test_batches),
            (self.limit_predict_batches, Trainer::limit_predict_batches),
            (self.overfit_batches, Trainer::overfit_batches),
            (self.val_check_interval, Trainer::val_check_interval),
        ] {
            if let Some(limit) = limit {
                t = set(t, limit.into());
            }
        }
        if let Some(clip) = self.gradient_clip_val {
            t = t.gradient_clip_val(clip);
        }
        match self.gradient_clip_algorithm.as_deref() {
            None => {}
            Some("norm") => t = t.gradient_clip_algorithm(GradClipAlgorithm::Norm),
            Some("value") => t = t.gradient_clip_algorithm(GradClipAlgorithm::Value),
            Some(other) => {
                return Err(Error::Config(format!(
                    "trainer.gradient_clip_algorithm = {other:?}: expected \"norm\" or \"value\""
                )))
            }
        }
        match self.fast_dev_run {
            FastDevRun::Flag(false) => {}
            FastDevRun::Flag(true) => t = t.fast_dev_run(1),
            FastDevRun::Batches(n) => t = t.fast_dev_run(n),
        }
        Ok(t)
    }
}
