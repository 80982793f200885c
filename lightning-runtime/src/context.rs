//! What a hook can see of the Trainer and do through it: Lightning's `self.log` and `self.trainer`.

use std::fmt;

use tch::{Device, Tensor};

use crate::log_call::LogCall;
use crate::metrics::{LogOptions, Metrics};
use crate::optim::{LrScheduler, Optimizer};

/// The entry point that is running; `setup` and `teardown` receive it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// `Trainer::fit`
    Fit,
    /// `Trainer::validate`
    Validate,
    /// `Trainer::test`
    Test,
    /// `Trainer::predict`
    Predict,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Fit => "fit",
            Stage::Validate => "validate",
            Stage::Test => "test",
            Stage::Predict => "predict",
        })
    }
}

/// Where `ctx.log` may be called in a hook (Lightning's `_FxValidator` table, from the hook catalogue).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogRule {
    /// Logging is an error.
    Never,
    /// Per step by default; per epoch allowed.
    StepDefault,
    /// Per epoch by default; per step allowed.
    EpochDefault,
    /// Per epoch only.
    EpochOnly,
}

/// The hook that is running.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookInfo {
    /// Its name.
    pub name: &'static str,
    /// Where it may log.
    pub log: LogRule,
}

impl HookInfo {
    /// Code of the runtime's own that is not a hook (a loader fetching a batch, the Trainer itself): named in
    /// panic reports, no logging.
    pub(crate) const fn runtime(name: &'static str) -> Self {
        HookInfo { name, log: LogRule::Never }
    }
}

/// The context every hook may take as its last parameter (`ctx: &mut Ctx`): logging, the Trainer's counters,
/// the mode, and in manual optimization the optimizers.
///
/// ```
/// use lightning::Ctx;
/// let mut ctx = Ctx::new(tch::Device::Cpu);
/// ctx.log("loss", 0.25);
/// assert_eq!(ctx.current_epoch(), 0);
/// assert_eq!(ctx.metric("loss"), Some(0.25));
/// ```
pub struct Ctx {
    pub(crate) device: Device,
    pub(crate) stage: Option<Stage>,
    pub(crate) training: bool,
    pub(crate) sanity_checking: bool,
    /// The epoch, the global step and the epoch's training batches done, as hooks see them: the loops' progress,
    /// copied here by the dispatcher before every hook call.
    pub(crate) current_epoch: usize,
    pub(crate) global_step: usize,
    pub(crate) batches_done: usize,
    pub(crate) batch_size: usize,
    /// The running loader's index while an evaluation or prediction stage with several loaders runs one.
    pub(crate) dataloader_idx: Option<usize>,
    pub(crate) hook: HookInfo,
    /// The first logging call a hook made where logging is not allowed; the dispatcher turns it into an error.
    pub(crate) log_error: Option<String>,
    pub(crate) metrics: Metrics,
    pub(crate) optimizers: Vec<Optimizer>,
    pub(crate) schedulers: Vec<LrScheduler>,
    pub(crate) should_stop: bool,
    /// The seed the run's randomness is drawn from.
    pub(crate) seed: u64,
    pub(crate) pending_saves: Vec<SaveRequest>,
    /// The number of batches the running loop will run, when known (for progress reporting).
    pub(crate) total_batches: Option<usize>,
    /// When the entry point started (for `max_time`).
    pub(crate) started: std::time::Instant,
    pub(crate) fast_dev_run: bool,
    /// The epochs `fit` runs: the Trainer's `max_epochs` (1 under `fast_dev_run`), which the fit loop stops on.
    /// A callback may add to it in `on_fit_start` (`StochasticWeightAveraging`'s batch-norm epoch, as Lightning's
    /// `fit_loop.max_epochs += 1`) and take it back in `on_train_end`.
    pub(crate) max_epochs: Option<usize>,
    /// Set by a callback in `on_train_epoch_start` (`StochasticWeightAveraging`'s batch-norm epoch): the epoch's
    /// batches run `training_step` without gradients, and nothing else of the optimization step (no zero_grad,
    /// backward, clipping, optimizer or scheduler step), as Lightning's `fit_loop._skip_backward`. The fit loop
    /// clears it when the epoch ends.
    pub(crate) forward_only: bool,
    /// Whether the module optimizes automatically (what a forward-only epoch needs).
    pub(crate) automatic_optimization: bool,
    /// The processes of a distributed run (None in one process).
    pub(crate) process_group: Option<crate::distributed::ProcessGroup>,
    pub(crate) local_rank: usize,
    /// What averages gradients over the processes during backward (distributed training only).
    pub(crate) gradient_sync: Option<crate::distributed::GradientSync>,
    /// A `sync_dist` average that could not reach the other processes: the hook's caller returns it.
    pub(crate) sync_error: Option<crate::Error>,
    /// The gradient scaler of a `16-mixed` run.
    pub(crate) scaler: Option<crate::precision::SharedScaler>,
    /// The callbacks, lent by the dispatcher while a manual-optimization step runs (`ctx.manual_backward`).
    pub(crate) lent_callbacks: Option<Vec<Box<dyn crate::Callback>>>,
    /// Parameters `toggle_optimizer` stopped from requiring gradients, until `untoggle_optimizer`.
    pub(crate) toggled: Vec<Tensor>,
    /// The run's loggers (rank 0's; none on the other processes), which the Trainer sends logged values to and
    /// hooks reach through `loggers()`.
    pub(crate) loggers: Vec<Box<dyn crate::loggers::Logger>>,
    /// The Trainer's `default_root_dir` (the working directory unless set).
    pub(crate) default_root_dir: std::path::PathBuf,
}

