//! Names that are not hooks but look like them: Lightning 1.x hooks and arguments that 2.x removed, and names
//! brought from other frameworks. Defining one is an error that says what to write instead (`check.rs`), and the
//! removed hooks are listed in `HOOKS.md`. Also: the hook a misspelled name was likely meant to be.

use crate::catalogue::{Hook, HOOKS};

/// Methods of Lightning 1.x that 2.x removed or renamed, and what to write instead.
pub const REMOVED: &[(&str, &str)] = &[
    ("training_epoch_end", "was removed in Lightning 2.0: use `on_train_epoch_end` and keep the step outputs you need on `self`"),
    ("validation_epoch_end", "was removed in Lightning 2.0: use `on_validation_epoch_end` and keep the step outputs you need on `self`"),
    ("test_epoch_end", "was removed in Lightning 2.0: use `on_test_epoch_end` and keep the step outputs you need on `self`"),
    ("training_step_end", "was removed in Lightning 2.0: use `on_train_batch_end`"),
    ("validation_step_end", "was removed in Lightning 2.0: use `on_validation_batch_end`"),
    ("test_step_end", "was removed in Lightning 2.0: use `on_test_batch_end`"),
    ("on_pretrain_routine_start", "was removed in Lightning 1.8: use `on_fit_start`"),
    ("on_pretrain_routine_end", "was removed in Lightning 1.8: use `on_fit_start`"),
    ("on_post_move_to_device", "was removed in Lightning 1.7: tie weights in `configure_model` or `setup`"),
    ("on_epoch_start", "was removed in Lightning 1.8: use `on_train_epoch_start`, `on_validation_epoch_start` or `on_test_epoch_start`"),
    ("on_epoch_end", "was removed in Lightning 1.8: use `on_train_epoch_end`, `on_validation_epoch_end` or `on_test_epoch_end`"),
    ("on_train_dataloader", "was removed in Lightning 1.7: use `train_dataloader`"),
    ("on_val_dataloader", "was removed in Lightning 1.7: use `val_dataloader`"),
    ("on_test_dataloader", "was removed in Lightning 1.7: use `test_dataloader`"),
    ("on_predict_dataloader", "was removed in Lightning 1.7: use `predict_dataloader`"),
    ("on_hpc_save", "was removed in Lightning 1.8: use `on_save_checkpoint`"),
    ("on_hpc_load", "was removed in Lightning 1.8: use `on_load_checkpoint`"),
    ("tbptt_split_batch", "was removed in Lightning 2.0: split sequences yourself in manual optimization"),
    ("log_grad_norm", "was removed in Lightning 2.0: compute gradient norms in `on_before_optimizer_step`"),
    ("get_progress_bar_dict", "was removed in Lightning 1.7: log with `prog_bar` to show a value in the progress bar"),
    ("on_batch_start", "was removed in Lightning 1.8: use `on_train_batch_start`"),
    ("on_batch_end", "was removed in Lightning 1.8: use `on_train_batch_end`"),
    ("on_init_start", "was removed in Lightning 1.8: do the work in the module's constructor, or in `setup`"),
    ("on_init_end", "was removed in Lightning 1.8: do the work in the module's constructor, or in `setup`"),
    ("on_configure_sharded_model", "was removed in Lightning 1.8: use `configure_model`"),
    ("on_before_accelerator_backend_setup", "was removed in Lightning 1.8: use `setup`"),
    ("on_keyboard_interrupt", "was removed in Lightning 1.7: a callback's `on_exception` runs on Ctrl-C (the error is `Error::Interrupted`)"),
    ("add_to_queue", "was removed in Lightning 2.0: keep results on `self`, or return them from `validate`/`test`/`predict`"),
    ("get_from_queue", "was removed in Lightning 2.0: keep results on `self`, or return them from `validate`/`test`/`predict`"),
    ("on_train_epoch_end_outputs", "is not a hook: `on_train_epoch_end` lost its `outputs` in Lightning 2.0; keep the step outputs you need on `self`"),
];

