//! `ctx.log_dict`, `reduce_fx`, and a value that cannot be logged.

use lightning::prelude::*;
use lightning::{Accelerator, Error, ReduceFx, Trainer};

/// Logs `batch_idx` several ways, and a non-scalar tensor when asked.
struct Logs {
    vs: nn::VarStore,
    w: Tensor,
    log_a_vector: bool,
}

impl Logs {
    fn new() -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().zeros("w", &[1]);
        Logs { vs, w, log_a_vector: false }
    }
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[lightning_module]
impl Logs {
    fn training_step(&mut self, x: &Tensor, batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let i = batch_idx as f64;
        ctx.log("count", 1.0).on_step(false).on_epoch(true).reduce_fx(ReduceFx::Sum);
        ctx.log("largest", i).on_step(false).on_epoch(true).reduce_fx(ReduceFx::Max);
        ctx.log("smallest", Tensor::from(i + 10.0)).on_step(false).on_epoch(true).reduce_fx(ReduceFx::Min);
        ctx.log("median", i * i).on_step(false).on_epoch(true).reduce_fx(ReduceFx::Custom(median));
        ctx.log_dict([("first", i), ("twice", 2.0 * i)]).on_step(true).on_epoch(true);
        if self.log_a_vector {
            ctx.log("per_class", Tensor::ones([3, 2], (Kind::Float, Device::Cpu)));
        }
        (x * &self.w).sum(Kind::Float)
    }

    fn validation_step(&mut self, _x: &Tensor, batch_idx: usize, ctx: &mut Ctx) {
        ctx.log_dict(vec![("val_a".to_string(), batch_idx as f64), ("val_b".to_string(), 1.0)]).prog_bar(true);
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

fn batches(n: usize) -> Loader<Tensor> {
    Loader::from((0..n).map(|_| Tensor::ones([4, 1], (Kind::Float, Device::Cpu))).collect::<Vec<_>>())
}

fn trainer() -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .num_sanity_val_steps(0)
        .enable_progress_bar(false)
        .enable_model_summary(false)
}

#[test]
fn reduce_fx_and_log_dict_give_lightnings_epoch_values() {
    let mut module = Logs::new();
    let mut trainer = trainer();
    trainer.fit(&mut module, batches(5), batches(3)).unwrap();
    let m = trainer.callback_metrics();
    assert_eq!(m["count"], 5.0, "sum of five 1s");
    assert_eq!(m["largest"], 4.0);
    assert_eq!(m["smallest"], 10.0);
    assert_eq!(m["median"], 4.0, "median of 0, 1, 4, 9, 16");
    // log_dict's options apply to every key: on_step and on_epoch give `_step` and `_epoch` keys.
    assert_eq!(m["first_epoch"], 2.0);
    assert_eq!(m["twice_epoch"], 4.0);
    assert_eq!(m["first_step"], 4.0);
    // Validation's default reduction: the mean.
    assert_eq!(m["val_a"], 1.0);
    assert_eq!(m["val_b"], 1.0);
}

#[test]
fn logging_a_tensor_that_is_not_a_single_number_is_an_error_naming_it() {
    let mut module = Logs::new();
    module.log_a_vector = true;
    let error = trainer().fit(&mut module, batches(2), batches(1)).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, Error::Log(_)), "{error:?}");
    assert!(text.contains("per_class") && text.contains("[3, 2]") && text.contains("training_step"), "{text}");
}

/// Logs in `test_step` the ways Lightning's returned results tell apart.
struct Tested {
    vs: nn::VarStore,
}

#[lightning_module]
impl Tested {
    fn training_step(&mut self, x: &Tensor) -> Tensor {
        x.sum(Kind::Float)
    }

    fn test_step(&mut self, _x: &Tensor, batch_idx: usize, ctx: &mut Ctx) {
        let i = batch_idx as f64;
        ctx.log("both", i).on_step(true).on_epoch(true);
        ctx.log("epoch_only", i);
        ctx.log("hidden", i).logger(false);
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.1)
    }
}

#[test]
fn test_returns_lightnings_keys_the_epoch_values_sent_to_the_loggers() {
    let mut module = Tested { vs: nn::VarStore::new(Device::Cpu) };
    let mut trainer = trainer();
    let results = trainer.test(&mut module, batches(3)).unwrap();
    assert_eq!(results.keys().map(String::as_str).collect::<Vec<_>>(), ["both_epoch", "epoch_only"]);
    assert_eq!((results["both_epoch"], results["epoch_only"]), (1.0, 1.0));
    // Everything is still in the callback metrics.
    assert_eq!(trainer.callback_metrics()["hidden"], 1.0);
}
