//! The `Trainer`: its options, and the four entry points (`fit`, `validate`, `test`, `predict`).
//!
//! Where things are: `call/` is the one place through which every hook is called (callbacks first, then the
//! module), one method per hook; `loops/` holds the loops, which decide the order of hooks (one file per loop,
//! Lightning's `loops/` layout); `entry.rs` wraps each entry point (seeding, errors, panics, teardown);
//! `checkpointing.rs` captures and restores a run's state, `checkpoint_writer.rs` writes files behind the
//! training thread; `interrupt.rs` handles Ctrl-C and SIGTERM; `load.rs` is `LoadFromCheckpoint`.

pub(crate) mod call;
mod checkpoint_writer;
mod checkpointing;
mod ckpt_path;
pub(crate) mod defaults;
mod entry;
mod interrupt;
mod limits;
mod load;
mod loops;
mod monitor_check;
mod profiler;
mod strategy;

use std::collections::BTreeMap;

use tch::Device;

pub use ckpt_path::CkptPath;
pub use defaults::LoggerChoice;
pub use limits::Limit;
pub use load::{FromHparams, LoadFromCheckpoint};
pub use loops::OptimizerClosure;
pub use profiler::SimpleProfiler;
pub use strategy::{SingleDevice, Strategy};

use loops::Evaluation;

use crate::callback::Callback;
use crate::context::Stage;
use crate::data::DataSource;
use crate::loggers::Logger;
use crate::module::{HasConfigureOptimizers, HasPredictStep, HasTestStep, HasTrainingStep, HasValidationStep};
use crate::optim::GradClipAlgorithm;
use crate::Result;

/// Where the module runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Accelerator {
    /// CUDA device 0 when there is one, else the CPU.
    #[default]
    Auto,
    /// The CPU.
    Cpu,
    /// The CUDA device with this index.
    Cuda(usize),
}

impl Accelerator {
    fn resolve(self) -> Result<Device> {
        match self {
            Accelerator::Auto => Ok(Device::cuda_if_available()),
            Accelerator::Cpu => Ok(Device::Cpu),
            Accelerator::Cuda(index) => {
                let count = tch::Cuda::device_count() as usize;
                if index < count {
                    Ok(Device::Cuda(index))
                } else {
                    Err(crate::Error::Config(format!(
                        "the Trainer was asked for CUDA device {index}, but this machine has {count} CUDA device(s)"
                    )))
                }
            }
        }
    }
}

/// What to do when `training_step` returns a NaN or infinite loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NonFinite {
    /// Stop the run with [`Error::NonFiniteLoss`](crate::Error::NonFiniteLoss) naming the step (the default).
    #[default]
    Error,
    /// Skip the step (no backward, no optimizer step) and go on.
    Skip,
    /// Do not check (saves a device sync per step).
    Off,
}

/// Runs a [`LightningModule`](crate::LightningModule): `fit`, `validate`, `test` and `predict`, calling the module's hooks and every
/// callback's in the order PyTorch Lightning 2.x does. Options are set by chaining:
///
/// ```no_run
/// use lightning::{Accelerator, Trainer};
/// let trainer = Trainer::default().max_epochs(10).accelerator(Accelerator::Cpu).seed(42).accumulate_grad_batches(2);
/// ```
pub struct Trainer {
    pub(crate) cfg: Config,
    pub(crate) callbacks: Vec<Box<dyn Callback>>,
    pub(crate) loggers: Vec<Box<dyn Logger>>,
    pub(crate) strategy: Box<dyn Strategy>,
    /// Whether the user chose the strategy (else several devices pick `Ddp`).
    pub(crate) strategy_set: bool,
    pub(crate) profiler: Option<SimpleProfiler>,
    pub(crate) state: State,
    /// Lightning's default logger and checkpoint (`defaults.rs`).
    pub(crate) defaults: defaults::Defaults,
}

