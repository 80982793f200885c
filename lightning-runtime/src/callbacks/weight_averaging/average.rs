//! The averaged copy of a module's variables that the weight-averaging callbacks keep (PyTorch's
//! `AveragedModel`): created from the module, updated from it, swapped with it, and saved in checkpoints.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::{Kind, Tensor};

use crate::callback::CallbackResult;

/// How an update folds the module's current value into the average.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum AvgFn {
    /// The equally weighted mean of every value averaged (SWA): `avg + (p - avg) / (n + 1)`.
    Mean,
    /// The exponential moving average: `decay * avg + (1 - decay) * p` (PyTorch's `get_ema_avg_fn`).
    Ema(f64),
}

/// The averaged variables, by name (sorted), and how many updates they hold (`n_averaged`).
pub(crate) struct Averaged {
    pub tensors: Vec<(String, Tensor)>,
    pub n_averaged: u64,
}

impl Averaged {
    /// A copy of the module's variables (of its trainable ones only, unless `buffers`), none averaged yet.
    pub fn of(vs: &VarStore, buffers: bool) -> Self {
        let mut tensors: Vec<_> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| buffers || t.requires_grad())
            .map(|(name, t)| (name, t.detach().copy()))
            .collect();
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Averaged { tensors, n_averaged: 0 }
    }

    /// Each averaged tensor with the module's variable of the same name: an error names one the module lacks
    /// or has in another shape (a module changed between the copy and now).
    fn pairs(&self, vs: &VarStore) -> Result<Vec<(Tensor, Tensor)>, String> {
        let mut variables: HashMap<String, Tensor> = vs.variables();
        self.tensors
            .iter()
            .map(|(name, avg)| {
                let current =
                    variables.remove(name).ok_or_else(|| format!("the module has no variable `{name}` any more"))?;
                if current.size() != avg.size() {
                    return Err(format!(
                        "the module's variable `{name}` is {:?} but its average is {:?}",
                        current.size(),
                        avg.size()
                    ));
                }
                Ok((avg.shallow_clone(), current))
            })
            .collect()
    }

    /// Folds the module's current values into the average: the first update copies them (as PyTorch's
    /// `AveragedModel` does), later ones apply `avg_fn`. Integer variables are copied, not averaged.
    pub fn update(&mut self, vs: &VarStore, avg_fn: AvgFn) -> CallbackResult {
        let first = self.n_averaged == 0;
        let n = self.n_averaged as f64;
        tch::no_grad(|| -> CallbackResult {
            for (mut avg, current) in self.pairs(vs)? {
                let current = current.f_to_device(avg.device())?;
                let floating = matches!(avg.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16);
                let value = if first || !floating {
                    current
                } else {
                    match avg_fn {
                        AvgFn::Mean => avg.f_add(&current.f_sub(&avg)?.f_div_scalar(n + 1.0)?)?,
                        AvgFn::Ema(decay) => avg.f_mul_scalar(decay)?.f_add(&current.f_mul_scalar(1.0 - decay)?)?,
                    }
                };
                avg.f_copy_(&value)?;
            }
            Ok(())
        })?;
        self.n_averaged += 1;
        Ok(())
    }

    /// Exchanges the module's values with the averaged ones, in place (the optimizer's references to the
    /// module's tensors stay valid).
    pub fn swap(&self, vs: &VarStore) -> CallbackResult {
        tch::no_grad(|| -> CallbackResult {
            for (mut avg, mut current) in self.pairs(vs)? {
                let kept = current.f_to_device(avg.device())?.copy();
                current.f_copy_(&avg)?;
                avg.f_copy_(&kept)?;
            }
            Ok(())
        })
    }

    /// Gives the module the averaged values.
    pub fn copy_to(&self, vs: &VarStore) -> CallbackResult {
        tch::no_grad(|| -> CallbackResult {
            for (avg, mut current) in self.pairs(vs)? {
                current.f_copy_(&avg)?;
            }
            Ok(())
        })
    }

    /// Sets the averaged values from a checkpoint's tensors (`lookup` gives a tensor by variable name).
    pub fn load(&mut self, lookup: impl Fn(&str) -> Option<Tensor>) -> CallbackResult {
        tch::no_grad(|| -> CallbackResult {
            for (name, avg) in &mut self.tensors {
                let saved = lookup(name).ok_or_else(|| format!("the checkpoint has no averaged value of `{name}`"))?;
                if saved.size() != avg.size() {
                    return Err(format!(
                        "the checkpoint's averaged `{name}` is {:?} but the module's variable is {:?}",
                        saved.size(),
                        avg.size()
                    )
                    .into());
                }
                avg.f_copy_(&saved)?;
            }
            Ok(())
        })
    }
}

/// Puts the averaged values in a checkpoint's `model.*` tensors (what `load_from_checkpoint` and evaluation
/// stages load), and the module's current values under `current_model.*` (what a resumed `fit` trains on):
/// Lightning's `state_dict` and `current_model_state`.
pub(crate) fn save_into(averaged: &Averaged, checkpoint: &mut crate::Checkpoint) {
    let mut current = Vec::new();
    for (name, tensor) in &mut checkpoint.tensors {
        let Some(variable) = name.strip_prefix("model.") else { continue };
        if let Ok(index) = averaged.tensors.binary_search_by(|(n, _)| n.as_str().cmp(variable)) {
            current.push((format!("current_model.{variable}"), tensor.shallow_clone()));
            *tensor = averaged.tensors[index].1.shallow_clone();
        }
    }
    checkpoint.tensors.extend(current);
}

/// Restores from a checkpoint `save_into` wrote: the average from `model.*`, the module from `current_model.*`.
/// A checkpoint written without averaging (no `current_model.*`) starts the average from its weights, as
/// Lightning does.
pub(crate) fn load_from(
    averaged: &mut Averaged,
    vs: &VarStore,
    checkpoint: &crate::Checkpoint,
) -> Result<bool, crate::HookError> {
    let lookup = |prefix: &str, name: &str| {
        checkpoint.tensors.iter().find(|(n, _)| n.strip_prefix(prefix) == Some(name)).map(|(_, t)| t.shallow_clone())
    };
    averaged.load(|name| lookup("model.", name))?;
    let has_current = checkpoint.tensors.iter().any(|(n, _)| n.starts_with("current_model."));
    if has_current {
        tch::no_grad(|| -> CallbackResult {
            for (name, mut variable) in vs.variables() {
                let saved = lookup("current_model.", &name)
                    .ok_or_else(|| format!("the checkpoint has no current value of `{name}`"))?;
                if saved.size() != variable.size() {
                    return Err(format!(
                        "the checkpoint's current `{name}` is {:?} but the module's variable is {:?}",
                        saved.size(),
                        variable.size()
                    )
                    .into());
                }
                variable.f_copy_(&saved)?;
            }
            Ok(())
        })?;
    }
    Ok(has_current)
}