/// A checkpoint a hook asked for; the Trainer writes it when the hook returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SaveRequest {
    pub path: std::path::PathBuf,
    /// Files to delete once the new checkpoint is safely written.
    pub then_remove: Vec<std::path::PathBuf>,
}

impl fmt::Debug for Ctx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ctx")
            .field("device", &self.device)
            .field("stage", &self.stage)
            .field("hook", &self.hook.name)
            .field("current_epoch", &self.current_epoch)
            .field("global_step", &self.global_step)
            .finish_non_exhaustive()
    }
}

/// A value `Ctx::log` accepts: a scalar tensor (detached, and kept on its device until it is read) or a number
/// (`f64`, `f32`, `usize`).
pub trait LogValue {
    /// The value as the metrics store keeps it.
    #[doc(hidden)]
    fn into_logged(self) -> Logged;
}

/// A logged value: a number, or a detached scalar tensor not yet read back from its device. (The runtime's own:
/// reachable only where `LogValue` needs it.)
#[doc(hidden)]
#[derive(Debug)]
pub enum Logged {
    /// A plain number.
    Number(f64),
    /// A detached scalar tensor.
    Tensor(Tensor),
}

impl LogValue for f64 {
    fn into_logged(self) -> Logged {
        Logged::Number(self)
    }
}

impl LogValue for f32 {
    fn into_logged(self) -> Logged {
        Logged::Number(f64::from(self))
    }
}

impl LogValue for usize {
    fn into_logged(self) -> Logged {
        Logged::Number(self as f64)
    }
}

/// A logged tensor without its graph (which would otherwise live until the value is read): PyTorch's `.data`,
/// made without a dispatcher call (`detach` is three of them, a measurable share of a small model's step).
fn detached(value: &Tensor) -> Tensor {
    crate::kernels::variable_data(value).unwrap_or_else(|_| value.detach())
}

impl LogValue for &Tensor {
    fn into_logged(self) -> Logged {
        Logged::Tensor(detached(self))
    }
}

impl LogValue for Tensor {
    fn into_logged(self) -> Logged {
        Logged::Tensor(detached(&self))
    }
}

