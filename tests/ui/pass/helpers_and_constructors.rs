//! Constructors, helpers, associated items and a helper that only looks like a hook pass through untouched.
use lightning::prelude::*;

struct Classifier {
    vs: nn::VarStore,
    linear: nn::Linear,
}

#[lightning_module]
impl Classifier {
    const INPUTS: i64 = 4;

    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), Self::INPUTS, 3, Default::default());
        Classifier { vs, linear }
    }

    fn forward(&self, x: &Tensor) -> Tensor {
        self.linear.forward(x)
    }

    fn training_loss(&self, (x, y): &(Tensor, Tensor)) -> Tensor {
        self.forward(x).cross_entropy_for_logits(y)
    }

    /// One letter from `on_train_end`, but a helper on purpose.
    #[lightning(helper)]
    fn on_train_ends(&self) -> usize {
        1
    }

    fn training_step(&mut self, batch: &(Tensor, Tensor)) -> Tensor {
        self.training_loss(batch)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-3)
    }
}

fn main() {
    let model = Classifier::new();
    let x = Tensor::ones([2, Classifier::INPUTS], (Kind::Float, Device::Cpu));
    let y = Tensor::from_slice(&[0i64, 2]);
    let loss = model.training_loss(&(x, y));
    assert!(loss.double_value(&[]) > 0.0);
    assert_eq!(model.on_train_ends(), 1);
    assert_eq!(lightning::defined_hooks::<Classifier>(), ["training_step", "configure_optimizers"]);
}
