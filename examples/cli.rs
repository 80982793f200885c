//! A training program driven by `LightningCli`: its options come from the module's hyper-parameters and the
//! Trainer's, from YAML or TOML config files and flags, with an exponential moving average of the weights.
//!
//! ```text
//! cargo run --example cli -- --help
//! cargo run --example cli -- fit --help
//! cargo run --example cli -- fit --trainer.max_epochs 5 --model.hidden 32 --print-config=yaml > run.yaml
//! cargo run --example cli -- fit --config run.yaml --trainer.accelerator cpu
//! cargo run --example cli -- test --config run.yaml --ckpt_path checkpoints/last.ckpt
//! cargo run --example cli -- fit --config run.yaml --print-config=toml > run.toml
//! ```

use lightning::prelude::*;
use lightning::{CliData, CliOutcome, DataLoader, EMAWeightAveraging, FromHparams, LightningCli, ModelCheckpoint};

/// The `model` section: every field is a `--model.<field>` flag, its default the `Default` value.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Hyper {
    hidden: i64,
    lr: f64,
    /// Samples of the synthetic data set.
    samples: i64,
}

impl Default for Hyper {
    fn default() -> Self {
        Hyper { hidden: 64, lr: 3e-3, samples: 2048 }
    }
}

struct Regression {
    vs: nn::VarStore,
    net: nn::Sequential,
    hyper: Hyper,
}

#[lightning_module(hparams = hyper)]
impl Regression {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_epoch(true).prog_bar(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("val_loss", self.net.forward(x).mse_loss(y, Reduction::Mean)).prog_bar(true);
    }

    fn test_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("test_loss", self.net.forward(x).mse_loss(y, Reduction::Mean));
    }

    fn predict_step(&mut self, (x, _): &(Tensor, Tensor)) -> Tensor {
        self.net.forward(x)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, self.hyper.lr)
    }
}

impl FromHparams for Regression {
    type Hparams = Hyper;

    fn from_hparams(hyper: Hyper) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "hidden", 8, hyper.hidden, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs.root() / "out", hyper.hidden, 1, Default::default()));
        Regression { vs, net, hyper }
    }
}

/// `y = sin(x · w)` on 8 features: `samples` to train on, a quarter as many to validate, test and predict on.
fn data(hyper: &Hyper) -> CliData<(Tensor, Tensor)> {
    let make = |n: i64, offset: i64| {
        let x = (Tensor::arange_start(offset * 8, (offset + n) * 8, (Kind::Float, Device::Cpu)) * 0.377).sin();
        let x = x.reshape([n, 8]);
        let y = x.matmul(&Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5, -0.3, 0.9]).reshape([8, 1])).sin();
        (x, y)
    };
    let loader = |n: i64, offset: i64, shuffle: bool| {
        DataLoader::new(make(n, offset)).batch_size(64).shuffle(shuffle).build().expect("a valid loader")
    };
    let held_out = (hyper.samples / 4).max(1);
    CliData {
        train: Some(loader(hyper.samples, 0, true)),
        val: Some(loader(held_out, hyper.samples, false)),
        test: Some(loader(held_out, hyper.samples + held_out, false)),
        predict: Some(loader(held_out, hyper.samples + held_out, false)),
    }
}

fn main() -> lightning::Result<()> {
    let outcome = LightningCli::<Regression>::new()
        .about("cli", "Fits a small regression, configured from YAML or TOML files and flags")
        .with_validate()
        .with_test()
        .with_predict()
        .configure_trainer(|trainer| {
            trainer.callback(ModelCheckpoint::new("checkpoints").save_last(true)).callback(EMAWeightAveraging::new())
        })
        .run(data)?;
    match outcome {
        CliOutcome::Fit { trainer, .. } => println!("trained: {:?}", trainer.callback_metrics()),
        CliOutcome::Validate(metrics) | CliOutcome::Test(metrics) => println!("{metrics:?}"),
        CliOutcome::Predict(predictions) => {
            let batches = predictions.downcast::<Vec<Tensor>>().map_or(0, |p| p.len());
            println!("{batches} batches predicted");
        }
        CliOutcome::Help(_) | CliOutcome::PrintedConfig(_) => {}
    }
    Ok(())
}
