//! The flagship: a handwritten-digit classifier on the UCI digits that scikit-learn's wheel ships (1,797 8x8
//! images, copied to `data/digits.csv.gz` by `make setup`), with everything a real run has: a held-out test
//! split, validation every epoch, the best checkpoint kept, early stopping, CSV and TensorBoard logs (with the
//! misclassified validation digits as an image and the first layer's weights as a histogram each epoch), then
//! `test` on the best weights and `predict`. Its last line reports the test accuracy.
//!
//! Run with `make example` (or `cargo run --example digits` once set up). Logs and checkpoints go where
//! Lightning's defaults put them, under `target/` here: `target/lightning_logs/version_N/` (TensorBoard events,
//! `metrics.csv`, `hparams.json`, `checkpoints/`).

use std::io::Read;
use std::path::Path;

use lightning::prelude::*;
use lightning::vision::{make_grid, GridOptions};
use lightning::{Batch, DataLoader, EarlyStopping, ModelCheckpoint, MonitorMode, Trainer};
use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
struct Hyper {
    hidden: i64,
    dropout: f64,
    lr: f64,
    weight_decay: f64,
}

struct DigitClassifier {
    vs: nn::VarStore,
    hidden1: nn::Linear,
    hidden2: nn::Linear,
    out: nn::Linear,
    hyper: Hyper,
    /// Correct and seen predictions of the current evaluation epoch.
    correct: i64,
    seen: i64,
}

impl DigitClassifier {
    fn new(hyper: Hyper) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let root = vs.root();
        let hidden1 = nn::linear(&root / "hidden1", 64, hyper.hidden, Default::default());
        let hidden2 = nn::linear(&root / "hidden2", hyper.hidden, hyper.hidden, Default::default());
        let out = nn::linear(&root / "out", hyper.hidden, 10, Default::default());
        DigitClassifier { vs, hidden1, hidden2, out, hyper, correct: 0, seen: 0 }
    }

    fn logits(&self, x: &Tensor, train: bool) -> Tensor {
        let h = self.hidden1.forward(x).relu().dropout(self.hyper.dropout, train);
        let h = self.hidden2.forward(&h).relu().dropout(self.hyper.dropout, train);
        self.out.forward(&h)
    }

    /// Loss and accuracy of an evaluation batch, logged under `stage`.
    fn evaluate(&mut self, (x, y): &(Tensor, Tensor), stage: &str, ctx: &mut Ctx) {
        let logits = self.logits(x, false);
        ctx.log(&format!("{stage}_loss"), logits.cross_entropy_for_logits(y)).prog_bar(true);
        self.correct += logits.argmax(-1, false).eq_tensor(y).sum(Kind::Int64).int64_value(&[]);
        self.seen += y.size()[0];
    }

    /// The validation digits it gets wrong, as one grid image in TensorBoard's IMAGES tab (with the default
    /// logger; nothing without one).
    fn log_mistakes(&self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> lightning::Result<()> {
        let step = ctx.global_step();
        let Some(tensorboard) = ctx.tensorboard() else { return Ok(()) };
        let wrong = self.logits(x, false).argmax(-1, false).ne_tensor(y).nonzero().squeeze_dim(1);
        if wrong.numel() == 0 {
            return Ok(());
        }
        let digits = x.index_select(0, &wrong).view([-1, 1, 8, 8]);
        let grid = make_grid(&digits, GridOptions::default().padding(1).normalize(true))?;
        tensorboard.add_image("val_mistakes", &grid, step)
    }

    fn accuracy(&mut self) -> f64 {
        let accuracy = self.correct as f64 / self.seen.max(1) as f64;
        (self.correct, self.seen) = (0, 0);
        accuracy
    }
}

#[lightning_module(hparams = hyper)]
impl DigitClassifier {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.logits(x, ctx.is_training()).cross_entropy_for_logits(y);
        ctx.log("train_loss", &loss).on_epoch(true).prog_bar(true);
        loss
    }

    fn validation_step(&mut self, batch: &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) -> lightning::Result<()> {
        self.evaluate(batch, "val", ctx);
        if batch_idx == 0 && !ctx.sanity_checking() {
            self.log_mistakes(batch, ctx)?;
        }
        Ok(())
    }

    /// The first layer's weights, as a histogram per epoch.
    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) -> lightning::Result<()> {
        let step = ctx.global_step();
        if let Some(tensorboard) = ctx.tensorboard() {
            tensorboard.add_histogram("hidden1/weight", &self.hidden1.ws, step)?;
        }
        Ok(())
    }

    fn on_validation_epoch_end(&mut self, ctx: &mut Ctx) {
        let accuracy = self.accuracy();
        ctx.log("val_acc", accuracy).prog_bar(true);
    }

    fn test_step(&mut self, batch: &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        self.evaluate(batch, "test", ctx);
    }

    fn on_test_epoch_end(&mut self, ctx: &mut Ctx) {
        let accuracy = self.accuracy();
        ctx.log("test_acc", accuracy);
    }

    fn predict_step(&mut self, (x, _): &(Tensor, Tensor)) -> Tensor {
        self.logits(x, false).argmax(-1, false)
    }

    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        let optimizer = Optimizer::adamw(&self.vs, self.hyper.lr).weight_decay(self.hyper.weight_decay);
        (optimizer, LrScheduler::cosine(40, self.hyper.lr / 20.0))
    }
}

