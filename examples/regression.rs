//! A regression fitted with the Trainer: a `#[lightning_module]`, a shuffled DataLoader, validation, a cosine
//! learning-rate schedule, and a callback that prints each epoch's losses as they fall.
//!
//! Run with `cargo run --example regression` (after `make setup`).

use lightning::prelude::*;
use lightning::{AnyModule, CallbackResult, DataLoader, Trainer};

struct Regression {
    vs: nn::VarStore,
    net: nn::Sequential,
}

impl Regression {
    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "hidden", 8, 64, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs.root() / "out", 64, 1, Default::default()));
        Regression { vs, net }
    }
}

#[lightning_module]
impl Regression {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).on_epoch(true).prog_bar(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        ctx.log("val_loss", self.net.forward(x).mse_loss(y, Reduction::Mean)).prog_bar(true);
    }

    fn configure_optimizers(&mut self) -> (Optimizer, LrScheduler) {
        (Optimizer::adam(&self.vs, 3e-3), LrScheduler::cosine(30, 1e-4))
    }
}

/// Prints the epoch's metrics once they are reduced.
struct PrintEpochs;

impl Callback for PrintEpochs {
    fn monitors(&self) -> bool {
        true
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx, _module: &mut dyn AnyModule) -> CallbackResult {
        let shown: Vec<String> =
            ctx.progress_bar_metrics().iter().map(|(name, value)| format!("{name} {value:.5}")).collect();
        println!("epoch {:2}  {}", ctx.current_epoch(), shown.join("  "));
        Ok(())
    }
}

fn main() -> lightning::Result<()> {
    // y = sin(x · w) + noise, on 8 features: 2,048 samples to train on, 512 to validate on.
    tch::manual_seed(0);
    let x = Tensor::f_rand([2560, 8], (Kind::Float, Device::Cpu))? * 2.0 - 1.0;
    let w = Tensor::f_randn([8, 1], (Kind::Float, Device::Cpu))?;
    let y = x.f_matmul(&w)?.f_sin()? + Tensor::f_randn([2560, 1], (Kind::Float, Device::Cpu))? * 0.05;
    let (train_x, val_x) = (x.narrow(0, 0, 2048), x.narrow(0, 2048, 512));
    let (train_y, val_y) = (y.narrow(0, 0, 2048), y.narrow(0, 2048, 512));

    let train = DataLoader::new((train_x, train_y)).batch_size(64).shuffle(true).seed(0).workers(1).build()?;
    let val = DataLoader::new((val_x, val_y)).batch_size(256).build()?;

    let mut model = Regression::new();
    // Lightning's defaults: logs and the last epoch's checkpoint in `target/lightning_logs/version_N/` (in the
    // working directory without `default_root_dir`).
    let mut trainer = Trainer::new()
        .max_epochs(30)
        .seed(42)
        .default_root_dir("target")
        .enable_progress_bar(false)
        .callback(PrintEpochs);
    trainer.fit(&mut model, train, val)?;

    let metrics = trainer.callback_metrics();
    println!(
        "trained {} epochs ({} steps) on {:?}: validation loss {:.5}",
        trainer.current_epoch(),
        trainer.global_step(),
        trainer.device().unwrap_or(Device::Cpu),
        metrics["val_loss"]
    );
    Ok(())
}
