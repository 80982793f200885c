//! The largest batch size that fits (Lightning's `Tuner.scale_batch_size`): trial fits of a few steps at growing
//! batch sizes until one runs out of memory (or over a time budget), by doubling (`Power`) or then bisecting
//! (`BinSearch`).

use std::time::{Duration, Instant};

use super::{trial_config, Saved, Tuner};
use crate::data::Loader;
use crate::module::{HasConfigureOptimizers, HasTrainingStep};
use crate::{Error, Result};

/// How the batch size is searched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchSizeMode {
    /// Double until a trial fails; the answer is the last size that ran (Lightning's default).
    #[default]
    Power,
    /// Double until a trial fails, then bisect between the last size that ran and the one that failed.
    BinSearch,
}

/// The search's settings, Lightning's defaults: from 2, 3 steps per trial, at most 25 trials.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScaleBatchSize {
    /// Power or binary search.
    pub mode: BatchSizeMode,
    /// Training steps each trial runs.
    pub steps_per_trial: usize,
    /// The first size tried.
    pub init_val: usize,
    /// At most this many trials.
    pub max_trials: usize,
    /// The largest size to try (the dataset's size, say).
    pub max_val: Option<usize>,
    /// A trial whose steps take longer than this fails as an out-of-memory one does (on the CPU, where running
    /// out of memory means swapping rather than an error).
    pub max_trial_time: Option<Duration>,
}

impl Default for ScaleBatchSize {
    fn default() -> Self {
        ScaleBatchSize {
            mode: BatchSizeMode::Power,
            steps_per_trial: 3,
            init_val: 2,
            max_trials: 25,
            max_val: None,
            max_trial_time: None,
        }
    }
}

impl ScaleBatchSize {
    /// Power or binary search.
    pub fn mode(mut self, mode: BatchSizeMode) -> Self {
        self.mode = mode;
        self
    }

    /// The first size tried.
    pub fn init_val(mut self, size: usize) -> Self {
        self.init_val = size;
        self
    }

    /// The largest size tried.
    pub fn max_val(mut self, size: usize) -> Self {
        self.max_val = Some(size);
        self
    }

    /// Steps each trial runs.
    pub fn steps_per_trial(mut self, steps: usize) -> Self {
        self.steps_per_trial = steps;
        self
    }

    /// At most this many trials.
    pub fn max_trials(mut self, trials: usize) -> Self {
        self.max_trials = trials;
        self
    }

    /// A trial slower than this fails.
    pub fn max_trial_time(mut self, limit: Duration) -> Self {
        self.max_trial_time = Some(limit);
        self
    }
}

/// Whether an error is libtorch running out of memory (Lightning's `is_oom_error`: CUDA's allocator, cuDNN's
/// refusal for lack of workspace, the CPU allocator).
pub fn is_out_of_memory(error: &Error) -> bool {
    let text = error.to_string();
    [
        "CUDA out of memory",
        "CUDA error: out of memory",
        "CUDNN_STATUS_NOT_SUPPORTED",
        "DefaultCPUAllocator: can't allocate memory",
    ]
    .iter()
    .any(|sign| text.contains(sign))
}

impl Tuner<'_> {
    /// Finds the largest batch size whose `steps_per_trial` training steps run without running out of memory
    /// (or past `max_trial_time`), with loaders from `loader(batch_size)`; then puts the module's weights and the
    /// Trainer back as they were. Errors other than running out of memory end the search with that error.
    pub fn scale_batch_size<M: HasTrainingStep + HasConfigureOptimizers + 'static>(
        &mut self,
        module: &mut M,
        mut loader: impl FnMut(usize) -> Result<Loader<M::Batch>>,
        options: ScaleBatchSize,
    ) -> Result<usize> {
        if options.init_val == 0 || options.steps_per_trial == 0 || options.max_trials == 0 {
            return Err(Error::Config(
                "scale_batch_size: init_val, steps_per_trial and max_trials must be at least 1".into(),
            ));
        }
        let saved = Saved::take(self.trainer, module)?;
        let mut trial = |trainer: &mut crate::Trainer, module: &mut M, size: usize| -> Result<bool> {
            trial_config(trainer, options.steps_per_trial);
            let started = Instant::now();
            match trainer.fit(module, loader(size)?, None) {
                Ok(()) => Ok(options.max_trial_time.is_none_or(|limit| started.elapsed() <= limit)),
                Err(error) if is_out_of_memory(&error) => Ok(false),
                Err(error) => Err(error),
            }
        };
        let found = search(options, |size| trial(self.trainer, module, size));
        let restored = saved.restore(self.trainer, module);
        let found = found?;
        restored?;
        found.ok_or_else(|| Error::Config("scale_batch_size: even a batch of 1 ran out of memory (or of time)".into()))
    }
}

/// The search over sizes, given whether a trial at a size runs; the largest size that ran, if any did.
fn search(options: ScaleBatchSize, mut runs: impl FnMut(usize) -> Result<bool>) -> Result<Option<usize>> {
    let cap = |size: usize| options.max_val.map_or(size, |max| size.min(max));
    let (mut low, mut high): (Option<usize>, Option<usize>) = (None, None);
    let mut size = cap(options.init_val);
    for _ in 0..options.max_trials {
        if runs(size)? {
            low = Some(size);
            let next = match (options.mode, high) {
                (BatchSizeMode::BinSearch, Some(high)) => (size + high) / 2,
                _ => cap(size.saturating_mul(2)),
            };
            if next == size {
                break;
            }
            size = next;
        } else {
            high = Some(size);
            match (options.mode, low) {
                // Power: the last size that ran is the answer.
                (BatchSizeMode::Power, Some(_)) => break,
                (BatchSizeMode::BinSearch, Some(low)) if size - low <= 1 => break,
                (BatchSizeMode::BinSearch, Some(low)) => size = (low + size) / 2,
                // Nothing ran yet: try smaller.
                (_, None) if size > 1 => size /= 2,
                (_, None) => break,
            }
        }
    }
    Ok(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(mode: BatchSizeMode, init: usize, fits: usize) -> (Option<usize>, Vec<usize>) {
        let mut tried = Vec::new();
        let options = ScaleBatchSize::default().mode(mode).init_val(init);
        let found = search(options, |size| {
            tried.push(size);
            Ok(size <= fits)
        })
        .unwrap();
        (found, tried)
    }

    #[test]
    fn power_doubles_until_a_failure_and_binary_search_then_bisects() {
        assert_eq!(find(BatchSizeMode::Power, 2, 40), (Some(32), vec![2, 4, 8, 16, 32, 64]));
        let (found, tried) = find(BatchSizeMode::BinSearch, 2, 40);
        assert_eq!(found, Some(40));
        assert_eq!(tried, [2, 4, 8, 16, 32, 64, 48, 40, 44, 42, 41]);
        // Nothing fits at the start: smaller sizes are tried.
        assert_eq!(find(BatchSizeMode::Power, 16, 5).0, Some(4));
        assert_eq!(find(BatchSizeMode::BinSearch, 16, 5).0, Some(5));
        assert_eq!(find(BatchSizeMode::Power, 4, 0).0, None);
        // A cap ends the doubling.
        let capped = search(ScaleBatchSize::default().max_val(10), |_| Ok(true)).unwrap();
        assert_eq!(capped, Some(10));
    }
}
