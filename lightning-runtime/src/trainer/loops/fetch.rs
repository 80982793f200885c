//! A batch from the loader to the device: the loader's iterator (recorded as what runs, so that a panic in it is
//! reported as the loader's), then `on_before_batch_transfer`, `transfer_batch_to_device` and
//! `on_after_batch_transfer`, in Lightning's order.

use crate::context::HookInfo;
use crate::module::LightningModule;
use crate::trainer::entry::Run;
use crate::{Batch, Loader, Result};

/// The batches of `loader` for `epoch`. They may share memory with the loader's data unless the module defines
/// a hook that takes batches by value and so could write into them in place (the batch-transfer hooks, the
/// module's or the data module's).
pub(crate) fn batches<'l, M: LightningModule>(
    loader: &'l mut Loader<M::Batch>,
    epoch: usize,
    datamodule_takes_batches: bool,
) -> Box<dyn Iterator<Item = Result<M::Batch>> + 'l> {
    let hooks = &M::HOOKS;
    let by_value = datamodule_takes_batches
        || hooks.on_before_batch_transfer.is_some()
        || hooks.transfer_batch_to_device.is_some()
        || hooks.on_after_batch_transfer.is_some();
    loader.allow_shared_batches(!by_value);
    loader.batches(epoch)
}

impl<M: LightningModule + 'static> Run<'_, M> {
    /// The next batch of `batches`, with the loader (`source`) recorded as what runs while it makes it.
    pub(super) fn next_batch<I: Iterator>(&mut self, source: HookInfo, batches: &mut I) -> Option<I::Item> {
        self.hooks.section(source, || batches.next())
    }

    /// The three batch-transfer hooks; the default transfer moves every tensor to the device.
    pub(super) fn transfer_batch(&mut self, batch: M::Batch, dataloader_idx: usize) -> Result<M::Batch> {
        let batch = self.hooks.on_before_batch_transfer(self.module, batch, dataloader_idx)?;
        let batch = self.hooks.transfer_batch_to_device(self.module, batch, dataloader_idx)?;
        let batch = self.hooks.on_after_batch_transfer(self.module, batch, dataloader_idx)?;
        self.hooks.ctx.batch_size = batch.batch_size();
        Ok(batch)
    }
}

/// The batches one loader runs: its limit, or its length, whichever is known and smaller.
pub(crate) fn loader_total<B>(loader: &Loader<B>, limit: Option<usize>) -> Option<usize> {
    match (limit, loader.len()) {
        (Some(n), Some(len)) => Some(n.min(len)),
        (limit, len) => limit.or(len),
    }
}

/// The batches a stage runs over all its loaders, when each one's is known.
pub(crate) fn stage_total<B>(loaders: &[Loader<B>], limits: &[Option<usize>]) -> Option<usize> {
    loaders.iter().zip(limits).map(|(loader, &limit)| loader_total(loader, limit)).sum()
}
