//! `#[lightning_module(hparams = field)]`: the field's value is what checkpoints keep as hyper-parameters.

use lightning::prelude::*;
use lightning::LightningModule;
use serde::Serialize;

#[derive(Serialize)]
struct Hyper {
    hidden: usize,
    lr: f64,
}

struct WithHyper {
    vs: nn::VarStore,
    hyper: Hyper,
}

#[lightning_module(hparams = hyper)]
impl WithHyper {
    fn training_step(&mut self, batch: &Tensor) -> Tensor {
        batch.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, self.hyper.lr)
    }
}

#[test]
fn declared_hyper_parameters_become_json() {
    let module = WithHyper { vs: nn::VarStore::new(Device::Cpu), hyper: Hyper { hidden: 64, lr: 0.01 } };
    assert_eq!(module.hparams(), Some(serde_json::json!({"hidden": 64, "lr": 0.01})));
}

/// A module rebuilt from nothing but a checkpoint.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
struct Shape {
    hidden: i64,
    lr: f64,
}

struct Rebuilt {
    vs: nn::VarStore,
    net: nn::Sequential,
    shape: Shape,
}

#[lightning_module(hparams = shape)]
impl Rebuilt {
    fn training_step(&mut self, x: &Tensor) -> Tensor {
        self.net.forward(x).square().mean(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, self.shape.lr)
    }
}

impl lightning::FromHparams for Rebuilt {
    type Hparams = Shape;

    fn from_hparams(shape: Shape) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 4, shape.hidden, Default::default()))
            .add_fn(|x| x.tanh())
            .add(nn::linear(vs.root() / "l2", shape.hidden, 1, Default::default()));
        Rebuilt { vs, net, shape }
    }
}

#[test]
fn from_checkpoint_rebuilds_the_module_from_its_hyper_parameters_and_weights() {
    use lightning::{Checkpoint, Error, FromHparams, Trainer};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trained.ckpt");
    struct SaveAtEnd(std::path::PathBuf);
    impl lightning::Callback for SaveAtEnd {
        fn on_train_end(&mut self, ctx: &mut Ctx, _m: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
            ctx.save_checkpoint(self.0.clone());
            Ok(())
        }
    }
    let mut trained = Rebuilt::from_hparams(Shape { hidden: 7, lr: 0.1 });
    let batches: Vec<Tensor> = (0..3).map(|_| Tensor::randn([8, 4], (Kind::Float, Device::Cpu))).collect();
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(2)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(SaveAtEnd(path.clone()))
        .fit(&mut trained, Loader::from(batches), None)
        .unwrap();

    let rebuilt = Rebuilt::from_checkpoint(&path).unwrap();
    assert_eq!(rebuilt.shape, Shape { hidden: 7, lr: 0.1 });
    let (mut a, mut b) = (
        trained.vs.variables().into_iter().collect::<Vec<_>>(),
        rebuilt.vs.variables().into_iter().collect::<Vec<_>>(),
    );
    a.sort_by(|x, y| x.0.cmp(&y.0));
    b.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(a.len(), b.len());
    for ((name, x), (_, y)) in a.iter().zip(&b) {
        assert!(x.equal(y), "{name} differs");
    }

    // Hyper-parameters of another type are an error naming the file, not a panic.
    assert!(Checkpoint::read(&path).unwrap().hparams().is_some());
    let Err(wrong_shape) = WrongShape::from_checkpoint(&path) else {
        panic!("hyper-parameters of another shape were accepted")
    };
    assert!(matches!(wrong_shape, Error::Checkpoint { .. }), "{wrong_shape:?}");
    assert!(wrong_shape.to_string().contains("another shape"), "{wrong_shape}");
}

/// Expects hyper-parameters a `Rebuilt` checkpoint does not hold.
#[derive(serde::Deserialize)]
struct OtherShape {
    #[allow(dead_code)]
    layers: Vec<usize>,
}

struct WrongShape {
    vs: nn::VarStore,
}

#[lightning_module]
impl WrongShape {
    fn training_step(&mut self, x: &Tensor) -> Tensor {
        x.sum(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

impl lightning::FromHparams for WrongShape {
    type Hparams = OtherShape;

    fn from_hparams(_: OtherShape) -> Self {
        WrongShape { vs: nn::VarStore::new(Device::Cpu) }
    }
}
