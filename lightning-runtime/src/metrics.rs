//! The values hooks log: kept as detached tensors on their device, reduced over the epoch with tensor
//! operations, and read back (a device sync) only when someone needs the number: a logger flush, the end of an
//! epoch, or an explicit read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::context::Logged;
use crate::distributed::{ProcessGroup, ReduceOp};

/// `value` averaged over the processes of `group` (a step value logged with `sync_dist`).
pub(crate) fn mean_over(group: &ProcessGroup, value: Logged) -> crate::Result<Logged> {
    let tensor = match value {
        Logged::Number(x) => Tensor::from(x),
        Logged::Tensor(t) => t.f_to_kind(tch::Kind::Double)?.f_contiguous()?,
    };
    if tensor.numel() != 1 {
        return Err(crate::Error::Config(format!(
            "only a single number can be averaged, not shape {:?}",
            tensor.size()
        )));
    }
    let tensor = tensor.f_detach_copy()?;
    group.all_reduce(&tensor, ReduceOp::Mean)?;
    Ok(Logged::Tensor(tensor))
}

/// Lightning's `self.log` keyword arguments.
#[derive(Clone, Copy, Debug)]
pub struct LogOptions {
    pub prog_bar: bool,
    pub on_step: Option<bool>,
    pub on_epoch: Option<bool>,
    pub logger: bool,
    pub batch_size: Option<usize>,
    pub sync_dist: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions { prog_bar: false, on_step: None, on_epoch: None, logger: true, batch_size: None, sync_dist: false }
    }
}

/// Which loop logged a value: each loop reduces its own values at the end of its epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    Train,
    Validation,
    Test,
}

struct Entry {
    name: String,
    scope: Scope,
    on_step: bool,
    on_epoch: bool,
    prog_bar: bool,
    logger: bool,
    /// Whether the epoch value is summed over the processes of a distributed run.
    sync_dist: bool,
    /// The last value logged per step, and whether a logger has seen it yet.
    step: Option<Logged>,
    step_unsent: bool,
    /// The batch-size-weighted sum over the epoch so far, and the weights.
    epoch_sum: Option<Logged>,
    epoch_weight: f64,
    /// The reduced value of the last finished epoch.
    epoch_value: Option<f64>,
}

fn read(value: &Logged) -> f64 {
    match value {
        Logged::Number(x) => *x,
        Logged::Tensor(t) => t.f_double_value(&[]).unwrap_or(f64::NAN),
    }
}

fn weighted(value: &Logged, weight: f64) -> Logged {
    match value {
        Logged::Number(x) => Logged::Number(x * weight),
        Logged::Tensor(t) => Logged::Tensor(
            t.f_to_kind(tch::Kind::Double)
                .and_then(|t| t.f_mul_scalar(weight))
                .unwrap_or_else(|_| Tensor::from(f64::NAN)),
        ),
    }
}

fn add(sum: Logged, value: Logged) -> Logged {
    match (sum, value) {
        (Logged::Number(a), Logged::Number(b)) => Logged::Number(a + b),
        (Logged::Tensor(a), Logged::Tensor(b)) => {
            Logged::Tensor(a.f_add(&b.f_to_device(a.device()).unwrap_or(b)).unwrap_or_else(|_| Tensor::from(f64::NAN)))
        }
        (Logged::Tensor(a), Logged::Number(b)) | (Logged::Number(b), Logged::Tensor(a)) => {
            Logged::Tensor(a.f_add_scalar(b).unwrap_or_else(|_| Tensor::from(f64::NAN)))
        }
    }
}

/// A training metric's partial epoch, as a checkpoint keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricState {
    name: String,
    on_step: bool,
    on_epoch: bool,
    prog_bar: bool,
    logger: bool,
    #[serde(with = "crate::json_float")]
    epoch_sum: f64,
    #[serde(with = "crate::json_float")]
    epoch_weight: f64,
}

/// Every value logged in a run.
#[derive(Default)]
pub struct Metrics {
    entries: Vec<Entry>,
    pub scope: Scope,
}

