//! `example_input_array` is run through the module's `forward`, which this model does not have (its network
//! is called through `forward_t`, with a train flag).
use lightning::prelude::*;

struct Model {
    vs: nn::VarStore,
    net: nn::SequentialT,
}

#[lightning_module]
impl Model {
    fn example_input_array(&self) -> Tensor {
        Tensor::zeros([2, 4], (Kind::Float, Device::Cpu))
    }

    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.net.forward_t(x, true).mse_loss(y, Reduction::Mean)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {}
