//! A new project on Lightning for Rust: a module, its data, and a Trainer with Lightning's defaults (logs and the
//! last epoch's checkpoint in `lightning_logs/version_N/` under the working directory).

use lightning::prelude::*;
use lightning::{tch, DataLoader, Trainer};
use serde::Serialize;

#[derive(Serialize)]
struct Hyper {
    hidden: i64,
    lr: f64,
}

struct Model {
    vs: nn::VarStore,
    net: nn::Sequential,
    hyper: Hyper,
}

impl Model {
    fn new(hyper: Hyper) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "hidden", 4, hyper.hidden, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs.root() / "out", hyper.hidden, 1, Default::default()));
        Model { vs, net, hyper }
    }
}

#[lightning_module(hparams = hyper)]
impl Model {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) -> Tensor {
        let loss = self.net.forward(x).mse_loss(y, Reduction::Mean);
        ctx.log("train_loss", &loss).prog_bar(true);
        loss
    }

    fn validation_step(&mut self, (x, y): &(Tensor, Tensor), ctx: &mut Ctx) {
        ctx.log("val_loss", self.net.forward(x).mse_loss(y, Reduction::Mean)).prog_bar(true);
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, self.hyper.lr)
    }
}

fn main() -> lightning::Result<()> {
    // y = sum of the features, squared: 512 samples to train on, 128 to validate on.
    tch::manual_seed(0);
    let x = Tensor::f_rand([640, 4], (Kind::Float, Device::Cpu))?;
    let y = x.f_sum_dim_intlist(1, true, Kind::Float)?.f_square()?;
    let train = DataLoader::new((x.narrow(0, 0, 512), y.narrow(0, 0, 512))).batch_size(32).shuffle(true).build()?;
    let val = DataLoader::new((x.narrow(0, 512, 128), y.narrow(0, 512, 128))).batch_size(128).build()?;

    let mut model = Model::new(Hyper { hidden: 32, lr: 1e-2 });
    let mut trainer = Trainer::new().max_epochs(5).seed(0);
    trainer.fit(&mut model, train, val)?;
    println!(
        "validation loss {:.4} after {} epochs; logs and checkpoint in {}",
        trainer.callback_metrics()["val_loss"],
        trainer.current_epoch(),
        trainer.log_dir().unwrap_or_default().display()
    );
    Ok(())
}
