//! `Tuner`: the learning-rate range test and the batch-size search, each a real short fit, with the module and the
//! Trainer put back exactly afterwards.

use std::path::{Path, PathBuf};
use std::process::Command;

use lightning::prelude::*;
use lightning::{Accelerator, BatchSizeMode, EarlyStopping, LrFind, LrFinder, LrMode, ScaleBatchSize, Trainer, Tuner};

/// `y = 3x + 1` on x in [-4, 4] (wide enough that SGD diverges at the top of the range).
fn line(n: i64) -> (Tensor, Tensor) {
    let x = Tensor::linspace(-4.0, 4.0, n, (Kind::Float, Device::Cpu)).unsqueeze(1);
    let y = &x * 3.0 + 1.0;
    (x, y)
}

fn loader(batch: usize) -> Loader<(Tensor, Tensor)> {
    let (x, y) = line(256);
    lightning::DataLoader::new((x, y)).batch_size(batch).shuffle(true).seed(1).build().unwrap()
}

struct Line {
    vs: nn::VarStore,
    linear: nn::Linear,
    two_optimizers: bool,
    /// Batches of more rows than this fail as CUDA's allocator fails (the batch-size search's signal).
    memory_for: Option<i64>,
}

impl Line {
    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 1, 1, Default::default());
        // Both set by hand: drawn from torch's process-wide generator, the bias would depend on what the other
        // tests of this binary (running on threads beside it) drew or seeded first, and the curve with it.
        tch::no_grad(|| {
            let _ = linear.ws.shallow_clone().fill_(0.5);
            let _ = linear.bs.as_ref().expect("a bias").shallow_clone().fill_(-0.5);
        });
        Line { vs, linear, two_optimizers: false, memory_for: None }
    }

    fn weights(&self) -> Vec<f64> {
        let mut all: Vec<_> = self.vs.variables().into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all.iter().flat_map(|(_, t)| Vec::<f64>::try_from(t.flatten(0, -1).to_kind(Kind::Double)).unwrap()).collect()
    }
}

#[lightning_module]
impl Line {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> Result<Tensor, String> {
        if self.memory_for.is_some_and(|rows| x.size()[0] > rows) {
            return Err(format!("CUDA out of memory. Tried to allocate {} MiB", x.size()[0] * 64));
        }
        let loss = self.linear.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss);
        Ok(loss)
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("val_loss", self.linear.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn configure_optimizers(&self) -> (Vec<Optimizer>, Vec<LrScheduler>) {
        let mut optimizers = vec![Optimizer::sgd(&self.vs, 0.01)];
        if self.two_optimizers {
            optimizers.push(Optimizer::sgd(&self.vs, 0.01));
        }
        (optimizers, vec![LrScheduler::step_lr(1, 0.1)])
    }
}

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(3)
        .seed(0)
        .callback(EarlyStopping::new("val_loss"))
}

#[test]
fn lr_find_sweeps_stops_on_divergence_suggests_and_puts_everything_back() {
    let mut model = Line::new();
    let before = model.weights();
    let mut trainer = trainer();
    let options = LrFind::default().range(1e-5, 10.0);
    let finder = Tuner::new(&mut trainer).lr_find(&mut model, loader(64), options).unwrap();
    // Put back: the weights bit for bit, the Trainer's state and callbacks (its EarlyStopping still there).
    assert_eq!(model.weights(), before);
    assert_eq!((trainer.global_step(), trainer.current_epoch()), (0, 0));

    let n = finder.lrs.len();
    assert_eq!(finder.losses.len(), n);
    assert!(n < 100, "the loss diverges before 1.0: the test stops early, after {n} steps");
    assert!(n > 20, "{n}");
    assert_eq!(finder.lrs[0], 1e-5);
    // Lightning's exponential schedule: min_lr, then min_lr * (max/min)^((k+1)/100).
    for k in 1..n {
        let expected = 1e-5 * (1e6f64).powf((k + 1) as f64 / 100.0);
        assert!((finder.lrs[k] / expected - 1.0).abs() < 1e-12, "{k}: {} vs {expected}", finder.lrs[k]);
    }
    let suggestion = finder.suggestion().expect("enough points");
    assert!(suggestion > 1e-4 && suggestion < 0.5, "{suggestion}");

    // The suggested rate trains: a fit at it brings the validation loss down.
    trainer.fit(&mut model, loader(8), loader(64)).unwrap();
    assert!(trainer.callback_metrics()["val_loss"] < 1.0, "{:?}", trainer.callback_metrics());

    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("lr.svg");
    finder.plot(&svg).unwrap();
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg") && text.contains("Learning rate") && text.contains("<circle"), "{text}");
}

