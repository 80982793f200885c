//! The prediction loop (Lightning's `_PredictionLoop`): `predict_step` over every batch under `no_grad` and
//! eval mode, the predictions collected in order. Lightning forbids logging here, and so does `Ctx`.

use super::{batches, zero_grad};
use crate::context::HookInfo;
use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::{Error, Loader, Result};

impl<M: LightningModule + 'static> Run<'_, M>
where
    M::Prediction: 'static,
{
    pub fn predict_stage(
        &mut self,
        data: Option<Loader<M::Batch>>,
        from: Option<(std::path::PathBuf, crate::Checkpoint)>,
    ) -> Result<Vec<M::Prediction>> {
        self.begin()?;
        if let Some((path, mut checkpoint)) = from {
            self.restore_weights(&path, &mut checkpoint)?;
        }
        let mut loader = match data {
            Some(loader) => self.distributed(loader),
            None => self.hooks.dataloader(self.module, self.stage, false)?.map(|l| self.distributed(l)).ok_or_else(
                || Error::Config("`predict` has no data: pass a loader or define `predict_dataloader`".into()),
            )?,
        };
        if loader.is_empty() {
            return Err(Error::Config("the predict loader has no batches".into()));
        }
        zero_grad(self.module)?;
        let limit = match self.cfg.fast_dev_run {
            Some(n) => Some(n),
            None => self.cfg.limit_predict.resolve(loader.len(), "predict")?,
        };
        let was_training = self.hooks.ctx.training;
        self.hooks.model_eval(self.module, self.stage)?;
        let predictions = tch::no_grad(|| self.prediction_epoch(&mut loader, limit));
        self.hooks.ctx.training = was_training;
        let predictions = predictions?;
        self.end()?;
        Ok(predictions)
    }

    fn prediction_epoch(&mut self, loader: &mut Loader<M::Batch>, limit: Option<usize>) -> Result<Vec<M::Prediction>> {
        self.hooks.ctx.total_batches = match (limit, loader.len()) {
            (Some(n), Some(len)) => Some(n.min(len)),
            (limit, len) => limit.or(len),
        };
        self.hooks.on_predict_start(self.module)?;
        self.hooks.on_predict_epoch_start(self.module)?;
        let mut predictions = Vec::with_capacity(limit.or(loader.len()).unwrap_or(0));
        let mut batches = batches::<M>(loader, 0);
        for batch_idx in 0.. {
            if limit.is_some_and(|n| batch_idx >= n) {
                break;
            }
            let Some(batch) = self.next_batch(HookInfo::runtime("the predict loader"), &mut batches) else { break };
            let batch = self.transfer_batch(batch?, 0)?;
            if batch_idx == 0 {
                self.check_batch_device(&batch, "prediction")?;
            }
            self.hooks.on_predict_batch_start(self.module, &batch, batch_idx)?;
            let prediction = self.hooks.predict_step(self.module, &batch, batch_idx)?;
            self.hooks.on_predict_batch_end(self.module, &prediction, &batch, batch_idx)?;
            predictions.push(prediction);
            self.check_interrupt()?;
        }
        self.hooks.on_predict_epoch_end(self.module)?;
        self.hooks.on_predict_end(self.module)?;
        Ok(predictions)
    }
}