/// The digits: 64 pixel values (0 to 16) and the label per line.
fn load_digits(path: &Path) -> lightning::Result<(Tensor, Tensor)> {
    let file = std::fs::File::open(path).map_err(|e| {
        lightning::Error::Config(format!(
            "{}: {e}; run `make setup`, which copies it from scikit-learn",
            path.display()
        ))
    })?;
    let mut text = String::new();
    flate2::read::GzDecoder::new(file).read_to_string(&mut text)?;
    let (mut pixels, mut labels) = (Vec::new(), Vec::new());
    for (number, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let values: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| lightning::Error::Config(format!("{} line {}: {e}", path.display(), number + 1)))?;
        if values.len() != 65 {
            let found = values.len();
            return Err(lightning::Error::Config(format!(
                "{} line {}: {found} values, not 65",
                path.display(),
                number + 1
            )));
        }
        pixels.extend_from_slice(&values[..64]);
        labels.push(values[64] as i64);
    }
    let n = labels.len() as i64;
    let x = Tensor::f_from_slice(&pixels)?.f_reshape([n, 64])?.f_div_scalar(16.0)?;
    Ok((x, Tensor::f_from_slice(&labels)?))
}

fn main() -> lightning::Result<()> {
    let (x, y) = load_digits(Path::new("data/digits.csv.gz"))?;
    let n = y.size()[0];

    // One fixed shuffle splits the images 70 / 10 / 20 into training, validation and a held-out test set.
    tch::manual_seed(7);
    let order = Tensor::f_randperm(n, (Kind::Int64, Device::Cpu))?;
    let (x, y) = (x.f_index_select(0, &order)?, y.f_index_select(0, &order)?);
    let (n_train, n_val) = (n * 7 / 10, n / 10);
    let split = |start: i64, len: i64| -> lightning::Result<(Tensor, Tensor)> {
        Ok((x.f_narrow(0, start, len)?, y.f_narrow(0, start, len)?))
    };
    let train = split(0, n_train)?;
    let val = split(n_train, n_val)?;
    let test = split(n_train + n_val, n - n_train - n_val)?;
    println!(
        "digits: {n} images; {n_train} to train on, {n_val} to validate on, {} held out to test",
        n - n_train - n_val
    );

    // The best epoch by validation accuracy, and the last, kept in the default logger's `checkpoints/`.
    let checkpoint =
        ModelCheckpoint::in_log_dir().monitor("val_acc").mode(MonitorMode::Max).filename("{epoch}-{val_acc:.4f}");
    let best = checkpoint.handle();

    let hyper = Hyper { hidden: 128, dropout: 0.2, lr: 3e-3, weight_decay: 1e-4 };
    let mut model = DigitClassifier::new(hyper);
    let mut trainer = Trainer::new()
        .max_epochs(40)
        .seed(42)
        .log_every_n_steps(10)
        .default_root_dir("target")
        .callback(checkpoint.save_last(true))
        .callback(EarlyStopping::new("val_loss").patience(6));
    trainer.fit(
        &mut model,
        DataLoader::new(train).batch_size(32).shuffle(true).seed(42).workers(1).build()?,
        DataLoader::new(val).batch_size(256).build()?,
    )?;
    let best_path = best.best_model_path().ok_or_else(|| lightning::Error::Config("no checkpoint was kept".into()))?;
    println!(
        "trained {} epochs ({} steps); best validation accuracy {:.4} in {}",
        trainer.current_epoch(),
        trainer.global_step(),
        best.best_model_score().unwrap_or(f64::NAN),
        best_path.display()
    );
    let run_dir = trainer.log_dir().unwrap_or_default();
    println!("logs: {} (metrics.csv, TensorBoard events)", run_dir.display());

    // Test and predict with the best weights (Lightning's `ckpt_path="best"`).
    let metrics = trainer.test_from(&mut model, DataLoader::new(test.share()).batch_size(256).build()?, "best")?;
    let predicted = trainer.predict_from(&mut model, DataLoader::new(test.share()).batch_size(8).build()?, "best")?;
    let first: Vec<i64> = Vec::<i64>::try_from(&predicted[0]).map_err(lightning::Error::from)?;
    let truth: Vec<i64> = Vec::<i64>::try_from(test.1.f_narrow(0, 0, 8)?).map_err(lightning::Error::from)?;
    println!("first 8 test images: predicted {first:?}, labelled {truth:?}");
    println!("test accuracy: {:.4}", metrics["test_acc"]);
    Ok(())
}