impl Ctx {
    /// A context for a run on `device`, outside any hook.
    pub fn new(device: Device) -> Self {
        Ctx {
            device,
            stage: None,
            training: true,
            sanity_checking: false,
            current_epoch: 0,
            global_step: 0,
            batches_done: 0,
            batch_size: 1,
            dataloader_idx: None,
            hook: HookInfo { name: "(none)", log: LogRule::StepDefault },
            log_error: None,
            metrics: Metrics::default(),
            optimizers: Vec::new(),
            schedulers: Vec::new(),
            should_stop: false,
            seed: 0,
            pending_saves: Vec::new(),
            total_batches: None,
            started: std::time::Instant::now(),
            fast_dev_run: false,
            max_epochs: None,
            forward_only: false,
            automatic_optimization: true,
            process_group: None,
            local_rank: 0,
            gradient_sync: None,
            sync_error: None,
            scaler: None,
            lent_callbacks: None,
            toggled: Vec::new(),
            loggers: Vec::new(),
            default_root_dir: std::path::PathBuf::from("."),
        }
    }

    /// Logs `value` under `name` with the hook's defaults (per step in training hooks, reduced over the epoch
    /// in validation and test hooks). The returned handle sets Lightning's other options before the value is
    /// recorded, when the handle is dropped:
    ///
    /// ```
    /// # let mut ctx = lightning::Ctx::new(tch::Device::Cpu);
    /// # let loss = tch::Tensor::from(0.5);
    /// ctx.log("train_loss", &loss).prog_bar(true).on_epoch(true);
    /// ```
    ///
    /// Logging in a hook where Lightning forbids it (anything during `predict`, `setup`, the `configure_*`
    /// hooks, ...) ends the run with an error naming the hook.
    pub fn log<'c>(&'c mut self, name: &'c str, value: impl LogValue) -> LogCall<'c> {
        LogCall {
            ctx: self,
            // Borrowed: the metrics store copies the name only the first time it sees it, not every step.
            name: Some(name),
            value: Some(value.into_logged()),
            options: LogOptions::default(),
        }
    }

    pub(crate) fn record(&mut self, name: &str, value: Logged, options: LogOptions) {
        if self.sanity_checking {
            return;
        }
        let (on_step, on_epoch) = match self.resolve(name, options) {
            Ok(placement) => placement,
            Err(message) => {
                self.log_error.get_or_insert(message);
                return;
            }
        };
        if let Logged::Tensor(t) = &value {
            // A shape is metadata: no device sync.
            if t.numel() != 1 {
                self.log_error.get_or_insert(format!(
                    "`ctx.log(\"{name}\", ..)` in `{}`: the value is a tensor of shape {:?}, but a logged value must \
                     be a single number: reduce it first (e.g. `.mean(Kind::Float)`), or log its parts under names \
                     of their own",
                    self.hook.name,
                    t.size()
                ));
                return;
            }
        }
        let batch_size = options.batch_size.unwrap_or(self.batch_size);
        // Lightning's key for a value logged while one of several loaders runs.
        let suffixed = match (self.dataloader_idx, options.add_dataloader_idx) {
            (Some(index), true) => Some(format!("{name}/dataloader_idx_{index}")),
            _ => None,
        };
        let name = suffixed.as_deref().unwrap_or(name);
        let value = match (&self.process_group, options.sync_dist, on_step) {
            // A step value is averaged over the processes when it is logged (Lightning's `sync_dist`); epoch
            // values are reduced once, when the epoch ends.
            (Some(group), true, true) => match crate::metrics::mean_over(group, value) {
                Ok(value) => value,
                Err(error) => {
                    self.sync_error.get_or_insert(error);
                    return;
                }
            },
            _ => value,
        };
        self.metrics.record(name, value, on_step, on_epoch, batch_size, options);
    }

