//! Lightning's `BasePredictionWriter`: a callback that writes what `predict_step` returns as it comes, per batch,
//! at the end of the epoch, or both, so that predictions over a large dataset need not stay in memory until
//! `predict` returns.

use std::any::Any;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use tch::{Device, Tensor};

use crate::callback::{short_type_name, AnyModule, Callback, CallbackResult};
use crate::context::Ctx;
use crate::data::Batch;
use crate::{Error, Result};

/// When a [`PredictionWriter`] writes (Lightning's `write_interval`); parses from Lightning's strings
/// `"batch"`, `"epoch"` and `"batch_and_epoch"`.
///
/// ```
/// use lightning::WriteInterval;
/// assert_eq!("batch_and_epoch".parse::<WriteInterval>()?, WriteInterval::BatchAndEpoch);
/// # Ok::<(), lightning::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteInterval {
    /// After every batch (`write_on_batch_end`), the default as in Lightning.
    #[default]
    Batch,
    /// Once, after the last batch, with every prediction (`write_on_epoch_end`).
    Epoch,
    /// Both.
    BatchAndEpoch,
}

impl WriteInterval {
    fn on_batch(self) -> bool {
        matches!(self, WriteInterval::Batch | WriteInterval::BatchAndEpoch)
    }

    fn on_epoch(self) -> bool {
        matches!(self, WriteInterval::Epoch | WriteInterval::BatchAndEpoch)
    }
}

impl FromStr for WriteInterval {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "batch" => Ok(WriteInterval::Batch),
            "epoch" => Ok(WriteInterval::Epoch),
            "batch_and_epoch" => Ok(WriteInterval::BatchAndEpoch),
            other => Err(Error::Config(format!(
                "write_interval = {other:?}: expected \"batch\", \"epoch\" or \"batch_and_epoch\""
            ))),
        }
    }
}

/// How a [`PredictionWriter`] writes predictions of type `P` (the module's `Prediction`): the methods
/// Lightning's `BasePredictionWriter` subclasses override. Each has a default that writes nothing.
///
/// ```
/// use lightning::{CallbackResult, Ctx, WritePredictions};
/// use tch::Tensor;
///
/// /// Appends each batch's predicted class to a text file, a line per sample.
/// struct ClassesToText(std::fs::File);
///
/// impl WritePredictions<Tensor> for ClassesToText {
///     fn write_on_batch_end(&mut self, _ctx: &mut Ctx, logits: &Tensor, _batch: &dyn std::any::Any,
///                           _batch_idx: usize, _dataloader_idx: usize) -> CallbackResult {
///         use std::io::Write;
///         for class in Vec::<i64>::try_from(logits.argmax(-1, false))? {
///             writeln!(self.0, "{class}")?;
///         }
///         Ok(())
///     }
/// }
/// ```
#[allow(unused_variables)]
pub trait WritePredictions<P>: Send {
    /// After each `predict_step`: its prediction, the batch it was made from (downcast it to the module's batch
    /// type), and where it was in the loader.
    fn write_on_batch_end(
        &mut self,
        ctx: &mut Ctx,
        prediction: &P,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        Ok(())
    }

    /// After the last batch: every prediction of the epoch, in order.
    fn write_on_epoch_end(&mut self, ctx: &mut Ctx, predictions: &[P]) -> CallbackResult {
        Ok(())
    }
}

/// Lightning's `BasePredictionWriter`: calls its [`WritePredictions`] after each prediction batch, after the
/// epoch, or both, as the [`WriteInterval`] says. For the epoch, it keeps a handle on each prediction's tensors
/// (no copy) until the epoch's write. It runs on every process of a distributed run, each with its share of the
/// batches (as Lightning's): [`TensorFiles`] names its files by rank there.
///
/// ```
/// use lightning::{PredictionWriter, TensorFiles, Trainer, WriteInterval};
/// use tch::Tensor;
///
/// # fn main() -> lightning::Result<()> {
/// # let dir = tempfile::tempdir()?;
/// // A safetensors file per batch, and one with all of them, for a module whose predictions are tensors.
/// let writer = PredictionWriter::<Tensor, _>::new(TensorFiles::new(dir.path()), WriteInterval::BatchAndEpoch);
/// let trainer = Trainer::new().callback(writer);
/// # Ok(())
/// # }
/// ```
pub struct PredictionWriter<P, W> {
    writer: W,
    interval: WriteInterval,
    kept: Vec<P>,
    _prediction: PhantomData<fn() -> P>,
}

impl<P: Batch, W: WritePredictions<P>> PredictionWriter<P, W> {
    /// A callback handing the predictions to `writer` at `interval`.
    pub fn new(writer: W, interval: WriteInterval) -> Self {
        PredictionWriter { writer, interval, kept: Vec::new(), _prediction: PhantomData }
    }

    /// The writer, to read what it kept.
    pub fn writer(&self) -> &W {
        &self.writer
    }
}

