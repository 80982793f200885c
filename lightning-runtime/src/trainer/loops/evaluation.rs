//! The validation and test loops (Lightning's `_EvaluationLoop`), under `no_grad` and eval mode, with the
//! previous mode restored after unless the module defines `on_*_model_train`.

use std::collections::BTreeMap;

use super::{batches, zero_grad};
use crate::context::{HookInfo, Stage};
use crate::metrics::Scope;
use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::trainer::Limit;
use crate::{DataSource, Error, Loader, Result};

/// Which evaluation loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Evaluation {
    Validation,
    Test,
}

impl Evaluation {
    /// The loop's name in messages (`the validation loader`).
    fn name(self) -> &'static str {
        match self {
            Evaluation::Validation => "validation",
            Evaluation::Test => "test",
        }
    }

    /// The suffix of its `limit_*_batches` option.
    fn limit_name(self) -> &'static str {
        match self {
            Evaluation::Validation => "val",
            Evaluation::Test => "test",
        }
    }

    /// The module's hook that gives its data.
    fn dataloader_hook(self) -> &'static str {
        match self {
            Evaluation::Validation => "val_dataloader",
            Evaluation::Test => "test_dataloader",
        }
    }

    /// What runs while its loader makes a batch.
    fn loader(self) -> HookInfo {
        match self {
            Evaluation::Validation => HookInfo::runtime("the validation loader"),
            Evaluation::Test => HookInfo::runtime("the test loader"),
        }
    }
}

impl<M: LightningModule + 'static> Run<'_, M> {
    /// `validate` or `test`: the opening hooks, one evaluation epoch over every loader, the closing hooks.
    pub fn evaluate_stage(
        &mut self,
        kind: Evaluation,
        data: DataSource<'_, M::Batch>,
        from: Option<(std::path::PathBuf, crate::Checkpoint)>,
    ) -> Result<BTreeMap<String, f64>> {
        self.begin()?;
        if let Some((path, mut checkpoint)) = from {
            self.restore_weights(&path, &mut checkpoint)?;
        }
        let mut loaders = self.stage_loaders(data, kind.dataloader_hook())?;
        zero_grad(self.module)?;
        let limit = match (self.cfg.fast_dev_run, kind) {
            (Some(n), _) => Limit::Batches(n),
            (None, Evaluation::Validation) => self.cfg.limit_val,
            (None, Evaluation::Test) => self.cfg.limit_test,
        };
        let limits = loaders.iter().map(|l| limit.resolve(l.len(), kind.limit_name())).collect::<Result<Vec<_>>>()?;
        self.evaluation_loop(kind, &mut loaders, &limits)?;
        let metrics = std::mem::take(&mut self.hooks.epoch_results).into_iter().collect();
        self.end()?;
        Ok(metrics)
    }

    /// The loaders of an evaluation or prediction stage: those given, or its dataloader hook's (the data
    /// module's when the run has one), as this process sees them; an error when there are none, or one is empty.
    pub fn stage_loaders(&mut self, data: DataSource<'_, M::Batch>, hook: &str) -> Result<Vec<Loader<M::Batch>>> {
        let loaders = match data.into_loaders() {
            Some(loaders) => loaders,
            None => {
                let owner = if self.hooks.has_datamodule() { "the data module" } else { "the module" };
                self.hooks.eval_dataloaders(self.module, self.stage)?.ok_or_else(|| {
                    Error::Config(format!("`{}` has no data: pass a loader or define `{hook}` on {owner}", self.stage))
                })?
            }
        };
        if loaders.is_empty() {
            return Err(Error::Config(format!("`{}` was given an empty list of loaders", self.stage)));
        }
        let several = loaders.len() > 1;
        let mut seen = Vec::with_capacity(loaders.len());
        for (index, loader) in loaders.into_iter().enumerate() {
            if loader.is_empty() {
                let which = if several { format!(" {index}") } else { String::new() };
                return Err(Error::Config(format!("the {} loader{which} has no batches", self.stage)));
            }
            seen.push(self.distributed(loader));
        }
        Ok(seen)
    }