    /// Where a value goes (on_step, on_epoch), or why it may not be logged here.
    fn resolve(&self, name: &str, options: LogOptions) -> Result<(bool, bool), String> {
        let hook = self.hook.name;
        if self.stage == Some(Stage::Predict) {
            return Err(format!("`ctx.log(\"{name}\", ..)` in `{hook}`: logging is not supported during predict"));
        }
        let (default_step, default_epoch) = match self.hook.log {
            LogRule::Never => {
                return Err(format!(
                    "`ctx.log(\"{name}\", ..)` in `{hook}`: Lightning does not allow logging in this hook"
                ));
            }
            LogRule::StepDefault => (true, false),
            LogRule::EpochDefault | LogRule::EpochOnly => (false, true),
        };
        let on_step = options.on_step.unwrap_or(default_step);
        let on_epoch = options.on_epoch.unwrap_or(default_epoch);
        if self.hook.log == LogRule::EpochOnly && on_step {
            return Err(format!("`ctx.log(\"{name}\", ..)` in `{hook}`: this hook only allows `on_step(false)`"));
        }
        if !on_step && !on_epoch {
            return Err(format!("`ctx.log(\"{name}\", ..)` in `{hook}`: one of `on_step` and `on_epoch` must be true"));
        }
        Ok((on_step, on_epoch))
    }

