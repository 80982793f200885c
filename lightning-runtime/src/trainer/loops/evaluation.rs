//! The validation and test loops (Lightning's `_EvaluationLoop`), under `no_grad` and eval mode, with the
//! previous mode restored after unless the module defines `on_*_model_train`.

use std::collections::BTreeMap;

use super::{batches, zero_grad};
use crate::context::{HookInfo, Stage};
use crate::metrics::Scope;
use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::trainer::Limit;
use crate::{Error, Loader, Result};

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
    /// `validate` or `test`: the opening hooks, one evaluation epoch, the closing hooks.
    pub fn evaluate_stage(
        &mut self,
        kind: Evaluation,
        data: Option<Loader<M::Batch>>,
        from: Option<(std::path::PathBuf, crate::Checkpoint)>,
    ) -> Result<BTreeMap<String, f64>> {
        self.begin()?;
        if let Some((path, mut checkpoint)) = from {
            self.restore_weights(&path, &mut checkpoint)?;
        }
        let mut loader = match data {
            Some(loader) => self.distributed(loader),
            None => self.hooks.dataloader(self.module, self.stage, false)?.map(|l| self.distributed(l)).ok_or_else(
                || {
                    Error::Config(format!(
                        "`{}` has no data: pass a loader or define `{}`",
                        self.stage,
                        kind.dataloader_hook()
                    ))
                },
            )?,
        };
        if loader.is_empty() {
            return Err(Error::Config(format!("the {} loader has no batches", self.stage)));
        }
        zero_grad(self.module)?;
        let limit = match (self.cfg.fast_dev_run, kind) {
            (Some(n), _) => Limit::Batches(n),
            (None, Evaluation::Validation) => self.cfg.limit_val,
            (None, Evaluation::Test) => self.cfg.limit_test,
        };
        let limit = limit.resolve(loader.len(), kind.limit_name())?;
        self.evaluation_loop(kind, &mut loader, limit)?;
        let metrics = std::mem::take(&mut self.hooks.epoch_results).into_iter().collect();
        self.end()?;
        Ok(metrics)
    }

    /// One evaluation epoch over at most `limit` batches.
    pub fn evaluation_loop(
        &mut self,
        kind: Evaluation,
        loader: &mut Loader<M::Batch>,
        limit: Option<usize>,
    ) -> Result<()> {
        let was_training = self.hooks.ctx.training;
        let (stage, scope) = match kind {
            Evaluation::Validation => (Stage::Validate, Scope::Validation),
            Evaluation::Test => (Stage::Test, Scope::Test),
        };
        self.hooks.model_eval(self.module, stage)?;
        let training_total = self.hooks.ctx.total_batches;
        self.hooks.ctx.total_batches = match (limit, loader.len()) {
            (Some(n), Some(len)) => Some(n.min(len)),
            (limit, len) => limit.or(len),
        };
        let result = tch::no_grad(|| self.evaluation_epoch(kind, scope, loader, limit));
        (self.hooks.ctx.metrics.scope, self.hooks.ctx.total_batches) = (Scope::Train, training_total);
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
        loader: &mut Loader<M::Batch>,
        limit: Option<usize>,
    ) -> Result<()> {
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
        let epoch = self.hooks.progress.epoch;
        let mut ran = 0;
        let mut batches = batches::<M>(loader, epoch);
        for batch_idx in 0.. {
            if limit.is_some_and(|n| batch_idx >= n) {
                break;
            }
            let Some(batch) = self.next_batch(kind.loader(), &mut batches) else { break };
            let batch = self.transfer_batch(batch?, 0)?;
            if batch_idx == 0 {
                self.check_batch_device(&batch, kind.name())?;
            }
            self.hooks.eval_batch_start(kind, self.module, &batch, batch_idx)?;
            let outputs = self.hooks.eval_step(kind, self.module, &batch, batch_idx)?;
            self.hooks.eval_batch_end(kind, self.module, &outputs, &batch, batch_idx)?;
            self.check_interrupt()?;
            ran += 1;
        }
        if ran == 0 && limit != Some(0) {
            return Err(Error::Config(format!("the {} loader yielded no batches", kind.name())));
        }
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
}
