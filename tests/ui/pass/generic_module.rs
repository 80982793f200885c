//! A generic module: the generated impls carry the block's generics and bounds.
use std::marker::PhantomData;

use lightning::prelude::*;

trait Activation {
    fn apply(x: &Tensor) -> Tensor;
}

struct Relu;

impl Activation for Relu {
    fn apply(x: &Tensor) -> Tensor {
        x.relu()
    }
}

struct Mlp<A> {
    vs: nn::VarStore,
    activation: PhantomData<A>,
}

#[lightning_module(batch = Tensor)]
impl<A> Mlp<A>
where
    A: Activation,
{
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        A::apply(batch).sum(Kind::Float)
    }

    fn predict_step(&mut self, batch: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(A::apply(batch)).unwrap()
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    use lightning::LightningModule;
    lightning::assert_fit::<Mlp<Relu>>();
    let mut module = Mlp::<Relu> { vs: nn::VarStore::new(Device::Cpu), activation: PhantomData };
    let mut ctx = Ctx::new(Device::Cpu);
    let x = Tensor::from_slice(&[-1.0f64, 2.0]);
    let predicted: Vec<f64> = (Mlp::<Relu>::HOOKS.predict_step.unwrap())(&mut module, &x, 0, 0, &mut ctx).unwrap();
    assert_eq!(predicted, [0.0, 2.0]);
}
