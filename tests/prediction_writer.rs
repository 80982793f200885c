//! `PredictionWriter` (Lightning's `BasePredictionWriter`) on real `predict` runs: the files `TensorFiles` writes
//! per batch and per epoch hold the predictions `predict` returns, a writer of one's own sees every batch and
//! the whole epoch, and a writer of the wrong prediction type is an error naming the type.

use std::any::Any;
use std::path::Path;
use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{
    Accelerator, CallbackResult, DataLoader, PredictionWriter, TensorFiles, Trainer, WriteInterval, WritePredictions,
};

/// A classifier of 3 features into 4 classes; predicts logits, or (logits, class) pairs.
struct Classifier {
    vs: nn::VarStore,
    net: nn::Linear,
}

impl Classifier {
    fn new() -> Self {
        tch::manual_seed(2);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::linear(vs.root(), 3, 4, Default::default());
        Classifier { vs, net }
    }
}

#[lightning_module(batch = Tensor)]
impl Classifier {
    fn training_step(&mut self, x: &Tensor) -> Tensor {
        self.net.forward(x).mean(Kind::Float)
    }

    fn predict_step(&mut self, x: &Tensor) -> Tensor {
        self.net.forward(x)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

/// The same network, predicting (logits, class) pairs.
struct PairClassifier {
    vs: nn::VarStore,
    net: nn::Linear,
}

impl PairClassifier {
    fn new() -> Self {
        let Classifier { vs, net } = Classifier::new();
        PairClassifier { vs, net }
    }
}

#[lightning_module(batch = Tensor)]
impl PairClassifier {
    fn training_step(&mut self, x: &Tensor) -> Tensor {
        self.net.forward(x).mean(Kind::Float)
    }

    fn predict_step(&mut self, x: &Tensor) -> (Tensor, Tensor) {
        let logits = self.net.forward(x);
        let class = logits.argmax(-1, false);
        (logits, class)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

/// 10 samples in batches of 4: 4, 4 and 2.
fn data() -> Loader<Tensor> {
    tch::manual_seed(4);
    DataLoader::new(Tensor::randn([10, 3], (Kind::Float, Device::Cpu))).batch_size(4).build().unwrap()
}

fn trainer() -> Trainer {
    Trainer::new().logger(false).accelerator(Accelerator::Cpu).enable_progress_bar(false)
}

fn read(path: &Path) -> Vec<(String, Tensor)> {
    let mut tensors = Tensor::read_safetensors(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    tensors
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().file_name().into_string().unwrap()).collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    names
}

#[test]
fn tensor_files_per_batch_and_per_epoch_hold_what_predict_returns() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = PredictionWriter::<Tensor, _>::new(TensorFiles::new(tmp.path()), WriteInterval::BatchAndEpoch);
    let predictions = trainer().callback(writer).predict(&mut Classifier::new(), data()).unwrap();
    assert_eq!(predictions.iter().map(|p| p.size()).collect::<Vec<_>>(), [[4, 4], [4, 4], [2, 4]]);

    assert_eq!(
        files_in(tmp.path()),
        ["batch_0.safetensors", "batch_1.safetensors", "batch_2.safetensors", "predictions.safetensors"]
    );
    for (batch_idx, prediction) in predictions.iter().enumerate() {
        let written = read(&tmp.path().join(format!("batch_{batch_idx}.safetensors")));
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].0, "0");
        assert!(written[0].1.equal(prediction), "batch {batch_idx}");
    }
    let all = read(&tmp.path().join("predictions.safetensors"));
    assert_eq!(all.len(), 1);
    assert!(all[0].1.equal(&Tensor::cat(&predictions, 0)));
    assert_eq!(all[0].1.size(), [10, 4]);
}

#[test]
fn the_interval_decides_which_files_are_written_and_tuples_keep_each_tensor() {
    for (interval, expected) in [
        ("batch", vec!["batch_0.safetensors", "batch_1.safetensors", "batch_2.safetensors"]),
        ("epoch", vec!["predictions.safetensors"]),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let interval: WriteInterval = interval.parse().unwrap();
        let writer = PredictionWriter::<(Tensor, Tensor), _>::new(TensorFiles::new(&dir), interval);
        let predictions = trainer().callback(writer).predict(&mut PairClassifier::new(), data()).unwrap();
        assert_eq!(files_in(&dir), expected, "{interval:?}");
        if interval == WriteInterval::Epoch {
            let all = read(&dir.join("predictions.safetensors"));
            let names: Vec<&str> = all.iter().map(|(name, _)| name.as_str()).collect();
            assert_eq!(names, ["0", "1"]);
            let logits: Vec<&Tensor> = predictions.iter().map(|p| &p.0).collect();
            let classes: Vec<&Tensor> = predictions.iter().map(|p| &p.1).collect();
            assert!(all[0].1.equal(&Tensor::cat(&logits, 0)));
            assert!(all[1].1.equal(&Tensor::cat(&classes, 0)));
            assert_eq!(all[1].1.kind(), Kind::Int64);
        } else {
            let last = read(&dir.join("batch_2.safetensors"));
            assert!(last[0].1.equal(&predictions[2].0) && last[1].1.equal(&predictions[2].1));
        }
    }
    assert!("every_batch".parse::<WriteInterval>().unwrap_err().to_string().contains("batch_and_epoch"));
}

/// A writer of one's own: the predicted classes as text, a line per sample, and what it was called with.
#[derive(Clone, Default)]
struct ClassesToText {
    lines: Arc<Mutex<Vec<String>>>,
    calls: Arc<Mutex<Vec<String>>>,
}

impl WritePredictions<Tensor> for ClassesToText {
    fn write_on_batch_end(
        &mut self,
        _ctx: &mut Ctx,
        logits: &Tensor,
        batch: &dyn Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        let batch = batch.downcast_ref::<Tensor>().ok_or("the batch is a Tensor")?;
        self.calls.lock().unwrap().push(format!("batch {batch_idx} of {dataloader_idx}: {} samples", batch.size()[0]));
        for class in Vec::<i64>::try_from(logits.argmax(-1, false))? {
            self.lines.lock().unwrap().push(class.to_string());
        }
        Ok(())
    }

