//! The prediction loop (Lightning's `_PredictionLoop`): `predict_step` over every batch under `no_grad` and
//! eval mode, the predictions collected in order. Lightning forbids logging here, and so does `Ctx`.

use super::{batches, zero_grad};
use crate::context::HookInfo;
use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::{DataSource, Loader, Result};

impl<M: LightningModule + 'static> Run<'_, M>
where
    M::Prediction: 'static,
{
    pub fn predict_stage(
        &mut self,
        data: DataSource<'_, M::Batch>,
        from: Option<(std::path::PathBuf, crate::Checkpoint)>,
    ) -> Result<Vec<M::Prediction>> {
        self.begin()?;
        if let Some((path, mut checkpoint)) = from {
            self.restore_weights(&path, &mut checkpoint)?;
        }
        let mut loaders = self.stage_loaders(data, "predict_dataloader")?;
        zero_grad(self.module)?;
        let limits = loaders
            .iter()
            .map(|loader| match self.cfg.fast_dev_run {
                Some(n) => Ok(Some(n)),
                None => self.cfg.limit_predict.resolve(loader.len(), "predict"),
            })
            .collect::<Result<Vec<_>>>()?;
        let was_training = self.hooks.ctx.training;
        self.hooks.model_eval(self.module, self.stage)?;
        let predictions = tch::no_grad(|| self.prediction_epoch(&mut loaders, &limits));
        self.hooks.ctx.training = was_training;
        self.hooks.ctx.dataloader_idx = None;
        let predictions = predictions?;
        self.end()?;
        Ok(predictions)
    }

    fn prediction_epoch(
        &mut self,
        loaders: &mut [Loader<M::Batch>],
        limits: &[Option<usize>],
    ) -> Result<Vec<M::Prediction>> {
        let total = super::stage_total(loaders, limits);
        self.hooks.ctx.total_batches = total;
        self.hooks.on_predict_start(self.module)?;
        self.hooks.on_predict_epoch_start(self.module)?;
        let mut predictions = Vec::new();
        let several = loaders.len() > 1;
        for (dataloader_idx, (loader, &limit)) in loaders.iter_mut().zip(limits).enumerate() {
            self.hooks.ctx.dataloader_idx = several.then_some(dataloader_idx);
            self.hooks.ctx.total_batches = super::loader_total(loader, limit);
            predictions.reserve(self.hooks.ctx.total_batches.unwrap_or(0));
            let mut batches = batches::<M>(loader, 0, self.hooks.datamodule_takes_batches());
            for batch_idx in 0.. {
                if limit.is_some_and(|n| batch_idx >= n) {
                    break;
                }
                let Some(batch) = self.next_batch(HookInfo::runtime("the predict loader"), &mut batches) else {
                    break;
                };
                let batch = self.transfer_batch(batch?, dataloader_idx)?;
                if batch_idx == 0 {
                    self.check_batch_device(&batch, "prediction")?;
                }
                self.hooks.on_predict_batch_start(self.module, &batch, batch_idx, dataloader_idx)?;
                let prediction = self.hooks.predict_step(self.module, &batch, batch_idx, dataloader_idx)?;
                self.hooks.on_predict_batch_end(self.module, &prediction, &batch, batch_idx, dataloader_idx)?;
                predictions.push(prediction);
                self.check_interrupt()?;
            }
        }
        (self.hooks.ctx.dataloader_idx, self.hooks.ctx.total_batches) = (None, total);
        self.hooks.on_predict_epoch_end(self.module)?;
        self.hooks.on_predict_end(self.module)?;
        Ok(predictions)
    }
}
