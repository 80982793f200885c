//! The data hooks, where a data module given to the entry point takes part (Lightning 2.6's precedence): its
//! `prepare_data`, `setup` and `teardown` run before the callbacks' and the module's, its dataloader hooks
//! replace the module's, and each batch-transfer hook it defines replaces the module's.

use std::any::Any;

use super::Dispatch;
use crate::context::{Ctx, HookInfo, Stage};
use crate::data::{Loader, Loaders};
use crate::datamodule::{datamodule_hook_info as dm_info, AnyDataModule, Transfer, Which};
use crate::error::HookError;
use crate::module::{hook_info as info, LightningModule};
use crate::trainer::profiler::Action;
use crate::{Batch, Error, Result};

impl Dispatch<'_> {
    /// Calls one hook of the data module, if there is one and it defines the hook.
    fn datamodule<R>(
        &mut self,
        hook: HookInfo,
        call: impl FnOnce(&mut dyn AnyDataModule, &mut Ctx) -> Option<std::result::Result<R, HookError>>,
    ) -> Result<Option<R>> {
        if self.datamodule.is_none() {
            return Ok(None);
        }
        let outer = std::mem::replace(&mut self.ctx.hook, hook);
        self.publish_progress();
        let started = self.profile_start();
        let datamodule = self.datamodule.as_deref_mut().expect("checked above");
        let value = call(datamodule, &mut self.ctx);
        if value.is_some() {
            // `LightningDataModule.setup` → `[LightningDataModule]setup`, as the module's hooks are named.
            self.profile_end(Action::DataModule(hook.name), started);
        }
        let value = value.transpose().map_err(|source| Error::Hook { hook: hook.name, source })?;
        super::take_log_error(&mut self.ctx)?;
        self.ctx.hook = outer;
        Ok(value)
    }

    /// Whether the run was given a data module.
    pub fn has_datamodule(&self) -> bool {
        self.datamodule.is_some()
    }

    /// The data module's `prepare_data`, then the module's (once per node: the caller decides where).
    pub fn prepare_data<M: LightningModule>(&mut self, module: &mut M) -> Result<()> {
        self.datamodule(dm_info::prepare_data, |dm, ctx| dm.prepare_data(ctx))?;
        self.module(info::prepare_data, module, M::HOOKS.prepare_data, |f, m, ctx| f(m, ctx)).map(drop)
    }

    /// `setup`: the data module's, every callback's, the module's.
    pub fn setup<M: LightningModule + 'static>(&mut self, module: &mut M, stage: Stage) -> Result<()> {
        self.datamodule(dm_info::setup, |dm, ctx| dm.setup(stage, ctx))?;
        self.each_callback(info::setup, module, |cb, ctx, m| cb.setup(ctx, m, stage))?;
        self.module(info::setup, module, M::HOOKS.setup, |f, m, ctx| f(m, stage, ctx)).map(drop)
    }

    /// `teardown`: the data module's, every callback's, the module's.
    pub fn teardown<M: LightningModule + 'static>(&mut self, module: &mut M, stage: Stage) -> Result<()> {
        self.datamodule(dm_info::teardown, |dm, ctx| dm.teardown(stage, ctx))?;
        self.each_callback(info::teardown, module, |cb, ctx, m| cb.teardown(ctx, m, stage))?;
        self.module(info::teardown, module, M::HOOKS.teardown, |f, m, ctx| f(m, stage, ctx)).map(drop)
    }

    /// `on_exception`: every callback's, then the data module's.
    pub fn on_exception<M: LightningModule + 'static>(&mut self, module: &mut M, error: &Error) -> Result<()> {
        let callbacks =
            self.each_callback(info::callback::on_exception, module, |cb, ctx, m| cb.on_exception(ctx, m, error));
        self.datamodule(dm_info::on_exception, |dm, ctx| dm.on_exception(error, ctx))?;
        callbacks
    }

    /// The data module's state for a checkpoint, with the key it goes under; `None` when it has none to save.
    pub fn datamodule_state(&mut self) -> Result<Option<(String, serde_json::Value)>> {
        let Some(key) = self.datamodule.as_deref().map(|dm| dm.state_key()) else { return Ok(None) };
        let state = self.datamodule(dm_info::state_dict, |dm, ctx| dm.state_dict(ctx))?;
        // Lightning saves a data module's state only when it is not empty.
        Ok(state
            .filter(|state| !state.is_null() && state.as_object().is_none_or(|map| !map.is_empty()))
            .map(|s| (key, s)))
    }

    /// Gives the data module the state a checkpoint holds for it, if any.
    pub fn load_datamodule_state(&mut self, checkpoint: &crate::Checkpoint) -> Result<()> {
        let Some(key) = self.datamodule.as_deref().map(|dm| dm.state_key()) else { return Ok(()) };
        if let Some(state) = checkpoint.meta.datamodule.get(&key).cloned() {
            self.datamodule(dm_info::load_state_dict, |dm, ctx| dm.load_state_dict(state, ctx))?;
        }
        Ok(())
    }

    /// The training loader from the data module (when the run has one) or the module's `train_dataloader`.
    pub fn train_dataloader<M: LightningModule>(&mut self, module: &mut M) -> Result<Option<Loader<M::Batch>>> {
        if self.datamodule.is_some() {
            let loader = self.datamodule(dm_info::train_dataloader, |dm, ctx| dm.dataloaders(Which::Train, ctx))?;
            return loader.map(downcast::<Loader<M::Batch>>).transpose();
        }
        self.module(info::train_dataloader, module, M::HOOKS.train_dataloader, |f, m, ctx| f(m, ctx))
    }

    /// The loaders of an evaluation or prediction stage (`Fit` and `Validate`: validation), from the data module
    /// (when the run has one) or the module's hook.
    pub fn eval_dataloaders<M: LightningModule>(
        &mut self,
        module: &mut M,
        stage: Stage,
    ) -> Result<Option<Vec<Loader<M::Batch>>>> {
        let hooks = &M::HOOKS;
        if self.datamodule.is_some() {
            let (which, hook) = match stage {
                Stage::Fit | Stage::Validate => (Which::Val, dm_info::val_dataloader),
                Stage::Test => (Which::Test, dm_info::test_dataloader),
                Stage::Predict => (Which::Predict, dm_info::predict_dataloader),
            };
            let loaders = self.datamodule(hook, |dm, ctx| dm.dataloaders(which, ctx))?;
            return loaders.map(|boxed| downcast::<Loaders<M::Batch>>(boxed).map(Loaders::into_vec)).transpose();
        }
        let loaders = match stage {
            Stage::Fit | Stage::Validate => {
                self.module(info::val_dataloader, module, hooks.val_dataloader, |f, m, ctx| f(m, ctx))
            }
            Stage::Test => self.module(info::test_dataloader, module, hooks.test_dataloader, |f, m, ctx| f(m, ctx)),
            Stage::Predict => {
                self.module(info::predict_dataloader, module, hooks.predict_dataloader, |f, m, ctx| f(m, ctx))
            }
        }?;
        Ok(loaders.map(Loaders::into_vec))
    }

    /// Whether the run's data has validation loaders: the data module's `val_dataloader`, or the module's.
    pub fn defines_val_dataloader<M: LightningModule>(&self) -> bool {
        match self.datamodule.as_deref() {
            Some(dm) => dm.defines_dataloader(Which::Val),
            None => M::HOOKS.val_dataloader.is_some(),
        }
    }

    /// Whether the run's data has a training loader.
    pub fn defines_train_dataloader<M: LightningModule>(&self) -> bool {
        match self.datamodule.as_deref() {
            Some(dm) => dm.defines_dataloader(Which::Train),
            None => M::HOOKS.train_dataloader.is_some(),
        }
    }

    /// Whether the data module defines a batch-transfer hook (which takes batches by value).
    pub fn datamodule_takes_batches(&self) -> bool {
        self.datamodule.as_deref().is_some_and(|dm| {
            [Transfer::Before, Transfer::ToDevice, Transfer::After].into_iter().any(|which| dm.defines_transfer(which))
        })
    }

    /// A batch-transfer hook of the data module, when it defines that one.
    fn datamodule_transfer<B: Batch>(
        &mut self,
        which: Transfer,
        hook: HookInfo,
        batch: B,
        dataloader_idx: usize,
    ) -> Result<std::result::Result<B, B>> {
        if !self.datamodule.as_deref().is_some_and(|dm| dm.defines_transfer(which)) {
            return Ok(Err(batch));
        }
        let device = self.ctx.device;
        let moved =
            self.datamodule(hook, |dm, ctx| dm.transfer(which, Box::new(batch), device, dataloader_idx, ctx))?;
        Ok(Ok(downcast::<B>(moved.expect("the data module defines the hook"))?))
    }

    /// `on_before_batch_transfer` (default: the batch as it is).
    pub fn on_before_batch_transfer<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: M::Batch,
        dataloader_idx: usize,
    ) -> Result<M::Batch> {
        let batch = match self.datamodule_transfer(
            Transfer::Before,
            dm_info::on_before_batch_transfer,
            batch,
            dataloader_idx,
        )? {
            Ok(moved) => return Ok(moved),
            Err(batch) => batch,
        };
        match M::HOOKS.on_before_batch_transfer {
            Some(f) => Ok(self
                .module(info::on_before_batch_transfer, module, Some(f), |f, m, ctx| f(m, batch, dataloader_idx, ctx))?
                .expect("defined")),
            None => Ok(batch),
        }
    }

    /// `transfer_batch_to_device` (default: every tensor of the batch to the run's device).
    pub fn transfer_batch_to_device<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: M::Batch,
        dataloader_idx: usize,
    ) -> Result<M::Batch> {
        let batch = match self.datamodule_transfer(
            Transfer::ToDevice,
            dm_info::transfer_batch_to_device,
            batch,
            dataloader_idx,
        )? {
            Ok(moved) => return Ok(moved),
            Err(batch) => batch,
        };
        let device = self.ctx.device;
        match M::HOOKS.transfer_batch_to_device {
            Some(f) => Ok(self
                .module(info::transfer_batch_to_device, module, Some(f), |f, m, ctx| {
                    f(m, batch, device, dataloader_idx, ctx)
                })?
                .expect("defined")),
            None => {
                // Timed under the hook's name, as Lightning's profiler times its default `transfer_batch_to_device`.
                let started = self.profile_start();
                let moved = match self.batch_kind {
                    Some(kind) => batch.to_device(device).and_then(|b| b.to_float_kind(kind)),
                    None => batch.to_device(device),
                };
                self.profile_end(Action::Module("transfer_batch_to_device"), started);
                moved
            }
        }
    }

    /// `on_after_batch_transfer` (default: the batch as it is).
    pub fn on_after_batch_transfer<M: LightningModule>(
        &mut self,
        module: &mut M,
        batch: M::Batch,
        dataloader_idx: usize,
    ) -> Result<M::Batch> {
        let batch =
            match self.datamodule_transfer(Transfer::After, dm_info::on_after_batch_transfer, batch, dataloader_idx)? {
                Ok(moved) => return Ok(moved),
                Err(batch) => batch,
            };
        match M::HOOKS.on_after_batch_transfer {
            Some(f) => Ok(self
                .module(info::on_after_batch_transfer, module, Some(f), |f, m, ctx| f(m, batch, dataloader_idx, ctx))?
                .expect("defined")),
            None => Ok(batch),
        }
    }
}

/// What the data module returned, as the type the entry point's signature tied it to.
fn downcast<T: 'static>(boxed: Box<dyn Any>) -> Result<T> {
    boxed
        .downcast::<T>()
        .map(|value| *value)
        .map_err(|_| Error::Config(format!("the data module's value is not a `{}`", std::any::type_name::<T>())))
}
