//! Data modules (Lightning's `LightningDataModule`): the data of a run in a type of its own, given to an entry
//! point in place of loaders (`trainer.fit(&mut model, &mut data, None)`), whose hooks then prepare and set
//! up the data, give the loaders and move the batches.
//!
//! The Trainer holds a data module as [`AnyDataModule`], which erases its batch type (the entry points' types
//! tie it to the module's, so the runtime's downcasts cannot fail).

use std::any::Any;

use tch::Device;

use crate::context::{Ctx, Stage};
use crate::data::{Batch, Loader, Loaders};
use crate::error::HookError;
use crate::Error;

/// Data the Trainer can run on, given to an entry point as `&mut data`. Do not implement it by hand: put
/// `#[lightning_datamodule]` on an inherent `impl` block of the type, which implements it from the hooks the
/// block defines (see the attribute's documentation).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a LightningDataModule",
    label = "not a data module",
    note = "put `#[lightning_datamodule]` on an `impl` block of `{Self}` that defines its hooks"
)]
pub trait LightningDataModule: Sized + 'static {
    /// The batches its loaders yield: the module's batch type.
    type Batch: Batch;
    /// The hooks it defines, as plain function pointers; `None` where it does not define one.
    const HOOKS: DataHookTable<Self>;
}

lightning_macros::__datamodule_hook_table!();

/// Which of the batch-transfer hooks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transfer {
    Before,
    ToDevice,
    After,
}

/// Which loaders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Which {
    Train,
    Val,
    Test,
    Predict,
}

/// A data module with its batch type erased, as the Trainer holds it. Each method calls one hook, `None` when
/// the data module does not define it.
pub(crate) trait AnyDataModule {
    /// The name its state is saved under in checkpoints (Lightning's class `__qualname__`).
    fn state_key(&self) -> String;
    fn prepare_data(&mut self, ctx: &mut Ctx) -> Option<Result<(), HookError>>;
    fn setup(&mut self, stage: Stage, ctx: &mut Ctx) -> Option<Result<(), HookError>>;
    fn teardown(&mut self, stage: Stage, ctx: &mut Ctx) -> Option<Result<(), HookError>>;
    /// A `Box<Loader<B>>` for `Which::Train`, else a `Box<Loaders<B>>`.
    fn dataloaders(&mut self, which: Which, ctx: &mut Ctx) -> Option<Result<Box<dyn Any>, HookError>>;
    fn defines_dataloader(&self, which: Which) -> bool;
    fn defines_transfer(&self, which: Transfer) -> bool;
    /// Calls a batch-transfer hook on a `Box<B>`; the batch it returns, boxed.
    fn transfer(
        &mut self,
        which: Transfer,
        batch: Box<dyn Any>,
        device: Device,
        dataloader_idx: usize,
        ctx: &mut Ctx,
    ) -> Option<Result<Box<dyn Any>, HookError>>;
    fn state_dict(&mut self, ctx: &mut Ctx) -> Option<Result<serde_json::Value, HookError>>;
    fn load_state_dict(&mut self, state: serde_json::Value, ctx: &mut Ctx) -> Option<Result<(), HookError>>;
    fn on_exception(&mut self, error: &Error, ctx: &mut Ctx) -> Option<Result<(), HookError>>;
}

impl<D: LightningDataModule> AnyDataModule for D {
    fn state_key(&self) -> String {
        state_key(std::any::type_name::<D>())
    }

    fn prepare_data(&mut self, ctx: &mut Ctx) -> Option<Result<(), HookError>> {
        D::HOOKS.prepare_data.map(|f| f(self, ctx))
    }

    fn setup(&mut self, stage: Stage, ctx: &mut Ctx) -> Option<Result<(), HookError>> {
        D::HOOKS.setup.map(|f| f(self, stage, ctx))
    }

    fn teardown(&mut self, stage: Stage, ctx: &mut Ctx) -> Option<Result<(), HookError>> {
        D::HOOKS.teardown.map(|f| f(self, stage, ctx))
    }

