//! The hooks a `#[lightning_datamodule]` may define (Lightning's `LightningDataModule`): the module's data hooks,
//! read off the module's catalogue so that both take the same signatures, plus the three a data module alone has.

use crate::catalogue::{self, hook, mut_hook, p, Group, Hook, Ret, Ty};
use crate::ctxt::Ctxt;

/// The module's hooks a data module has too (Lightning's `DataHooks`), in the catalogue's order.
const SHARED: &[&str] = &[
    "prepare_data",
    "setup",
    "teardown",
    "train_dataloader",
    "val_dataloader",
    "test_dataloader",
    "predict_dataloader",
    "transfer_batch_to_device",
    "on_before_batch_transfer",
    "on_after_batch_transfer",
];

/// The hooks only a data module has.
const ONLY: &[Hook] = &[
    hook(
        "state_dict",
        Group::Checkpoint,
        &[],
        Ret::Json,
        "when a checkpoint is written, after the callbacks' state; saved under the data module's type name",
    ),
    mut_hook(
        "load_state_dict",
        Group::Checkpoint,
        &[p("state", Ty::Json)],
        Ret::Unit,
        "when a checkpoint that holds its state is restored, after the module's weights",
    ),
    hook(
        "on_exception",
        Group::Data,
        &[p("error", Ty::ErrorRef)],
        Ret::Unit,
        "when an entry point fails, after the callbacks' `on_exception`",
    ),
];

/// Every data-module hook, in order.
pub fn hooks() -> impl Iterator<Item = &'static Hook> {
    SHARED.iter().map(|name| catalogue::find(name).expect("a shared data hook is in the catalogue")).chain(ONLY)
}

/// The data-module hook called `name`, if there is one.
pub fn find(name: &str) -> Option<&'static Hook> {
    hooks().find(|hook| hook.name == name)
}

/// A method of a data module that is no hook of it: a module hook put here, or a near miss. Anything else is a
/// helper.
pub fn not_a_hook(cx: &mut Ctxt, ident: &syn::Ident, cfgs: &[syn::Attribute]) {
    let name = ident.to_string();
    let names: Vec<&str> = hooks().map(|hook| hook.name).collect();
    let help = "= help: a method that is not meant as a hook is marked `#[lightning(helper)]`";
    if catalogue::find(&name).is_some() {
        cx.error_under_cfg(
            cfgs,
            ident,
            format!(
                "`{name}` is a hook of `#[lightning_module]`, not of a data module: define it on the model\n= help: a data module's hooks are {}",
                names.iter().map(|name| format!("`{name}`")).collect::<Vec<_>>().join(", ")
            ),
        );
        return;
    }
    let close = names.iter().copied().min_by_key(|known| strsim::damerau_levenshtein(&name, known));
    if let Some(known) = close.filter(|known| strsim::damerau_levenshtein(&name, known) <= (name.len() / 5).max(1)) {
        cx.error_under_cfg(
            cfgs,
            ident,
            format!("`{name}` is not a hook of `#[lightning_datamodule]`\n= help: did you mean `{known}`?\n{help}"),
        );
    }
}
