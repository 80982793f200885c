//! Checkpoints: what one holds, how it is written (atomically) and read back (with every problem named).
//!
//! A checkpoint is one safetensors file. Its tensors are the model's variables (`model.<name>`) and the
//! optimizers' state (`optimizer.<i>.<param>.<slot>`); its header's metadata holds, under `lightning-rs`, a JSON
//! document with the format version, the loop's position (epoch, global step, batches done in the epoch), the
//! seed, the optimizers' and schedulers' settings and counters, every callback's state, the epoch's partial
//! metrics, the module's hyper-parameters and the module's own entries from `on_save_checkpoint`. Readable with
//! any safetensors reader; `head -c 4096 file.ckpt` shows the JSON.

mod file;
pub(crate) use file::Encoded;
mod restore;

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tch::Tensor;

use crate::metrics::MetricState;
use crate::optim::{LrScheduler, OptimizerState};
use crate::{Error, Result};

pub(crate) use restore::load_weights;
pub use restore::LoadOptions;

/// The version of the checkpoint format this build writes; it reads this version and format 1 (which had no
/// checksums). Format 2 added the checksums and the accumulated gradients.
pub const FORMAT_VERSION: u32 = 2;

/// Where training stood when the checkpoint was written.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Progress {
    /// The epoch being trained (or just finished, when `epoch_finished`).
    pub epoch: usize,
    pub global_step: usize,
    /// Training batches of `epoch` already run.
    pub batches_done: usize,
    /// Whether `epoch` had ended: a resumed run starts at the next one.
    pub epoch_finished: bool,
}

/// Everything besides the tensors, as the JSON in the file's header. Every key is required (but `hparams`, whose
/// absence means none, and `tensors`, absent in format 1) and no other is accepted: a damaged key is an error,
/// never a default (format 2's checksum covers the whole document besides).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Meta {
    pub format_version: u32,
    pub progress: Progress,
    /// The seed the run draws its randomness from (see `Trainer::seed`).
    pub seed: u64,
    pub optimizers: Vec<OptimizerState>,
    pub schedulers: Vec<LrScheduler>,
    /// The gradient scaler's state (`16-mixed` runs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaler: Option<crate::ScalerState>,
    /// Each callback's `state_dict`, by its name.
    pub callbacks: BTreeMap<String, Value>,
    /// The data module's `state_dict`, under its type's name (absent when it saved none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub datamodule: BTreeMap<String, Value>,
    /// The training epoch's partial metrics, so that a resumed epoch reports the same means.
    pub metrics: Vec<MetricState>,
    /// The module's hyper-parameters, when it declares them.
    pub hparams: Option<Value>,
    /// The module's own entries.
    pub extra: Map<String, Value>,
    /// Every tensor of the file with its dtype, shape and checksum (format 2 on; set when the file is written,
    /// checked and dropped when it is read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensors: Option<BTreeMap<String, TensorRecord>>,
}

/// What the metadata says of one tensor of the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TensorRecord {
    /// safetensors' name of its dtype (`F32`, `I64`, ...).
    pub dtype: String,
    pub shape: Vec<usize>,
    /// CRC32C (Castagnoli) of its bytes.
    pub crc32c: u32,
}

