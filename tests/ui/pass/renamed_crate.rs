//! The facade under another name, with `crate = path`, a declared batch type and a renamed `VarStore` field.
extern crate lightning as lt;

use lt::prelude::{nn, Ctx, Device, Kind, Optimizer, Tensor};

struct Renamed {
    params: nn::VarStore,
}

#[lt::lightning_module(crate = lt, batch = (Tensor, Tensor), var_store = params)]
impl Renamed {
    fn training_step(&mut self, batch: &(Tensor, Tensor), _batch_idx: usize, _ctx: &mut Ctx) -> Tensor {
        (&batch.0 - &batch.1).abs().sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.params, 0.1)
    }
}

fn main() {
    use lt::LightningModule;
    let module = Renamed { params: nn::VarStore::new(Device::Cpu) };
    assert_eq!(module.var_store().device(), Device::Cpu);
    lt::assert_fit::<Renamed>();
}