/// Names from other frameworks, and abbreviations, that are not hooks here: what to write instead. A helper that
/// really has one of these names is marked `#[lightning(helper)]`.
pub const FOREIGN: &[(&str, &str)] = &[
    ("train_step", "training_step"),
    ("val_step", "validation_step"),
    ("eval_step", "validation_step"),
    ("val_epoch_start", "on_validation_epoch_start"),
    ("val_epoch_end", "on_validation_epoch_end"),
    ("on_val_epoch_start", "on_validation_epoch_start"),
    ("on_val_epoch_end", "on_validation_epoch_end"),
    ("on_val_batch_start", "on_validation_batch_start"),
    ("on_val_batch_end", "on_validation_batch_end"),
    ("on_val_start", "on_validation_start"),
    ("on_val_end", "on_validation_end"),
    ("valid_dataloader", "val_dataloader"),
    ("validation_dataloader", "val_dataloader"),
    ("eval_dataloader", "val_dataloader"),
    // Keras callbacks.
    ("on_train_begin", "on_train_start"),
    ("on_epoch_begin", "on_train_epoch_start"),
    ("on_train_epoch_begin", "on_train_epoch_start"),
    ("on_batch_begin", "on_train_batch_start"),
    ("on_train_batch_begin", "on_train_batch_start"),
    ("on_test_begin", "on_test_start"),
    ("on_test_batch_begin", "on_test_batch_start"),
    ("on_predict_begin", "on_predict_start"),
    ("on_predict_batch_begin", "on_predict_batch_start"),
    // fastai callbacks.
    ("before_fit", "on_fit_start"),
    ("after_fit", "on_fit_end"),
    ("before_epoch", "on_train_epoch_start"),
    ("after_epoch", "on_train_epoch_end"),
    ("before_train", "on_train_epoch_start"),
    ("after_train", "on_train_epoch_end"),
    ("before_validate", "on_validation_start"),
    ("after_validate", "on_validation_end"),
    ("before_batch", "on_train_batch_start"),
    ("after_batch", "on_train_batch_end"),
    ("after_loss", "on_before_backward"),
    ("before_backward", "on_before_backward"),
    ("after_backward", "on_after_backward"),
    ("before_step", "on_before_optimizer_step"),
    ("before_zero_grad", "on_before_zero_grad"),
];

/// Parameters of Lightning 1.x that 2.x removed, and why.
pub const REMOVED_PARAMS: &[(&str, &str)] = &[
    ("optimizer_idx", "the `optimizer_idx` argument was removed in Lightning 2.0: a module with several optimizers uses manual optimization and steps each one itself"),
    ("opt_idx", "the `opt_idx` argument was removed in Lightning 2.0: a module with several optimizers uses manual optimization and steps each one itself"),
    ("hiddens", "the `hiddens` argument (truncated backpropagation through time) was removed in Lightning 2.0: keep hidden state on `self` in manual optimization"),
    ("on_tpu", "the `on_tpu` argument of `optimizer_step` was removed in Lightning 2.0"),
    ("using_native_amp", "the `using_native_amp` argument of `optimizer_step` was removed in Lightning 2.0"),
    ("using_lbfgs", "the `using_lbfgs` argument of `optimizer_step` was removed in Lightning 2.0"),
];

/// The hook whose name is closest to `name`, if it is close enough to be a likely typo.
pub fn near_miss(name: &str) -> Option<&'static Hook> {
    // One edit per eight characters (at least one) catches typos and swapped letters
    // (`trainig_step`, `validation_stpe`, `on_validation_epoch_stop`) without flagging ordinary helpers that
    // share a prefix with a hook (`training_loss`, `validation_metrics`).
    let limit = (name.len() / 8).max(1);
    HOOKS
        .iter()
        .map(|hook| (strsim::damerau_levenshtein(name, hook.name), hook))
        .filter(|(distance, _)| *distance <= limit)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, hook)| hook)
}