impl Metrics {
    pub fn record(
        &mut self,
        name: &str,
        value: Logged,
        on_step: bool,
        on_epoch: bool,
        batch_size: usize,
        options: LogOptions,
    ) {
        let (prog_bar, logger, sync_dist) = (options.prog_bar, options.logger, options.sync_dist);
        let scope = self.scope;
        // A handful of metrics: a linear scan beats hashing the name.
        let index = match self.entries.iter().position(|e| e.name == name) {
            Some(index) => index,
            None => {
                self.entries.push(Entry {
                    name: name.to_string(),
                    scope,
                    on_step,
                    on_epoch,
                    prog_bar,
                    logger,
                    sync_dist,
                    step: None,
                    step_unsent: false,
                    epoch_sum: None,
                    epoch_weight: 0.0,
                    epoch_value: None,
                });
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[index];
        (entry.scope, entry.on_step, entry.on_epoch, entry.prog_bar, entry.logger, entry.sync_dist) =
            (scope, on_step, on_epoch, prog_bar, logger, sync_dist);
        if on_epoch {
            let weight = batch_size.max(1) as f64;
            let part = weighted(&value, weight);
            entry.epoch_sum = Some(match entry.epoch_sum.take() {
                Some(sum) => add(sum, part),
                None => part,
            });
            entry.epoch_weight += weight;
        }
        if on_step {
            entry.step = Some(value);
            entry.step_unsent = true;
        }
    }

    /// The current value of `name`: the epoch's reduced value once its epoch has ended, else the last step value.
    pub fn get(&self, name: &str) -> Option<f64> {
        let entry = self.entries.iter().find(|e| e.name == name)?;
        match (&entry.step, entry.epoch_value) {
            (Some(step), None) => Some(read(step)),
            (_, Some(epoch)) => Some(epoch),
            (None, None) => entry.epoch_sum.as_ref().map(|sum| read(sum) / entry.epoch_weight),
        }
    }

    /// Ends the epoch of `scope`'s loop: reduces its epoch values; returns what the loggers should receive.
    /// Sums the epoch sums and weights of the values logged with `sync_dist` over the processes, in one
    /// collective (by name, so every process sends them in the same order), before `end_epoch` divides them.
    pub fn sync_epoch(&mut self, scope: Scope, group: &ProcessGroup) -> crate::Result<()> {
        let mut synced: Vec<&mut Entry> =
            self.entries.iter_mut().filter(|e| e.scope == scope && e.sync_dist && e.epoch_sum.is_some()).collect();
        if synced.is_empty() {
            return Ok(());
        }
        synced.sort_by(|a, b| a.name.cmp(&b.name));
        let mut values = Vec::with_capacity(synced.len() * 2);
        for entry in &synced {
            values.push(entry.epoch_sum.as_ref().map_or(0.0, read));
            values.push(entry.epoch_weight);
        }
        let totals = Tensor::from_slice(&values);
        group.all_reduce(&totals, ReduceOp::Sum)?;
        let totals = Vec::<f64>::try_from(&totals)?;
        for (entry, pair) in synced.iter_mut().zip(totals.chunks(2)) {
            entry.epoch_sum = Some(Logged::Number(pair[0]));
            entry.epoch_weight = pair[1];
        }
        Ok(())
    }

    pub fn end_epoch(&mut self, scope: Scope) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.scope == scope) {
            if let Some(sum) = entry.epoch_sum.take() {
                let value = read(&sum) / entry.epoch_weight;
                entry.epoch_value = Some(value);
                entry.epoch_weight = 0.0;
                if entry.logger {
                    let key = if entry.on_step { format!("{}_epoch", entry.name) } else { entry.name.clone() };
                    out.push((key, value));
                }
            }
        }
        out
    }

    /// Starts a new epoch of `scope`'s loop: step values from now on are what `get` returns.
    pub fn start_epoch(&mut self, scope: Scope) {
        for entry in self.entries.iter_mut().filter(|e| e.scope == scope) {
            entry.epoch_value = None;
            entry.epoch_sum = None;
            entry.epoch_weight = 0.0;
        }
    }

    /// The step values loggers have not seen yet (read back from the device now).
    pub fn take_step_values(&mut self) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.step_unsent && e.logger) {
            entry.step_unsent = false;
            if let Some(step) = &entry.step {
                let key = if entry.on_epoch { format!("{}_step", entry.name) } else { entry.name.clone() };
                out.push((key, read(step)));
            }
        }
        out
    }

    /// Whether a step value is waiting for the loggers.
    pub fn has_unsent_steps(&self) -> bool {
        self.entries.iter().any(|e| e.step_unsent && e.logger)
    }

    /// Every metric's current value (Lightning's `trainer.callback_metrics`); a value logged both per step and
    /// per epoch also appears as `<name>_step` and (once its epoch has ended) `<name>_epoch`, as in Lightning.
    pub fn snapshot(&self) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for entry in &self.entries {
            if let Some(value) = self.get(&entry.name) {
                out.insert(entry.name.clone(), value);
            }
            if entry.on_step && entry.on_epoch {
                if let Some(step) = &entry.step {
                    out.insert(format!("{}_step", entry.name), read(step));
                }
                if let Some(epoch) = entry.epoch_value {
                    out.insert(format!("{}_epoch", entry.name), epoch);
                }
            }
        }
        out
    }

    /// The training epoch's partial sums (read back from the device), for a checkpoint.
    pub fn export(&self) -> Vec<MetricState> {
        self.entries
            .iter()
            .filter(|e| e.scope == Scope::Train && e.epoch_sum.is_some())
            .map(|e| MetricState {
                name: e.name.clone(),
                on_step: e.on_step,
                on_epoch: e.on_epoch,
                prog_bar: e.prog_bar,
                logger: e.logger,
                epoch_sum: e.epoch_sum.as_ref().map_or(0.0, read),
                epoch_weight: e.epoch_weight,
            })
            .collect()
    }

    /// Restores the partial sums `export` saved.
    pub fn import(&mut self, states: &[MetricState]) {
        for state in states {
            self.entries.retain(|e| e.name != state.name);
            self.entries.push(Entry {
                name: state.name.clone(),
                scope: Scope::Train,
                on_step: state.on_step,
                on_epoch: state.on_epoch,
                prog_bar: state.prog_bar,
                logger: state.logger,
                sync_dist: false,
                step: None,
                step_unsent: false,
                epoch_sum: Some(Logged::Number(state.epoch_sum)),
                epoch_weight: state.epoch_weight,
                epoch_value: None,
            });
        }
    }

    /// The metrics shown in the progress bar.
    pub fn prog_bar(&self) -> Vec<(String, f64)> {
        self.entries
            .iter()
            .filter(|e| e.prog_bar)
            .filter_map(|e| self.get(&e.name).map(|v| (e.name.clone(), v)))
            .collect()
    }
}
