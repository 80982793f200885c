//! A hook where logging is forbidden may bind its context's name again: a `.log(..)` on that other value is not
//! the context's and is not refused.
use lightning::prelude::*;

#[derive(Default)]
struct Board {
    entries: Vec<(String, f64)>,
}

impl Board {
    fn log(&mut self, name: &str, value: f64) {
        self.entries.push((name.to_string(), value));
    }
}

struct Model {
    vs: nn::VarStore,
    board: Board,
}

#[lightning_module]
impl Model {
    fn setup(&mut self, _stage: Stage, ctx: &mut Ctx) {
        let _ = ctx.current_epoch();
        let ctx = &mut self.board;
        ctx.log("set up", 1.0);
    }

    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn main() {
    let mut model = Model { vs: nn::VarStore::new(Device::Cpu), board: Board::default() };
    let mut ctx = Ctx::new(Device::Cpu);
    model.setup(Stage::Fit, &mut ctx);
    assert_eq!(model.board.entries.len(), 1);
}
