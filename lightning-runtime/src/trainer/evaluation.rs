//! The validation and test loops (Lightning's `_EvaluationLoop`), under `no_grad` and eval mode, with the
//! previous mode restored after unless the module defines `on_*_model_train`.

use std::collections::BTreeMap;

use super::dispatch::{self, zero_grad};
use super::entry::Run;
use super::Limit;
use crate::context::{HookInfo, Stage};
use crate::metrics::Scope;
use crate::module::LightningModule;
use crate::{Error, Loader, Result};

/// Which evaluation loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Validation,
    Test,
}

impl<M: LightningModule + 'static> Run<'_, M> {
    /// `validate` or `test`: the opening hooks, one evaluation epoch, the closing hooks.
    pub fn evaluate_stage(&mut self, kind: Kind, data: Option<Loader<M::Batch>>) -> Result<BTreeMap<String, f64>> {
        self.begin()?;
        let mut loader = match data {
            Some(loader) => loader,
            None => self.d.dataloader(self.module, self.stage, false)?.ok_or_else(|| {
                let hook = if kind == Kind::Test { "test_dataloader" } else { "val_dataloader" };
                Error::Config(format!("`{}` has no data: pass a loader or define `{hook}`", self.stage))
            })?,
        };
        if loader.is_empty() {
            return Err(Error::Config(format!("the {} loader has no batches", self.stage)));
        }
        zero_grad(self.module)?;
        let limit = match (self.cfg.fast_dev_run, kind) {
            (Some(n), _) => Limit::Batches(n),
            (None, Kind::Validation) => self.cfg.limit_val,
            (None, Kind::Test) => self.cfg.limit_test,
        };
        let limit = limit.resolve(loader.len(), if kind == Kind::Test { "test" } else { "val" })?;
        self.evaluation_loop(kind, &mut loader, limit)?;
        let metrics = self.d.ctx.metrics.snapshot();
        self.end()?;
        Ok(metrics)
    }

    /// One evaluation epoch over at most `limit` batches.
    pub fn evaluation_loop(&mut self, kind: Kind, loader: &mut Loader<M::Batch>, limit: Option<usize>) -> Result<()> {
        let was_training = self.d.ctx.training;
        let (stage, scope) = match kind {
            Kind::Validation => (Stage::Validate, Scope::Validation),
            Kind::Test => (Stage::Test, Scope::Test),
        };
        self.d.model_eval(self.module, stage)?;
        let training_total = self.d.ctx.total_batches;
        self.d.ctx.total_batches = match (limit, loader.len()) {
            (Some(n), Some(len)) => Some(n.min(len)),
            (limit, len) => limit.or(len),
        };
        let result = tch::no_grad(|| self.evaluation_epoch(kind, scope, loader, limit));
        (self.d.ctx.metrics.scope, self.d.ctx.total_batches) = (Scope::Train, training_total);
        result?;
        if !self.d.eval_model_train(kind, self.module)? {
            self.d.ctx.training = was_training;
        }
        Ok(())
    }

    fn evaluation_epoch(
        &mut self,
        kind: Kind,
        scope: Scope,
        loader: &mut Loader<M::Batch>,
        limit: Option<usize>,
    ) -> Result<()> {
        match kind {
            Kind::Validation => self.d.on_validation_start(self.module)?,
            Kind::Test => self.d.on_test_start(self.module)?,
        }
        self.d.ctx.metrics.scope = scope;
        self.d.ctx.metrics.start_epoch(scope);
        match kind {
            Kind::Validation => self.d.on_validation_epoch_start(self.module)?,
            Kind::Test => self.d.on_test_epoch_start(self.module)?,
        }
        let epoch = self.d.ctx.current_epoch;
        let mut ran = 0;
        let section = match kind {
            Kind::Validation => HookInfo::runtime("the validation loader"),
            Kind::Test => HookInfo::runtime("the test loader"),
        };
        let mut batches = dispatch::batches::<M>(loader, epoch);
        for batch_idx in 0.. {
            if limit.is_some_and(|n| batch_idx >= n) {
                break;
            }
            let Some(batch) = self.d.section(section, || batches.next()) else { break };
            let batch = self.d.transfer_batch(self.module, batch?, 0)?;
            if batch_idx == 0 {
                self.check_batch_device(&batch, if kind == Kind::Test { "test" } else { "validation" })?;
            }
            self.d.eval_batch_start(kind, self.module, &batch, batch_idx)?;
            let outputs = self.d.eval_step(kind, self.module, &batch, batch_idx)?;
            self.d.eval_batch_end(kind, self.module, &outputs, &batch, batch_idx)?;
            self.check_interrupt()?;
            ran += 1;
        }
        if ran == 0 && limit != Some(0) {
            return Err(Error::Config(format!(
                "the {} loader yielded no batches",
                if kind == Kind::Test { "test" } else { "validation" }
            )));
        }
        match kind {
            Kind::Validation => self.d.on_validation_epoch_end(self.module)?,
            Kind::Test => self.d.on_test_epoch_end(self.module)?,
        }
        let values = self.d.ctx.metrics.end_epoch(scope);
        self.d.send_epoch_logs(values)?;
        match kind {
            Kind::Validation => self.d.on_validation_end(self.module),
            Kind::Test => self.d.on_test_end(self.module),
        }
    }
}