/// A checkpoint, in memory. `on_save_checkpoint` adds the module's own entries to it; `on_load_checkpoint`
/// reads them back (before the weights are loaded).
///
/// # The file
///
/// One safetensors file (`.ckpt`). Its tensors are the model's variables, named `model.<variable>`, the
/// optimizers' state, `optimizer.<i>.<parameter>.<slot>` (SGD's momentum buffer; Adam's two moments), and, when
/// it was taken inside a gradient-accumulation window, the gradients accumulated so far, `grad.<variable>`. Its
/// header metadata holds `format: lightning-rs`, under `lightning-rs` a JSON document, and under
/// `lightning-rs.crc32c` the CRC32C of that document's text:
///
/// | key | what |
/// |---|---|
/// | `format_version` | the format ([`FORMAT_VERSION`]); newer files are refused with a message |
/// | `progress` | `epoch`, `global_step`, `batches_done` in the epoch, `epoch_finished` |
/// | `seed` | the seed the run's randomness is drawn from, per batch |
/// | `optimizers` | per optimizer: its rule and settings, learning rate, step count, parameter shapes |
/// | `schedulers` | every LR scheduler: schedule, interval, frequency, base rate, steps taken |
/// | `callbacks` | each callback's `state_dict`, by its `state_key` |
/// | `datamodule` | the data module's `state_dict`, under its type's name (only when it saved one) |
/// | `metrics` | the training epoch's partial sums, so a resumed epoch reports the same means |
/// | `hparams` | the module's hyper-parameters (`#[lightning_module(hparams = field)]`) |
/// | `extra` | the module's own entries from `on_save_checkpoint` |
/// | `tensors` | each tensor's dtype, shape and CRC32C |
///
/// Floats that are not finite (a NaN loss in the epoch's sums) are written as the text `"nan"`, `"inf"` or
/// `"-inf"`. Reading checks the metadata's checksum, then every key (a missing or unknown one is an error), then
/// each tensor's dtype, shape and checksum: a damaged file is an error naming the file and the tensor, never a
/// silently different run. Any safetensors reader opens it; `head -c 4096 file.ckpt` shows the JSON. Files are
/// written to a temporary file in the same folder, synced, read back and checked, and only then renamed over the
/// old one, so a crash leaves the old file or the new one, and a file that would not read back replaces nothing.
///
/// ```
/// use lightning::Checkpoint;
/// let mut ckpt = Checkpoint::default();
/// ckpt.insert("vocab", &["a", "b"]).unwrap();
/// let vocab: Vec<String> = ckpt.get("vocab").unwrap().unwrap();
/// assert_eq!(vocab, ["a", "b"]);
/// ```
#[derive(Debug, Default)]
pub struct Checkpoint {
    pub(crate) meta: Meta,
    /// The model's variables and the optimizers' state tensors, by name.
    pub(crate) tensors: Vec<(String, Tensor)>,
}

impl Checkpoint {
    /// Adds an entry of the module's own (anything serde can write as JSON).
    pub fn insert(&mut self, key: &str, value: impl Serialize) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::Config(format!("checkpoint entry `{key}` cannot be written as JSON: {e}")))?;
        self.meta.extra.insert(key.to_string(), value);
        Ok(())
    }

    /// An entry of the module's own, read as `T`; `Ok(None)` when there is none.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        self.meta
            .extra
            .get(key)
            .map(|value| {
                serde_json::from_value(value.clone()).map_err(|e| {
                    Error::Config(format!("checkpoint entry `{key}` has another shape than expected: {e}"))
                })
            })
            .transpose()
    }

    /// The module's own entries.
    pub fn extra(&self) -> &Map<String, Value> {
        &self.meta.extra
    }

    /// The epoch it was written in.
    pub fn epoch(&self) -> usize {
        self.meta.progress.epoch
    }

    /// The optimizer steps taken when it was written.
    pub fn global_step(&self) -> usize {
        self.meta.progress.global_step
    }

    /// The module's hyper-parameters, if it declared them.
    pub fn hparams(&self) -> Option<&Value> {
        self.meta.hparams.as_ref()
    }

    /// A callback's saved state.
    pub fn callback_state(&self, name: &str) -> Option<&Value> {
        self.meta.callbacks.get(name)
    }

    /// The names of the model variables it holds.
    pub fn weight_names(&self) -> Vec<&str> {
        self.tensors.iter().filter_map(|(name, _)| name.strip_prefix("model.")).collect()
    }

    /// The gradient scaler's state, in a checkpoint of a `16-mixed` run.
    pub fn scaler(&self) -> Option<crate::ScalerState> {
        self.meta.scaler
    }

    /// A tensor of the file by its name: `model.<variable>`, `optimizer.<index>.<parameter>.<slot>`, `grad.<variable>`.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The names of every tensor of the file.
    pub fn tensor_names(&self) -> Vec<&str> {
        self.tensors.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// Reads a checkpoint, naming what is wrong when it cannot be read: a missing file, a truncated or foreign
    /// file, corrupt metadata, a newer format.
    pub fn read(path: impl AsRef<Path>) -> Result<Checkpoint> {
        file::read(path.as_ref())
    }

    /// Writes the checkpoint atomically: to a temporary file in the same folder, synced, then renamed over
    /// `path`. A crash at any moment leaves the old file or the new one whole, never a torn one.
    pub fn write(&self, path: impl AsRef<Path>) -> Result<()> {
        self.encode(path.as_ref())?.write()
    }

    /// The checkpoint as CPU bytes bound for `path`, to be written later (by the trainer's background writer).
    pub(crate) fn encode(&self, path: &Path) -> Result<file::Encoded> {
        file::encode(self, path)
    }
}