/// The options, as the loops read them.
#[derive(Clone, Debug)]
pub(crate) struct Config {
    pub max_epochs: Option<usize>,
    pub min_epochs: usize,
    pub max_steps: Option<usize>,
    pub min_steps: usize,
    pub limit_train: Limit,
    pub limit_val: Limit,
    pub limit_test: Limit,
    pub limit_predict: Limit,
    pub num_sanity_val_steps: usize,
    pub check_val_every_n_epoch: Option<usize>,
    pub val_check_interval: Option<Limit>,
    pub accumulate_grad_batches: usize,
    pub gradient_clip_val: Option<f64>,
    /// `None` unless set: `configure_gradient_clipping` then gets `None`, as Lightning passes it.
    pub gradient_clip_algorithm: Option<GradClipAlgorithm>,
    pub fast_dev_run: Option<usize>,
    pub overfit_batches: Option<Limit>,
    pub seed: Option<u64>,
    pub accelerator: Accelerator,
    pub nonfinite: NonFinite,
    pub log_every_n_steps: usize,
    pub enable_progress_bar: bool,
    pub enable_model_summary: bool,
    pub max_time: Option<std::time::Duration>,
    pub async_checkpointing: bool,
    pub handle_interrupts: bool,
    pub devices: usize,
    pub num_nodes: usize,
    pub precision: crate::Precision,
    /// `Tuner::lr_find`'s run: one optimizer, and its schedulers left out (the finder drives the learning rate).
    pub lr_finding: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_epochs: None,
            min_epochs: 0,
            max_steps: None,
            min_steps: 0,
            limit_train: Limit::All,
            limit_val: Limit::All,
            limit_test: Limit::All,
            limit_predict: Limit::All,
            num_sanity_val_steps: 2,
            check_val_every_n_epoch: Some(1),
            val_check_interval: None,
            accumulate_grad_batches: 1,
            gradient_clip_val: None,
            gradient_clip_algorithm: None,
            fast_dev_run: None,
            overfit_batches: None,
            seed: None,
            accelerator: Accelerator::Auto,
            nonfinite: NonFinite::Error,
            log_every_n_steps: 50,
            enable_progress_bar: true,
            enable_model_summary: true,
            max_time: None,
            async_checkpointing: true,
            handle_interrupts: true,
            devices: 1,
            num_nodes: 1,
            precision: crate::Precision::F32True,
            lr_finding: false,
        }
    }
}

/// What a run leaves behind.
#[derive(Clone, Debug, Default)]
pub(crate) struct State {
    pub current_epoch: usize,
    pub global_step: usize,
    pub callback_metrics: BTreeMap<String, f64>,
    pub device: Option<Device>,
}

impl Default for Trainer {
    fn default() -> Self {
        Trainer {
            cfg: Config::default(),
            callbacks: Vec::new(),
            loggers: Vec::new(),
            strategy: Box::new(SingleDevice),
            strategy_set: false,
            profiler: None,
            state: State::default(),
            defaults: Default::default(),
        }
    }
}

