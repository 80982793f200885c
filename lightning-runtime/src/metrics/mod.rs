//! The values hooks log: kept as detached tensors on their device, reduced over the epoch with tensor
//! operations, and read back (a device sync) only when someone needs the number: a logger flush, the end of an
//! epoch, or an explicit read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tch::Tensor;

mod reduce;

pub use reduce::ReduceFx;

use crate::context::Logged;
use crate::distributed::{ProcessGroup, ReduceOp};
use crate::json_float::JsonF64;
use reduce::{read, EpochState};

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
    pub reduce_fx: ReduceFx,
    pub add_dataloader_idx: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            prog_bar: false,
            on_step: None,
            on_epoch: None,
            logger: true,
            batch_size: None,
            sync_dist: false,
            reduce_fx: ReduceFx::Mean,
            add_dataloader_idx: true,
        }
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
    /// How the epoch's values are reduced, and the epoch so far.
    reduce: ReduceFx,
    epoch: EpochState,
    /// The reduced value of the last finished epoch.
    epoch_value: Option<f64>,
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
    /// `reduce_fx`'s name (`mean` in checkpoints that predate it).
    #[serde(default = "mean_name")]
    reduce: String,
    /// A custom reduction's values so far.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    values: Vec<JsonF64>,
}

fn mean_name() -> String {
    ReduceFx::Mean.name().to_string()
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
        let (prog_bar, logger, sync_dist, reduce) =
            (options.prog_bar, options.logger, options.sync_dist, options.reduce_fx);
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
                    reduce,
                    epoch: EpochState::default(),
                    epoch_value: None,
                });
                self.entries.len() - 1
            }
        };
        let entry = &mut self.entries[index];
        (entry.scope, entry.on_step, entry.on_epoch, entry.prog_bar, entry.logger, entry.sync_dist, entry.reduce) =
            (scope, on_step, on_epoch, prog_bar, logger, sync_dist, reduce);
        match (on_epoch, on_step) {
            (true, true) => {
                let copy = match &value {
                    Logged::Number(x) => Logged::Number(*x),
                    Logged::Tensor(t) => Logged::Tensor(t.shallow_clone()),
                };
                entry.epoch.add(copy, batch_size, reduce);
                entry.step = Some(value);
                entry.step_unsent = true;
            }
            (true, false) => entry.epoch.add(value, batch_size, reduce),
            (false, true) => {
                entry.step = Some(value);
                entry.step_unsent = true;
            }
            (false, false) => {}
        }
    }

    /// The current value of `name`: the epoch's reduced value once its epoch has ended, else the last step value.
    pub fn get(&self, name: &str) -> Option<f64> {
        let entry = self.entries.iter().find(|e| e.name == name)?;
        match (&entry.step, entry.epoch_value) {
            (Some(step), None) => Some(read(step)),
            (_, Some(epoch)) => Some(epoch),
            (None, None) => entry.epoch.finish(entry.reduce),
        }
    }

    /// Ends the epoch of `scope`'s loop: reduces its epoch values; returns what the loggers should receive.
    /// Reduces the epochs of the values logged with `sync_dist` over the processes before `end_epoch` reads
    /// them: means and sums by summing (the weighted sums and the weights), maxima and minima by their own
    /// reductions, a custom reduction's local result averaged. One collective per kind of reduction, each over
    /// the metrics sorted by name, so that every process sends them in the same order.
    pub fn sync_epoch(&mut self, scope: Scope, group: &ProcessGroup) -> crate::Result<()> {
        let mut synced: Vec<&mut Entry> =
            self.entries.iter_mut().filter(|e| e.scope == scope && e.sync_dist && !e.epoch.is_empty()).collect();
        synced.sort_by(|a, b| a.name.cmp(&b.name));
        for op in [ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min] {
            let of_op = |e: &&mut Entry| match e.reduce {
                ReduceFx::Max => op == ReduceOp::Max,
                ReduceFx::Min => op == ReduceOp::Min,
                _ => op == ReduceOp::Sum,
            };
            let mut group_entries: Vec<&mut &mut Entry> = synced.iter_mut().filter(|e| of_op(e)).collect();
            if group_entries.is_empty() {
                continue;
            }
            let mut values = Vec::with_capacity(group_entries.len() * 2);
            for entry in &group_entries {
                let (value, weight) = match entry.reduce {
                    ReduceFx::Mean => (entry.epoch.running.as_ref().map_or(0.0, read), entry.epoch.weight),
                    ReduceFx::Custom(_) => (entry.epoch.finish(entry.reduce).unwrap_or(f64::NAN), 1.0),
                    _ => (entry.epoch.running.as_ref().map_or(f64::NAN, read), 0.0),
                };
                values.extend([value, weight]);
            }
            let totals = Tensor::from_slice(&values);
            // The weights ride along: summed for sums, and harmlessly maxed or minned for extremes.
            group.all_reduce(&totals, op)?;
            let totals = Vec::<f64>::try_from(&totals)?;
            for (entry, pair) in group_entries.iter_mut().zip(totals.chunks(2)) {
                let world = group.size() as f64;
                let state = &mut entry.epoch;
                match entry.reduce {
                    // A custom reduction's local results, averaged: kept as a mean of weight 1.
                    ReduceFx::Custom(_) => {
                        state.values.clear();
                        state.values.push(Logged::Number(pair[0] / world));
                    }
                    _ => {
                        state.running = Some(Logged::Number(pair[0]));
                        state.weight = pair[1];
                    }
                }
            }
        }
        Ok(())
    }

    pub fn end_epoch(&mut self, scope: Scope) -> Vec<(String, f64)> {
        let mut out = Vec::new();
        for entry in self.entries.iter_mut().filter(|e| e.scope == scope) {
            let epoch = std::mem::take(&mut entry.epoch);
            if let Some(value) = epoch.finish(entry.reduce) {
                entry.epoch_value = Some(value);
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
            entry.epoch = EpochState::default();
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
            .filter(|e| e.scope == Scope::Train && !e.epoch.is_empty())
            .map(|e| MetricState {
                name: e.name.clone(),
                on_step: e.on_step,
                on_epoch: e.on_epoch,
                prog_bar: e.prog_bar,
                logger: e.logger,
                epoch_sum: e.epoch.running.as_ref().map_or(0.0, read),
                epoch_weight: e.epoch.weight,
                reduce: e.reduce.name().to_string(),
                values: e.epoch.values.iter().map(|v| JsonF64(read(v))).collect(),
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
                reduce: ReduceFx::from_name(&state.reduce),
                epoch: EpochState {
                    running: (state.values.is_empty()).then_some(Logged::Number(state.epoch_sum)),
                    weight: state.epoch_weight,
                    values: state.values.iter().map(|v| Logged::Number(v.0)).collect(),
                },
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
