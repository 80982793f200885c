//! The batch-norm layers `StochasticWeightAveraging` recomputes the running statistics of, in its extra epoch
//! over the averaged weights (PyTorch's `swa_utils.update_bn`, which Lightning's callback adapts).
//!
//! PyTorch switches each layer to a cumulative average (`momentum = None`) for that epoch. tch fixes a layer's
//! momentum when it is built, so the layers keep their exponential update and the cumulative average is
//! computed here instead: a layer with momentum `m` moves its running value from `old` to
//! `new = (1 - m) old + m b`, where `b` is the batch's statistic, so `b - old = (new - old) / m`; after the
//! `k`-th batch (from 0) the running value is set to the mean of the `k + 1` batches' statistics,
//! `old + (b - old) / (k + 1)`, which is what PyTorch's cumulative average holds.

use tch::nn::VarStore;
use tch::Tensor;

use crate::callback::CallbackResult;

/// One layer's buffers (shallow copies: writing them writes the module's).
struct Layer {
    mean: Tensor,
    var: Tensor,
    /// PyTorch's `num_batches_tracked`, where the layer has one (tch's layers do not).
    tracked: Option<Tensor>,
}

/// The module's batch-norm layers.
pub(crate) struct BatchNormLayers {
    layers: Vec<Layer>,
}

/// A layer's running mean and variance before a batch.
pub(crate) type Before = Vec<(Tensor, Tensor)>;

impl BatchNormLayers {
    /// The layers of `vs`, found by their buffers' names: `<layer>.running_mean` beside `<layer>.running_var`,
    /// as tch's `nn::batch_norm1d/2d/3d` name them (and PyTorch's, whose `num_batches_tracked` is kept too).
    pub fn of(vs: &VarStore) -> Self {
        let variables = vs.variables();
        let mut names: Vec<&String> = variables.keys().collect();
        names.sort();
        let layers = names
            .into_iter()
            .filter_map(|name| {
                let prefix = name.strip_suffix("running_mean")?;
                if !(prefix.is_empty() || prefix.ends_with('.')) {
                    return None;
                }
                let var = variables.get(&format!("{prefix}running_var"))?;
                Some(Layer {
                    mean: variables[name].shallow_clone(),
                    var: var.shallow_clone(),
                    tracked: variables.get(&format!("{prefix}num_batches_tracked")).map(Tensor::shallow_clone),
                })
            })
            .collect();
        BatchNormLayers { layers }
    }

    /// Whether the module has none.
    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// PyTorch's `reset_running_stats`: mean 0, variance 1, no batch tracked.
    pub fn reset(&self) -> CallbackResult {
        tch::no_grad(|| -> CallbackResult {
            // (The in-place operations return the tensor they wrote: nothing more to do with it.)
            for layer in &self.layers {
                let _ = layer.mean.shallow_clone().f_zero_()?;
                let _ = layer.var.shallow_clone().f_fill_(1.0)?;
                if let Some(tracked) = &layer.tracked {
                    let _ = tracked.shallow_clone().f_zero_()?;
                }
            }
            Ok(())
        })
    }

    /// The running statistics as they are before a batch (copies).
    pub fn snapshot(&self) -> Before {
        self.layers.iter().map(|l| (l.mean.detach().copy(), l.var.detach().copy())).collect()
    }

    /// After the epoch's `k`-th batch (from 0) moved the statistics from `before` with momentum `momentum`:
    /// sets them to the mean of the statistics of batches 0 to `k` (see the file's note). A layer the batch did
    /// not run in training mode did not move; its average then counts that batch as one equal to the average.
    pub fn fold(&self, before: &Before, k: u64, momentum: f64) -> CallbackResult {
        if before.len() != self.layers.len() {
            return Err("the batch-norm layers changed during the epoch".into());
        }
        let scale = momentum * (k + 1) as f64;
        tch::no_grad(|| -> CallbackResult {
            for (layer, (mean0, var0)) in self.layers.iter().zip(before) {
                for (running, old) in [(&layer.mean, mean0), (&layer.var, var0)] {
                    let average = old.f_add(&running.f_sub(old)?.f_div_scalar(scale)?)?;
                    running.shallow_clone().f_copy_(&average)?;
                }
                if let Some(tracked) = &layer.tracked {
                    let _ = tracked.shallow_clone().f_fill_((k + 1) as i64)?;
                }
            }
            Ok(())
        })
    }
}