    /// One evaluation epoch over every loader, in order, each over at most its `limits` entry of batches.
    pub fn evaluation_loop(
        &mut self,
        kind: Evaluation,
        loaders: &mut [Loader<M::Batch>],
        limits: &[Option<usize>],
    ) -> Result<()> {
        let was_training = self.hooks.ctx.training;
        let (stage, scope) = match kind {
            Evaluation::Validation => (Stage::Validate, Scope::Validation),
            Evaluation::Test => (Stage::Test, Scope::Test),
        };
        self.hooks.model_eval(self.module, stage)?;
        let training_total = self.hooks.ctx.total_batches;
        let result = tch::no_grad(|| self.evaluation_epoch(kind, scope, loaders, limits));
        (self.hooks.ctx.metrics.scope, self.hooks.ctx.total_batches) = (Scope::Train, training_total);
        self.hooks.ctx.dataloader_idx = None;
        result?;
        if !self.hooks.eval_model_train(kind, self.module)? {
            self.hooks.ctx.training = was_training;
        }
        Ok(())
    }

    fn evaluation_epoch(
        &mut self,
        kind: Evaluation,
        scope: Scope,
        loaders: &mut [Loader<M::Batch>],
        limits: &[Option<usize>],
    ) -> Result<()> {
        // The stage's batches over every loader, for the progress bar (each loader's while it runs).
        let total = super::stage_total(loaders, limits);
        self.hooks.ctx.total_batches = total;
        match kind {
            Evaluation::Validation => self.hooks.on_validation_start(self.module)?,
            Evaluation::Test => self.hooks.on_test_start(self.module)?,
        }
        self.hooks.ctx.metrics.scope = scope;
        self.hooks.ctx.metrics.start_epoch(scope);
        match kind {
            Evaluation::Validation => self.hooks.on_validation_epoch_start(self.module)?,
            Evaluation::Test => self.hooks.on_test_epoch_start(self.module)?,
        }
        let several = loaders.len() > 1;
        for (dataloader_idx, (loader, &limit)) in loaders.iter_mut().zip(limits).enumerate() {
            // With several loaders, what is logged while one runs is suffixed with its index (Lightning's
            // `/dataloader_idx_N`); the epoch hooks log under the plain names.
            self.hooks.ctx.dataloader_idx = several.then_some(dataloader_idx);
            self.evaluation_batches(kind, loader, limit, dataloader_idx)?;
        }
        (self.hooks.ctx.dataloader_idx, self.hooks.ctx.total_batches) = (None, total);
        match kind {
            Evaluation::Validation => self.hooks.on_validation_epoch_end(self.module)?,
            Evaluation::Test => self.hooks.on_test_epoch_end(self.module)?,
        }
        self.sync_epoch_metrics(scope)?;
        let values = self.hooks.ctx.metrics.end_epoch(scope);
        // What `validate`/`test` return: the epoch's logged values under the loggers' keys (Lightning's results).
        self.hooks.epoch_results = values.clone();
        self.hooks.send_epoch_logs(values)?;
        match kind {
            Evaluation::Validation => self.hooks.on_validation_end(self.module),
            Evaluation::Test => self.hooks.on_test_end(self.module),
        }
    }

    /// The batches of one loader of an evaluation epoch.
    fn evaluation_batches(
        &mut self,
        kind: Evaluation,
        loader: &mut Loader<M::Batch>,
        limit: Option<usize>,
        dataloader_idx: usize,
    ) -> Result<()> {
        self.hooks.ctx.total_batches = super::loader_total(loader, limit);
        let epoch = self.hooks.progress.epoch;
        let mut ran = 0;
        let mut batches = batches::<M>(loader, epoch, self.hooks.datamodule_takes_batches());
        for batch_idx in 0.. {
            if limit.is_some_and(|n| batch_idx >= n) {
                break;
            }
            let Some(batch) = self.next_batch(kind.loader(), &mut batches) else { break };
            let batch = self.transfer_batch(batch?, dataloader_idx)?;
            if batch_idx == 0 {
                self.check_batch_device(&batch, kind.name())?;
            }
            self.hooks.eval_batch_start(kind, self.module, &batch, batch_idx, dataloader_idx)?;
            let outputs = self.hooks.eval_step(kind, self.module, &batch, batch_idx, dataloader_idx)?;
            self.hooks.eval_batch_end(kind, self.module, &outputs, &batch, batch_idx, dataloader_idx)?;
            self.check_interrupt()?;
            ran += 1;
        }
        if ran == 0 && limit != Some(0) {
            return Err(Error::Config(format!("the {} loader yielded no batches", kind.name())));
        }
        Ok(())
    }
}
