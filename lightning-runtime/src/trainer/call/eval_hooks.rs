//! The validation and test loops' per-batch hooks: one loop, two sets of hooks.

use std::any::Any;

use super::Dispatch;
use crate::module::{hook_info as info, LightningModule};
use crate::output::StepOutput;
use crate::trainer::loops::Evaluation;
use crate::Result;

impl Dispatch<'_> {
    pub fn eval_batch_start<M: LightningModule + 'static>(
        &mut self,
        kind: Evaluation,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> Result<()> {
        let any = batch as &dyn Any;
        match kind {
            Evaluation::Validation => {
                self.each_callback(info::on_validation_batch_start, module, |cb, ctx, m| {
                    cb.on_validation_batch_start(ctx, m, any, batch_idx, dataloader_idx)
                })?;
                self.module(info::on_validation_batch_start, module, M::HOOKS.on_validation_batch_start, |f, m, ctx| {
                    f(m, batch, batch_idx, dataloader_idx, ctx)
                })
                .map(drop)
            }
            Evaluation::Test => {
                self.each_callback(info::on_test_batch_start, module, |cb, ctx, m| {
                    cb.on_test_batch_start(ctx, m, any, batch_idx, dataloader_idx)
                })?;
                self.module(info::on_test_batch_start, module, M::HOOKS.on_test_batch_start, |f, m, ctx| {
                    f(m, batch, batch_idx, dataloader_idx, ctx)
                })
                .map(drop)
            }
        }
    }

    pub fn eval_step<M: LightningModule>(
        &mut self,
        kind: Evaluation,
        module: &mut M,
        batch: &M::Batch,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> Result<StepOutput> {
        let (hook, pointer) = match kind {
            Evaluation::Validation => (info::validation_step, M::HOOKS.validation_step),
            Evaluation::Test => (info::test_step, M::HOOKS.test_step),
        };
        let _autocast = self.autocast.map(|a| a.enter()).transpose()?;
        Ok(self.module(hook, module, pointer, |f, m, ctx| f(m, batch, batch_idx, dataloader_idx, ctx))?.flatten())
    }

    pub fn eval_batch_end<M: LightningModule + 'static>(
        &mut self,
        kind: Evaluation,
        module: &mut M,
        outputs: &StepOutput,
        batch: &M::Batch,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> Result<()> {
        let any = batch as &dyn Any;
        match kind {
            Evaluation::Validation => {
                self.each_callback(info::on_validation_batch_end, module, |cb, ctx, m| {
                    cb.on_validation_batch_end(ctx, m, outputs, any, batch_idx, dataloader_idx)
                })?;
                self.module(info::on_validation_batch_end, module, M::HOOKS.on_validation_batch_end, |f, m, ctx| {
                    f(m, outputs, batch, batch_idx, dataloader_idx, ctx)
                })
                .map(drop)
            }
            Evaluation::Test => {
                self.each_callback(info::on_test_batch_end, module, |cb, ctx, m| {
                    cb.on_test_batch_end(ctx, m, outputs, any, batch_idx, dataloader_idx)
                })?;
                self.module(info::on_test_batch_end, module, M::HOOKS.on_test_batch_end, |f, m, ctx| {
                    f(m, outputs, batch, batch_idx, dataloader_idx, ctx)
                })
                .map(drop)
            }
        }
    }

    /// `on_{validation,test}_model_train` if the module defines it; whether it did.
    pub fn eval_model_train<M: LightningModule>(&mut self, kind: Evaluation, module: &mut M) -> Result<bool> {
        let defined = match kind {
            Evaluation::Validation => M::HOOKS.on_validation_model_train.is_some(),
            Evaluation::Test => M::HOOKS.on_test_model_train.is_some(),
        };
        match kind {
            Evaluation::Validation => self.on_validation_model_train(module)?,
            Evaluation::Test => self.on_test_model_train(module)?,
        }
        Ok(defined)
    }
}