    fn dataloaders(&mut self, which: Which, ctx: &mut Ctx) -> Option<Result<Box<dyn Any>, HookError>> {
        fn boxed<T: 'static>(result: Result<T, HookError>) -> Result<Box<dyn Any>, HookError> {
            result.map(|value| Box::new(value) as Box<dyn Any>)
        }
        let hooks = &D::HOOKS;
        match which {
            Which::Train => hooks.train_dataloader.map(|f| boxed::<Loader<D::Batch>>(f(self, ctx))),
            Which::Val => hooks.val_dataloader.map(|f| boxed::<Loaders<D::Batch>>(f(self, ctx))),
            Which::Test => hooks.test_dataloader.map(|f| boxed::<Loaders<D::Batch>>(f(self, ctx))),
            Which::Predict => hooks.predict_dataloader.map(|f| boxed::<Loaders<D::Batch>>(f(self, ctx))),
        }
    }

    fn defines_dataloader(&self, which: Which) -> bool {
        let hooks = &D::HOOKS;
        match which {
            Which::Train => hooks.train_dataloader.is_some(),
            Which::Val => hooks.val_dataloader.is_some(),
            Which::Test => hooks.test_dataloader.is_some(),
            Which::Predict => hooks.predict_dataloader.is_some(),
        }
    }

    fn defines_transfer(&self, which: Transfer) -> bool {
        let hooks = &D::HOOKS;
        match which {
            Transfer::Before => hooks.on_before_batch_transfer.is_some(),
            Transfer::ToDevice => hooks.transfer_batch_to_device.is_some(),
            Transfer::After => hooks.on_after_batch_transfer.is_some(),
        }
    }

    fn transfer(
        &mut self,
        which: Transfer,
        batch: Box<dyn Any>,
        device: Device,
        dataloader_idx: usize,
        ctx: &mut Ctx,
    ) -> Option<Result<Box<dyn Any>, HookError>> {
        let batch = match batch.downcast::<D::Batch>() {
            Ok(batch) => *batch,
            Err(_) => return Some(Err("the batch is not the data module's batch type".into())),
        };
        let hooks = &D::HOOKS;
        let moved = match which {
            Transfer::Before => hooks.on_before_batch_transfer.map(|f| f(self, batch, dataloader_idx, ctx)),
            Transfer::ToDevice => hooks.transfer_batch_to_device.map(|f| f(self, batch, device, dataloader_idx, ctx)),
            Transfer::After => hooks.on_after_batch_transfer.map(|f| f(self, batch, dataloader_idx, ctx)),
        };
        moved.map(|result| result.map(|batch| Box::new(batch) as Box<dyn Any>))
    }

    fn state_dict(&mut self, ctx: &mut Ctx) -> Option<Result<serde_json::Value, HookError>> {
        D::HOOKS.state_dict.map(|f| f(self, ctx))
    }

    fn load_state_dict(&mut self, state: serde_json::Value, ctx: &mut Ctx) -> Option<Result<(), HookError>> {
        D::HOOKS.load_state_dict.map(|f| f(self, state, ctx))
    }

    fn on_exception(&mut self, error: &Error, ctx: &mut Ctx) -> Option<Result<(), HookError>> {
        D::HOOKS.on_exception.map(|f| f(self, error, ctx))
    }
}

/// A type's name without the module paths (in its generic arguments too): `app::data::Digits<app::Aug>` →
/// `Digits<Aug>`, so that moving a type between modules keeps its checkpoints' key.
fn state_key(type_name: &str) -> String {
    let mut key = String::with_capacity(type_name.len());
    let mut word = String::new();
    for c in type_name.chars() {
        if c.is_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
        } else {
            key.push_str(word.rsplit("::").next().unwrap_or_default());
            word.clear();
            key.push(c);
        }
    }
    key.push_str(word.rsplit("::").next().unwrap_or_default());
    key
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_state_key_leaves_the_module_paths_out() {
        assert_eq!(super::state_key("app::data::Digits"), "Digits");
        assert_eq!(super::state_key("app::data::Digits<app::aug::Flip, 3>"), "Digits<Flip, 3>");
        assert_eq!(super::state_key("Plain"), "Plain");
    }
}