impl<P: Batch, W: WritePredictions<P> + 'static> Callback for PredictionWriter<P, W> {
    fn name(&self) -> String {
        format!("PredictionWriter<{}>", short_type_name(std::any::type_name::<W>()))
    }

    fn on_predict_epoch_start(&mut self, _ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        self.kept.clear();
        Ok(())
    }

    fn on_predict_batch_end(
        &mut self,
        ctx: &mut Ctx,
        _module: &mut dyn AnyModule,
        outputs: &dyn Any,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        let Some(prediction) = outputs.downcast_ref::<P>() else {
            return Err(format!(
                "this writer takes predictions of type `{}`, but the module's `predict_step` returns another type: \
                 name the module's `Prediction` type in `PredictionWriter::<Prediction, _>::new`",
                std::any::type_name::<P>()
            )
            .into());
        };
        if self.interval.on_batch() {
            self.writer.write_on_batch_end(ctx, prediction, batch, batch_idx, dataloader_idx)?;
        }
        if self.interval.on_epoch() {
            self.kept.push(prediction.share());
        }
        Ok(())
    }

    fn on_predict_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        if self.interval.on_epoch() {
            let kept = std::mem::take(&mut self.kept);
            self.writer.write_on_epoch_end(ctx, &kept)?;
        }
        Ok(())
    }
}

/// A [`WritePredictions`] for any prediction made of tensors (a `Tensor`, a tuple or `Vec` of them: any
/// [`Batch`] type), writing [safetensors](https://huggingface.co/docs/safetensors) files in a folder, the
/// prediction's tensors named `"0"`, `"1"`, ... in order:
///
/// - per batch, `batch_<batch_idx>.safetensors` holds that batch's tensors (`dataloader_<d>_batch_<i>` for a
///   loader other than the first);
/// - per epoch, `predictions.safetensors` holds each tensor of every batch joined along the first dimension
///   (the samples), so `"0"` is the first tensor of all predictions in order.
///
/// Files are written whole to a temporary name, then renamed; in a distributed run they go to `rank_<r>/`.
/// Read them back with `Tensor::read_safetensors`, or Python's `safetensors.torch.load_file`.
pub struct TensorFiles {
    dir: PathBuf,
}

impl TensorFiles {
    /// Writes into `dir`, created when the first file is written.
    pub fn new(dir: impl AsRef<Path>) -> Self {
        TensorFiles { dir: dir.as_ref().to_path_buf() }
    }

    /// The folder the files go to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `tensors` as `<name>.safetensors` in this process's folder.
    fn write(&self, ctx: &Ctx, name: &str, tensors: Vec<Tensor>) -> Result<PathBuf> {
        let dir = match ctx.world_size() {
            1 => self.dir.clone(),
            _ => self.dir.join(format!("rank_{}", ctx.global_rank())),
        };
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Error::Io(std::io::Error::new(e.kind(), format!("{what} {}: {e}", path.display())))
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("cannot create the predictions folder", &dir, e))?;
        let path = dir.join(format!("{name}.safetensors"));
        let named: Vec<(String, Tensor)> = tensors
            .into_iter()
            .enumerate()
            .map(|(k, t)| Ok((k.to_string(), t.f_to_device(Device::Cpu)?.f_contiguous()?)))
            .collect::<Result<_>>()?;
        let file = tempfile::NamedTempFile::new_in(&dir).map_err(|e| io("cannot write in", &dir, e))?;
        Tensor::write_safetensors(&named, file.path())?;
        file.persist(&path).map_err(|e| io("cannot write", &path, e.error))?;
        Ok(path)
    }
}

fn tensors_of<P: Batch>(prediction: &P) -> Vec<Tensor> {
    let mut tensors = Vec::new();
    prediction.for_each_tensor(&mut |t| tensors.push(t.shallow_clone()));
    tensors
}

impl<P: Batch> WritePredictions<P> for TensorFiles {
    fn write_on_batch_end(
        &mut self,
        ctx: &mut Ctx,
        prediction: &P,
        _batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        let name = match dataloader_idx {
            0 => format!("batch_{batch_idx}"),
            d => format!("dataloader_{d}_batch_{batch_idx}"),
        };
        self.write(ctx, &name, tensors_of(prediction))?;
        Ok(())
    }

    fn write_on_epoch_end(&mut self, ctx: &mut Ctx, predictions: &[P]) -> CallbackResult {
        let per_batch: Vec<Vec<Tensor>> = predictions.iter().map(tensors_of).collect();
        let count = per_batch.first().map_or(0, Vec::len);
        if per_batch.iter().any(|tensors| tensors.len() != count) {
            return Err("the predictions do not all have the same number of tensors: they cannot be joined into \
                        one file per epoch (write them per batch)"
                .into());
        }
        let joined = (0..count)
            .map(|k| {
                let parts: Vec<&Tensor> = per_batch.iter().map(|tensors| &tensors[k]).collect();
                Tensor::f_cat(&parts, 0).map_err(|e| {
                    Error::Config(format!(
                        "prediction tensor {k} cannot be joined along the first dimension over the batches \
                         (write it per batch): {e}"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        self.write(ctx, "predictions", joined)?;
        Ok(())
    }
}