    /// The current value of a metric: the last value logged per step, or the epoch's reduced value once the
    /// epoch has ended. Reads the value back from its device.
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name)
    }

    /// The metrics logged with `prog_bar(true)`, with their current values.
    pub fn progress_bar_metrics(&self) -> Vec<(String, f64)> {
        self.metrics.prog_bar()
    }

    /// The epoch that is running, from 0.
    pub fn current_epoch(&self) -> usize {
        self.current_epoch
    }

    /// The number of optimizer steps taken so far.
    pub fn global_step(&self) -> usize {
        self.global_step
    }

    /// The epochs `fit` runs (Lightning's `trainer.max_epochs`), `None` when only `max_steps` bounds it. While a
    /// [`StochasticWeightAveraging`](crate::StochasticWeightAveraging) of a model with batch norm runs, one more
    /// than the Trainer's, for the epoch that recomputes the statistics.
    pub fn max_epochs(&self) -> Option<usize> {
        self.max_epochs
    }

    /// The device the module runs on.
    pub fn device(&self) -> Device {
        self.device
    }

    /// The entry point that is running, if any.
    pub fn stage(&self) -> Option<Stage> {
        self.stage
    }

    /// The hook that is running (the innermost one, when a hook calls another).
    pub fn hook(&self) -> &'static str {
        self.hook.name
    }

    /// Whether this is the sanity check's validation run (whose logged values are discarded).
    pub fn sanity_checking(&self) -> bool {
        self.sanity_checking
    }

    /// Whether the module is in training mode: pass it to tch's `forward_t` (dropout, batch norm).
    pub fn is_training(&self) -> bool {
        self.training
    }

    /// Switches training mode on or off (what Lightning's `model.train()` / `model.eval()` do).
    pub fn set_training(&mut self, training: bool) {
        self.training = training;
    }

    /// Asks the Trainer to stop at the end of this epoch (once `min_epochs`/`min_steps` are reached).
    pub fn request_stop(&mut self) {
        self.should_stop = true;
    }

    /// Asks the Trainer to write a checkpoint of the whole run to `path` (atomically: a crash leaves the previous
    /// file at `path` whole). The state is captured when the hook has returned on every callback (or on the
    /// module); asked for while a training batch runs (`training_step`, the backward and optimizer hooks), once
    /// the batch is done; asked for in `on_train_epoch_end`, once all of that hook has run. A run resumed from it
    /// goes on exactly from there. The file is written behind the training thread unless
    /// [`Trainer::async_checkpointing`](crate::Trainer) is off, and is on disk when the stage (`fit`,
    /// `validate`, ...) returns.
    pub fn save_checkpoint(&mut self, path: impl Into<std::path::PathBuf>) {
        self.pending_saves.push(SaveRequest { path: path.into(), then_remove: Vec::new() });
    }

    /// Like [`Ctx::save_checkpoint`], then deletes `old` files once the new checkpoint is written.
    pub fn save_checkpoint_replacing(&mut self, path: impl Into<std::path::PathBuf>, old: Vec<std::path::PathBuf>) {
        self.pending_saves.push(SaveRequest { path: path.into(), then_remove: old });
    }

    /// The number of batches the running loop (training epoch, validation, test or predict) will run, if known;
    /// with several evaluation loaders, the running loader's.
    pub fn total_batches(&self) -> Option<usize> {
        self.total_batches
    }

    /// Which loader is running, while a validation, test or predict stage given several runs their batches
    /// (`None` with one loader, and in the epoch hooks). Values logged meanwhile get `/dataloader_idx_N`.
    pub fn dataloader_idx(&self) -> Option<usize> {
        self.dataloader_idx
    }

    /// Whether this is a `fast_dev_run` (checkpointing and logging callbacks should do nothing).
    pub fn fast_dev_run(&self) -> bool {
        self.fast_dev_run
    }

    /// Training batches of the current epoch already run.
    pub fn batches_done(&self) -> usize {
        self.batches_done
    }

    /// Every metric's current value (Lightning's `trainer.callback_metrics`); reads values back from the device.
    pub fn callback_metrics(&self) -> std::collections::BTreeMap<String, f64> {
        self.metrics.snapshot()
    }

    /// Whether a stop was requested.
    pub fn should_stop(&self) -> bool {
        self.should_stop
    }

    /// The optimizers, for manual optimization (empty in automatic optimization while a step runs).
    pub fn optimizers(&mut self) -> &mut [Optimizer] {
        &mut self.optimizers
    }

    /// The learning-rate schedulers, for manual optimization.
    pub fn lr_schedulers(&mut self) -> &mut [LrScheduler] {
        &mut self.schedulers
    }

    /// This process's rank among all processes of the run (0 in a single-process run).
    pub fn global_rank(&self) -> usize {
        self.process_group.as_ref().map_or(0, |g| g.rank())
    }

    /// This process's rank on its machine.
    pub fn local_rank(&self) -> usize {
        self.local_rank
    }

    /// The number of processes in the run (1 in a single-process run).
    pub fn world_size(&self) -> usize {
        self.process_group.as_ref().map_or(1, |g| g.size())
    }

    /// Whether this is the process that writes checkpoints and logs (rank 0).
    pub fn is_global_zero(&self) -> bool {
        self.global_rank() == 0
    }

    /// The processes of a distributed run, for collectives of your own (`None` in a single-process run).
    pub fn process_group(&self) -> Option<&crate::distributed::ProcessGroup> {
        self.process_group.as_ref()
    }

    /// Every process's `tensor`, stacked along a new first dimension in rank order (Lightning's
    /// `self.all_gather`); in a single-process run, `tensor` with a first dimension of 1.
    ///
    /// ```
    /// # let ctx = lightning::Ctx::new(tch::Device::Cpu);
    /// let gathered = ctx.all_gather(&tch::Tensor::from_slice(&[1.0f32, 2.0]))?;
    /// assert_eq!(gathered.size(), vec![1, 2]);
    /// # Ok::<(), lightning::Error>(())
    /// ```
    ///
    /// # Errors
    /// When a process cannot be reached or the shapes differ between processes.
    pub fn all_gather(&self, tensor: &Tensor) -> crate::Result<Tensor> {
        let tensor = tensor.detach().f_contiguous()?;
        let parts = match &self.process_group {
            Some(group) => group.all_gather(&tensor)?,
            None => vec![tensor],
        };
        Ok(Tensor::f_stack(&parts, 0)?)
    }
}
