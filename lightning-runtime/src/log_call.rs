//! `ctx.log(..)` and `ctx.log_dict(..)`: the handles that take Lightning's `self.log` options by chaining and
//! record the value(s) when they are dropped, at the end of the statement.

use crate::context::{Ctx, LogValue, Logged};
use crate::metrics::LogOptions;
use crate::ReduceFx;

/// The options both handles take, one method each.
macro_rules! log_options {
    () => {
        /// Show the value in the progress bar.
        pub fn prog_bar(mut self, on: bool) -> Self {
            self.options.prog_bar = on;
            self
        }

        /// Record the value per step.
        pub fn on_step(mut self, on: bool) -> Self {
            self.options.on_step = Some(on);
            self
        }

        /// Reduce the value over the epoch (with `reduce_fx`, by default the mean weighted by batch size).
        pub fn on_epoch(mut self, on: bool) -> Self {
            self.options.on_epoch = Some(on);
            self
        }

        /// Send the value to the loggers (default true).
        pub fn logger(mut self, on: bool) -> Self {
            self.options.logger = on;
            self
        }

        /// The batch size to weight the epoch mean with (default: the batch's first dimension).
        pub fn batch_size(mut self, size: usize) -> Self {
            self.options.batch_size = Some(size);
            self
        }

        /// How the epoch's values are reduced (Lightning's `reduce_fx`; default [`ReduceFx::Mean`]).
        pub fn reduce_fx(mut self, reduce: ReduceFx) -> Self {
            self.options.reduce_fx = reduce;
            self
        }

        /// With several evaluation loaders, log under `<name>/dataloader_idx_N` (the default, Lightning's
        /// `add_dataloader_idx=True`); `false` keeps the plain name, so that every loader adds to one value.
        pub fn add_dataloader_idx(mut self, on: bool) -> Self {
            self.options.add_dataloader_idx = on;
            self
        }

        /// Average the value over the processes of a distributed run (Lightning's `sync_dist`): a step value
        /// when it is logged, an epoch value (reduced over every process's batches) when the epoch ends, so
        /// every process sees the same number (what callbacks monitor). No effect in one process.
        pub fn sync_dist(mut self, on: bool) -> Self {
            self.options.sync_dist = on;
            self
        }
    };
}

/// A value being logged; options set on it apply when it is dropped (at the end of the `ctx.log(..)` statement).
pub struct LogCall<'c> {
    pub(crate) ctx: &'c mut Ctx,
    pub(crate) name: Option<&'c str>,
    pub(crate) value: Option<Logged>,
    pub(crate) options: LogOptions,
}

impl LogCall<'_> {
    log_options!();
}

impl Drop for LogCall<'_> {
    fn drop(&mut self) {
        if let (Some(name), Some(value)) = (self.name.take(), self.value.take()) {
            self.ctx.record(name, value, self.options);
        }
    }
}

/// Several values being logged with the same options (Lightning's `self.log_dict`); recorded, in the order
/// given, when it is dropped.
pub struct LogDict<'c> {
    pub(crate) ctx: &'c mut Ctx,
    pub(crate) values: Vec<(String, Logged)>,
    pub(crate) options: LogOptions,
}

impl LogDict<'_> {
    log_options!();
}

impl Drop for LogDict<'_> {
    fn drop(&mut self) {
        for (name, value) in std::mem::take(&mut self.values) {
            self.ctx.record(&name, value, self.options);
        }
    }
}

impl Ctx {
    /// Logs every `(name, value)` of `values` with the same options (Lightning's `self.log_dict`):
    ///
    /// ```
    /// # let mut ctx = lightning::Ctx::new(tch::Device::Cpu);
    /// # let (loss, acc) = (tch::Tensor::from(0.5), tch::Tensor::from(0.9));
    /// ctx.log_dict([("val_loss", &loss), ("val_acc", &acc)]).prog_bar(true);
    /// ```
    pub fn log_dict<K: AsRef<str>, V: LogValue>(&mut self, values: impl IntoIterator<Item = (K, V)>) -> LogDict<'_> {
        let values = values.into_iter().map(|(k, v)| (k.as_ref().to_string(), v.into_logged())).collect();
        LogDict { ctx: self, values, options: LogOptions::default() }
    }
}
