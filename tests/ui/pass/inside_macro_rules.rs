//! The attribute used inside a `macro_rules!` expansion, with names that come from the macro's caller.
use lightning::prelude::*;

macro_rules! regression_module {
    ($name:ident, $lr:expr) => {
        struct $name {
            vs: nn::VarStore,
        }

        #[lightning_module]
        impl $name {
            fn training_step(&mut self, batch: &(Tensor, Tensor), batch_idx: usize, ctx: &mut Ctx) -> Tensor {
                let (x, y) = batch;
                let loss = (x - y).square().mean(Kind::Float);
                ctx.log("batch_idx", batch_idx as f64);
                loss
            }

            fn configure_optimizers(&mut self) -> Optimizer {
                Optimizer::sgd(&self.vs, $lr)
            }
        }
    };
}

regression_module!(Small, 0.1);
regression_module!(Large, 0.01);

fn main() {
    lightning::assert_fit::<Small>();
    lightning::assert_fit::<Large>();
    assert_eq!(lightning::defined_hooks::<Large>(), ["training_step", "configure_optimizers"]);
}