    fn write_on_epoch_end(&mut self, _ctx: &mut Ctx, predictions: &[Tensor]) -> CallbackResult {
        self.calls.lock().unwrap().push(format!("epoch: {} predictions", predictions.len()));
        Ok(())
    }
}

#[test]
fn a_writer_of_ones_own_sees_every_batch_then_the_epoch() {
    let writer = ClassesToText::default();
    let callback = PredictionWriter::new(writer.clone(), WriteInterval::BatchAndEpoch);
    let predictions = trainer().callback(callback).predict(&mut Classifier::new(), data()).unwrap();
    assert_eq!(
        *writer.calls.lock().unwrap(),
        ["batch 0 of 0: 4 samples", "batch 1 of 0: 4 samples", "batch 2 of 0: 2 samples", "epoch: 3 predictions"]
    );
    let expected: Vec<String> = Vec::<i64>::try_from(Tensor::cat(&predictions, 0).argmax(-1, false))
        .unwrap()
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(*writer.lines.lock().unwrap(), expected);

    // A second `predict` starts a new epoch: the writer gets only its predictions.
    let callback = PredictionWriter::new(writer.clone(), WriteInterval::Epoch);
    let mut trainer = trainer().callback(callback);
    trainer.predict(&mut Classifier::new(), data()).unwrap();
    trainer.predict(&mut Classifier::new(), data()).unwrap();
    let calls = writer.calls.lock().unwrap().clone();
    assert_eq!(calls[4..], ["epoch: 3 predictions", "epoch: 3 predictions"]);
}

#[test]
fn a_writer_of_another_prediction_type_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let writer = PredictionWriter::<(Tensor, Tensor), _>::new(TensorFiles::new(tmp.path()), WriteInterval::Batch);
    let error = trainer().callback(writer).predict(&mut Classifier::new(), data()).unwrap_err().to_string();
    assert!(error.contains("on_predict_batch_end") && error.contains("(tch::wrappers::tensor::Tensor"), "{error}");
    assert!(files_in(tmp.path()).is_empty());
}