macro_rules! option {
    ($(#[$doc:meta])* $name:ident: $ty:ty => $field:ident $(= $wrap:expr)?) => {
        $(#[$doc])*
        pub fn $name(mut self, value: $ty) -> Self {
            self.cfg.$field = option!(@wrap value $(, $wrap)?);
            self
        }
    };
    (@wrap $value:ident) => { $value };
    (@wrap $value:ident, $wrap:expr) => { $wrap($value) };
}

impl Trainer {
    /// A Trainer with Lightning's defaults (but no epoch limit: set `max_epochs` or `max_steps`).
    pub fn new() -> Self {
        Self::default()
    }

    option!(
        /// Stop after this many epochs.
        max_epochs: usize => max_epochs = Some
    );
    option!(
        /// Train at least this many epochs, even when a callback asks to stop.
        min_epochs: usize => min_epochs
    );
    option!(
        /// Stop after this many optimizer steps.
        max_steps: usize => max_steps = Some
    );
    option!(
        /// Train at least this many optimizer steps, even when a callback asks to stop.
        min_steps: usize => min_steps
    );
    option!(
        /// Validation batches run before training, to catch bugs in `validation_step` early (default 2).
        num_sanity_val_steps: usize => num_sanity_val_steps
    );
    option!(
        /// Validate every this many epochs (default 1); `None` validates only at `val_check_interval`.
        check_val_every_n_epoch: Option<usize> => check_val_every_n_epoch
    );
    option!(
        /// Accumulate gradients over this many batches per optimizer step (default 1).
        accumulate_grad_batches: usize => accumulate_grad_batches
    );
    option!(
        /// Clip gradients to this value (by norm unless `gradient_clip_algorithm` says otherwise).
        gradient_clip_val: f64 => gradient_clip_val = Some
    );
    option!(
        /// How `gradient_clip_val` clips.
        gradient_clip_algorithm: GradClipAlgorithm => gradient_clip_algorithm = Some
    );
    option!(
        /// Runs `n` batches of each stage for one epoch, without sanity check, to find bugs fast.
        fast_dev_run: usize => fast_dev_run = Some
    );
    option!(
        /// Seeds torch's generator at the start of every entry point (and, from the seed, before every training
        /// batch), so runs repeat exactly. Torch's generator is process-wide: runs in concurrent threads of one
        /// process draw from it in turn and do not repeat.
        seed: u64 => seed = Some
    );
    option!(
        /// Where to run (default: CUDA when there is one).
        accelerator: Accelerator => accelerator
    );
    option!(
        /// What a NaN or infinite loss does (default: stop with an error).
        nonfinite_loss: NonFinite => nonfinite
    );
    option!(
        /// Send step values to the loggers every this many steps (default 50).
        log_every_n_steps: usize => log_every_n_steps
    );
    option!(
        /// Report progress on stderr (default true): bars on a terminal, plain lines otherwise.
        enable_progress_bar: bool => enable_progress_bar
    );
    option!(
        /// Print the model summary when `fit` starts (default true).
        enable_model_summary: bool => enable_model_summary
    );
    option!(
        /// Write checkpoints on a background thread (default true; Lightning's `AsyncCheckpointIO`). The training
        /// thread still takes the snapshot (every tensor copied to CPU memory) and the hooks' order is unchanged;
        /// the serializing, writing, syncing and the deletion of replaced files happen behind it, one file at a
        /// time. A failed write is reported at the next save or when the stage ends (`fit` returns it), and
        /// leaves the older files whole either way; `false` writes before the asking hook's caller goes on, so
        /// a failure stops the run at once.
        async_checkpointing: bool => async_checkpointing
    );
    option!(
        /// Whether a run handles Ctrl-C (SIGINT) and SIGTERM (default true): the first one stops the run at the
        /// next batch boundary with [`Error::Interrupted`](crate::Error::Interrupted), after `on_exception` (an
        /// [`OnExceptionCheckpoint`](crate::OnExceptionCheckpoint) leaves a checkpoint to resume from) and the
        /// teardown hooks; a second one exits the process at once with the shell's code (130, 143). The handlers
        /// are installed when an entry point starts and the previous ones put back when it returns. `false`
        /// leaves the process's own handling alone, for programs that handle these signals themselves.
        handle_interrupts: bool => handle_interrupts
    );
    option!(
        /// The number of processes per machine (Lightning's `devices`, default 1): with more than one, the run
        /// is data-parallel ([`Ddp`](crate::Ddp) unless another strategy is set). Running the program starts
        /// the other processes of this machine (each re-runs the program: do the same work before `fit` in
        /// each), or joins those torchrun or SLURM started. On CUDA, process `k` of a machine uses GPU `k`.
        devices: usize => devices
    );
    option!(
        /// The numerical precision (Lightning's `precision`, default `"32-true"`): `Precision::Bf16Mixed` runs
        /// the steps under autocast with fp32 weights, `Precision::F16Mixed` adds a gradient scaler,
        /// `*True` casts the weights and batches; from Lightning's strings with `"bf16-mixed".parse()?`. See
        /// [`Precision`](crate::Precision).
        precision: crate::Precision => precision
    );
    option!(
        /// The number of machines (Lightning's `num_nodes`, default 1): more than one needs a launcher that
        /// starts the processes on each machine (torchrun, SLURM's `srun`).
        num_nodes: usize => num_nodes
    );
    option!(
        /// Stop `fit` at the first batch boundary after this much time (Lightning's `max_time`).
        max_time: std::time::Duration => max_time = Some
    );

    /// Training batches per epoch: a count or a fraction.
    pub fn limit_train_batches(mut self, limit: impl Into<Limit>) -> Self {
        self.cfg.limit_train = limit.into();
        self
    }

    /// Validation batches per validation run: a count or a fraction.
    pub fn limit_val_batches(mut self, limit: impl Into<Limit>) -> Self {
        self.cfg.limit_val = limit.into();
        self
    }

    /// Test batches: a count or a fraction.
    pub fn limit_test_batches(mut self, limit: impl Into<Limit>) -> Self {
        self.cfg.limit_test = limit.into();
        self
    }

    /// Prediction batches: a count or a fraction.
    pub fn limit_predict_batches(mut self, limit: impl Into<Limit>) -> Self {
        self.cfg.limit_predict = limit.into();
        self
    }

    /// Validate within the epoch: every `n` training batches (a count), or at this fraction of the epoch.
    pub fn val_check_interval(mut self, interval: impl Into<Limit>) -> Self {
        self.cfg.val_check_interval = Some(interval.into());
        self
    }

    /// Trains (and validates) on the first batches of the training data again and again: a count or a fraction.
    pub fn overfit_batches(mut self, limit: impl Into<Limit>) -> Self {
        self.cfg.overfit_batches = Some(limit.into());
        self
    }

    /// Times every hook and loop section and prints Lightning's SimpleProfiler table when each stage ends
    /// (Lightning's `Trainer(profiler="simple")`).
    pub fn profiler(mut self, profiler: SimpleProfiler) -> Self {
        self.profiler = Some(profiler);
        self
    }

    /// Adds a callback; callbacks run in the order added, before the module's hooks.
    pub fn callback(mut self, callback: impl Callback + 'static) -> Self {
        self.callbacks.push(Box::new(callback));
        self
    }

    /// Adds a logger; `logger(false)` turns off the default loggers (Lightning's `logger=False`), which a Trainer
    /// given no logger writes to `default_root_dir/lightning_logs/version_N/` (TensorBoard and CSV).
    pub fn logger(mut self, logger: impl LoggerChoice) -> Self {
        logger.apply(&mut self);
        self
    }

    /// Replaces the strategy (how processes and devices cooperate): one device by default, [`Ddp`](crate::Ddp)
    /// when `devices` or `num_nodes` asks for several processes.
    pub fn strategy(mut self, strategy: impl Strategy + 'static) -> Self {
        self.strategy = Box::new(strategy);
        self.strategy_set = true;
        self
    }

    /// Trains `module` on `train` (or its `train_dataloader`), validating on `val` (or its `val_dataloader`).
    ///
    /// `train` is a [`Loader`], `None` (the module's `train_dataloader` gives it), or a data module (`&mut data`,
    /// Lightning's `datamodule=`), which then gives the training and validation loaders (`val` must be `None`).
    /// `val` is a loader, several ([`Loaders`](crate::Loaders), a `Vec` or an array of them), or `None`.
    pub fn fit<'d, M: HasTrainingStep + HasConfigureOptimizers + 'static>(
        &mut self,
        module: &mut M,
        train: impl Into<DataSource<'d, M::Batch>>,
        val: impl Into<DataSource<'d, M::Batch>>,
    ) -> Result<()> {
        let (mut train, val) = (train.into(), val.into());
        let datamodule = train.take_datamodule();
        self.run_stage(module, datamodule, Stage::Fit, move |run| run.fit_resuming(train, val, None))
    }

    /// Resumes training from a checkpoint (Lightning's `fit(..., ckpt_path=...)`): the weights, the optimizers' and
    /// schedulers' state, the callbacks' state, the position in the epoch and the seed come back, and the run goes
    /// on as if it had never stopped. `ckpt_path` is a file, or `"last"` (the newest last checkpoint of the
    /// Trainer's `ModelCheckpoint`s, so that re-running a killed job continues it; with none yet, the fit starts
    /// afresh, as Lightning's does), or `"best"`. The file is read and checked before any hook runs.
    pub fn fit_from<'d, M: HasTrainingStep + HasConfigureOptimizers + 'static>(
        &mut self,
        module: &mut M,
        train: impl Into<DataSource<'d, M::Batch>>,
        val: impl Into<DataSource<'d, M::Batch>>,
        ckpt_path: impl Into<CkptPath>,
    ) -> Result<()> {
        let which = ckpt_path.into();
        let Some(path) = self.resolve_ckpt_path(&which)? else {
            eprintln!("lightning: ckpt_path = \"last\" found no checkpoint: training starts from scratch");
            return self.fit(module, train, val);
        };
        let checkpoint = crate::Checkpoint::read(&path)?;
        let (mut train, val) = (train.into(), val.into());
        let datamodule = train.take_datamodule();
        self.run_stage(module, datamodule, Stage::Fit, move |run| {
            run.fit_resuming(train, val, Some((path, checkpoint)))
        })
    }

    /// The checkpoint `ckpt_path` names, read, for an evaluation stage.
    fn eval_checkpoint(&self, ckpt_path: CkptPath) -> Result<(std::path::PathBuf, crate::Checkpoint)> {
        let path = self.resolve_ckpt_path(&ckpt_path)?.ok_or_else(|| {
            crate::Error::Config(
                "ckpt_path = \"last\": the Trainer's ModelCheckpoint callbacks have no last checkpoint (add one with \
                 `save_last(true)`, or pass a checkpoint's path)"
                    .into(),
            )
        })?;
        let checkpoint = crate::Checkpoint::read(&path)?;
        Ok((path, checkpoint))
    }

    /// Runs one validation epoch on `data` (a loader, several, `None` for the module's `val_dataloader`, or a
    /// data module); returns the epoch's logged metrics as Lightning does: the epoch values sent to the loggers (a
    /// value logged per step and per epoch as `<name>_epoch`; `logger(false)` values and step values left out;
    /// with several loaders, the keys of each carry its `/dataloader_idx_N`). Every value is in
    /// `callback_metrics`.
    pub fn validate<'d, M: HasValidationStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut data = data.into();
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Validate, move |run| {
            run.evaluate_stage(Evaluation::Validation, data, None)
        })
    }

    /// [`validate`](Self::validate) with the weights of a checkpoint (Lightning's `validate(..., ckpt_path=...)`):
    /// a file, `"best"` or `"last"` (see [`CkptPath`]). The module's `on_load_checkpoint` runs, then the weights
    /// load, after `setup` and `configure_model`.
    pub fn validate_from<'d, M: HasValidationStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
        ckpt_path: impl Into<CkptPath>,
    ) -> Result<BTreeMap<String, f64>> {
        let (mut data, from) = (data.into(), Some(self.eval_checkpoint(ckpt_path.into())?));
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Validate, move |run| {
            run.evaluate_stage(Evaluation::Validation, data, from)
        })
    }

    /// Runs one test epoch on `data` (as [`validate`](Self::validate) takes it; `None`: the module's
    /// `test_dataloader`); returns the epoch's logged metrics, as [`validate`](Self::validate) does.
    pub fn test<'d, M: HasTestStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
    ) -> Result<BTreeMap<String, f64>> {
        let mut data = data.into();
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Test, move |run| run.evaluate_stage(Evaluation::Test, data, None))
    }

    /// [`test`](Self::test) with the weights of a checkpoint (Lightning's `test(..., ckpt_path=...)`): a file,
    /// `"best"` or `"last"` (see [`CkptPath`]).
    pub fn test_from<'d, M: HasTestStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
        ckpt_path: impl Into<CkptPath>,
    ) -> Result<BTreeMap<String, f64>> {
        let (mut data, from) = (data.into(), Some(self.eval_checkpoint(ckpt_path.into())?));
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Test, move |run| run.evaluate_stage(Evaluation::Test, data, from))
    }

    /// Runs `predict_step` over `data` (as [`validate`](Self::validate) takes it; `None`: the module's
    /// `predict_dataloader`); returns every batch's prediction, in order (with several loaders, the first
    /// loader's predictions, then the next one's: `predict_step` is told each batch's `dataloader_idx`).
    pub fn predict<'d, M: HasPredictStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
    ) -> Result<Vec<M::Prediction>> {
        let mut data = data.into();
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Predict, move |run| run.predict_stage(data, None))
    }

    /// [`predict`](Self::predict) with the weights of a checkpoint (Lightning's `predict(..., ckpt_path=...)`):
    /// a file, `"best"` or `"last"` (see [`CkptPath`]).
    pub fn predict_from<'d, M: HasPredictStep + 'static>(
        &mut self,
        module: &mut M,
        data: impl Into<DataSource<'d, M::Batch>>,
        ckpt_path: impl Into<CkptPath>,
    ) -> Result<Vec<M::Prediction>> {
        let (mut data, from) = (data.into(), Some(self.eval_checkpoint(ckpt_path.into())?));
        let datamodule = data.take_datamodule();
        self.run_stage(module, datamodule, Stage::Predict, move |run| run.predict_stage(data, from))
    }

    /// The metrics of the last run, as callbacks saw them at its end (Lightning's `callback_metrics`).
    pub fn callback_metrics(&self) -> &BTreeMap<String, f64> {
        &self.state.callback_metrics
    }

    /// The epoch the last run ended in (the number of finished epochs after `fit`).
    pub fn current_epoch(&self) -> usize {
        self.state.current_epoch
    }

    /// The optimizer steps taken.
    pub fn global_step(&self) -> usize {
        self.state.global_step
    }

    /// The device the last run used.
    pub fn device(&self) -> Option<Device> {
        self.state.device
    }
}
