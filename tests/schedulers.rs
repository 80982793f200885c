//! Learning-rate schedules in a fit: `ReduceLROnPlateau` stepped on a logged metric after validation, its error
//! when the metric was never logged, and a lambda schedule across a resume.

mod common;

use common::checkpointing::{train_loader, val_loader, Net, Opt};
use common::serial;
use lightning::prelude::*;
use lightning::{Accelerator, Error, Plateau, Trainer};

/// The MLP with the scheduler a test gives it; records the rate each epoch starts with.
struct Scheduled {
    vs: nn::VarStore,
    layers: Vec<nn::Linear>,
    make: fn() -> LrScheduler,
    monitored_name: &'static str,
    rates: Vec<f64>,
}

impl Scheduled {
    fn new(make: fn() -> LrScheduler) -> Self {
        let Net { vs, layers, .. } = Net::mlp(0.0, Opt::SgdOnly);
        Scheduled { vs, layers, make, monitored_name: "val_flat", rates: Vec::new() }
    }
}

#[lightning_module]
impl Scheduled {
    fn on_train_epoch_start(&mut self, ctx: &mut Ctx) {
        self.rates.push(ctx.optimizers().first().map_or(f64::NAN, |o| o.lr()));
    }

    fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
        let h = self.layers[0].forward(x).relu();
        self.layers[1].forward(&h).mse_loss(y, Reduction::Mean)
    }

    fn validation_step(&mut self, _batch: &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) {
        // A metric that never improves: the plateau cuts the rate once its patience runs out.
        ctx.log(self.monitored_name, 1.0);
    }

    fn configure_optimizers(&mut self) -> (Vec<Optimizer>, Vec<LrScheduler>) {
        (vec![Optimizer::sgd(&self.vs, 0.1)], vec![(self.make)()])
    }
}

fn cpu(epochs: usize) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(epochs)
        .num_sanity_val_steps(0)
        .enable_progress_bar(false)
        .enable_model_summary(false)
}

#[test]
fn reduce_on_plateau_steps_on_the_monitored_metric_after_validation() {
    let _serial = serial();
    let mut module =
        Scheduled::new(|| LrScheduler::reduce_on_plateau(Plateau::new("val_flat").factor(0.5).patience(1)));
    cpu(6).fit(&mut module, train_loader(1), val_loader()).unwrap();
    // Epoch 0 sets the best; epochs 1 and 2 do not improve: the cut comes after epoch 2's validation, and
    // again two epochs later.
    let expected = [0.1, 0.1, 0.1, 0.05, 0.05, 0.025];
    assert_eq!(module.rates.len(), expected.len());
    for (seen, want) in module.rates.iter().zip(expected) {
        assert!((seen - want).abs() < 1e-12, "rates {:?}, expected {expected:?}", module.rates);
    }
}

#[test]
fn a_plateau_monitoring_a_metric_never_logged_is_an_error_listing_the_logged_ones() {
    let _serial = serial();
    let mut module = Scheduled::new(|| LrScheduler::reduce_on_plateau(Plateau::new("val_loss")));
    let error = cpu(2).fit(&mut module, train_loader(1), val_loader()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Config(_)), "{error:?}");
    assert!(text.contains("`val_loss`") && text.contains("val_flat"), "{text}");
}

#[test]
fn a_lambda_schedule_continues_across_a_resume() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("end.ckpt");
    struct SaveAtEnd(std::path::PathBuf);
    impl lightning::Callback for SaveAtEnd {
        fn on_train_end(&mut self, ctx: &mut Ctx, _m: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
            ctx.save_checkpoint(self.0.clone());
            Ok(())
        }
    }
    let halving = || LrScheduler::lambda(|epoch| 0.5f64.powi(epoch as i32));
    let mut straight = Scheduled::new(halving);
    cpu(4).fit(&mut straight, train_loader(1), val_loader()).unwrap();
    let mut first = Scheduled::new(halving);
    cpu(2).callback(SaveAtEnd(path.clone())).fit(&mut first, train_loader(1), val_loader()).unwrap();
    let mut resumed = Scheduled::new(halving);
    cpu(4).fit_from(&mut resumed, train_loader(1), val_loader(), &path).unwrap();
    assert_eq!(straight.rates, [0.1, 0.05, 0.025, 0.0125]);
    assert_eq!(first.rates.iter().chain(&resumed.rates).copied().collect::<Vec<_>>(), straight.rates);
}