#[test]
fn lr_find_refuses_two_optimizers_and_settings_that_cannot_work() {
    let mut model = Line::new();
    model.two_optimizers = true;
    let mut trainer = trainer();
    let error = Tuner::new(&mut trainer).lr_find(&mut model, loader(8), LrFind::default()).unwrap_err();
    assert!(error.to_string().contains("returned 2 optimizers"), "{error}");
    let error = Tuner::new(&mut trainer).lr_find(&mut Line::new(), loader(8), LrFind::default().range(1.0, 0.1));
    assert!(error.unwrap_err().to_string().contains("increasing"));
}

#[test]
fn a_linear_test_grows_the_rate_arithmetically() {
    let mut trainer = trainer();
    let options = LrFind::default().mode(LrMode::Linear).range(1e-4, 1e-2).num_training(20).early_stop_threshold(None);
    let finder = Tuner::new(&mut trainer).lr_find(&mut Line::new(), loader(8), options).unwrap();
    assert_eq!(finder.lrs.len(), 20);
    assert!((finder.lrs[19] - 1e-2).abs() < 1e-15 && (finder.lrs[5] - (1e-4 + 0.3 * (1e-2 - 1e-4))).abs() < 1e-15);
}

/// The managed environment's Python (it has torch), found as the TensorBoard tests find it.
fn python() -> PathBuf {
    let torch = Path::new(env!("CARGO_MANIFEST_DIR")).join(".libtorch").canonicalize().unwrap();
    torch.ancestors().nth(4).unwrap().join("bin").join("python")
}

#[test]
fn the_suggestion_is_torch_gradients_steepest_point() {
    // An uneven curve with a NaN among the points, as a diverging run leaves.
    let lrs: Vec<f64> = (0..40).map(|k| 1e-5 * 1.3f64.powi(k) * (1.0 + 0.01 * (k % 3) as f64)).collect();
    let mut losses: Vec<f64> = lrs.iter().map(|lr| 2.0 - (lr * 50.0).tanh() + (lr * 3.0).powi(2)).collect();
    losses[17] = f64::NAN;
    let finder = LrFinder { lrs: lrs.clone(), losses: losses.clone(), mode: LrMode::Exponential };
    let list = |values: &[f64]| {
        let items: Vec<String> =
            values.iter().map(|v| if v.is_nan() { "NaN".to_string() } else { format!("{v:?}") }).collect();
        format!("[{}]", items.join(","))
    };
    // Python's `json` reads `NaN`.
    let script = format!(
        "import json, torch\nl = torch.tensor(json.loads('{}'), dtype=torch.float64)[10:-1]\n\
         f = torch.tensor(json.loads('{}'), dtype=torch.float64)[10:-1]\nok = torch.isfinite(f)\n\
         g = torch.gradient(f[ok], spacing=[l[ok]])[0]\nprint(repr(l[ok][torch.argmin(g)].item()))",
        list(&lrs),
        list(&losses)
    );
    let out = Command::new(python()).args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let torch_says: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(finder.suggestion(), Some(torch_says));
}

#[test]
fn scale_batch_size_finds_the_largest_batch_that_fits_and_puts_everything_back() {
    for (mode, expected) in [(BatchSizeMode::Power, 32), (BatchSizeMode::BinSearch, 40)] {
        let mut model = Line::new();
        model.memory_for = Some(40);
        let before = model.weights();
        let mut trainer = trainer();
        let mut tried = Vec::new();
        let found = Tuner::new(&mut trainer)
            .scale_batch_size(
                &mut model,
                |size| {
                    tried.push(size);
                    Ok(loader(size))
                },
                ScaleBatchSize::default().mode(mode),
            )
            .unwrap();
        assert_eq!(found, expected, "{mode:?}: tried {tried:?}");
        assert_eq!(model.weights(), before);
        assert_eq!(trainer.global_step(), 0);
    }
    // An error that is not running out of memory ends the search with it.
    let mut model = Line::new();
    let mut trainer = trainer();
    let error = Tuner::new(&mut trainer)
        .scale_batch_size(
            &mut model,
            |_| Err(lightning::Error::Config("no data here".into())),
            ScaleBatchSize::default(),
        )
        .unwrap_err();
    assert!(error.to_string().contains("no data here"), "{error}");
}
