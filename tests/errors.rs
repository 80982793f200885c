//! Bad input and failing hooks end the run with an `Err` that names the problem, after the teardown hooks.

mod common;

use common::recorder::{regression_batches, Log, Recorder, RecordingCallback};
use lightning::prelude::*;
use lightning::{Accelerator, Error, NonFinite, Trainer};

fn cpu() -> Trainer {
    Trainer::new().logger(false).enable_checkpointing(false).accelerator(Accelerator::Cpu)
}

fn data(batches: usize) -> Loader<(Tensor, Tensor)> {
    Loader::from(regression_batches(batches))
}

/// A module that misbehaves on demand.
struct Faulty {
    vs: nn::VarStore,
    linear: nn::Linear,
    fault: Fault,
    log: Log,
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    None,
    NanAtBatch(usize),
    PanicAtBatch(usize),
    ErrInSetup,
    LogInSetup,
    LogOnStepInEpochEnd,
}

impl Faulty {
    fn new(fault: Fault) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let linear = nn::linear(vs.root(), 3, 1, Default::default());
        Faulty { vs, linear, fault, log: Log::default() }
    }
}

#[lightning_module]
impl Faulty {
    fn setup(&mut self, _stage: Stage, ctx: &mut Ctx) -> Result<(), String> {
        match self.fault {
            Fault::ErrInSetup => Err("the data folder is missing".to_string()),
            Fault::LogInSetup => {
                log_from_a_helper(ctx, "too_early");
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn training_step(&mut self, (x, y): &(Tensor, Tensor), batch_idx: usize) -> Tensor {
        match self.fault {
            Fault::PanicAtBatch(at) if at == batch_idx => panic!("the step cannot handle batch {batch_idx}"),
            Fault::NanAtBatch(at) if at == batch_idx => Tensor::from(f32::NAN),
            _ => self.linear.forward(x).mse_loss(y, Reduction::Mean),
        }
    }

    fn on_train_epoch_end(&mut self, ctx: &mut Ctx) {
        if self.fault == Fault::LogOnStepInEpochEnd {
            ctx.log("per_step", 1.0).on_step(true);
        }
    }

    fn predict_step(&mut self, (x, _): &(Tensor, Tensor), ctx: &mut Ctx) -> Tensor {
        log_from_a_helper(ctx, "not_here");
        self.linear.forward(x)
    }

    fn teardown(&mut self, stage: Stage) {
        self.log.lock().unwrap().push(format!("teardown {stage}"));
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }
}

/// Logging out of the hook's sight: written in the hook's own body, a forbidden `ctx.log` is a compile error, and
/// this is how the run-time check is reached.
fn log_from_a_helper(ctx: &mut Ctx, name: &str) {
    ctx.log(name, 1.0);
}

fn message(result: lightning::Result<impl std::fmt::Debug>) -> String {
    result.unwrap_err().to_string()
}

#[test]
fn nothing_to_stop_on_is_an_error() {
    let mut module = Faulty::new(Fault::None);
    let error = message(cpu().fit(&mut module, data(2), None));
    assert!(error.contains("nothing to stop on: set `max_epochs` or `max_steps`"), "{error}");
}

#[test]
fn validation_data_without_validation_step_is_skipped_as_lightning_does() {
    let mut module = Faulty::new(Fault::None);
    // Lightning warns and skips the validation loop; the run trains as if no validation data were given.
    let mut trainer = cpu().max_epochs(1);
    trainer.fit(&mut module, data(2), data(1)).unwrap();
    assert_eq!(trainer.global_step(), 2);
}

#[test]
fn validation_step_without_validation_data_is_an_error() {
    let log = Log::default();
    let mut module = Recorder::new(log);
    // The recorder has a val_dataloader; a module without one and no data passed must be told.
    struct NoValData {
        vs: nn::VarStore,
        w: Tensor,
    }
    #[lightning_module]
    impl NoValData {
        fn training_step(&mut self, batch: &(Tensor, Tensor)) -> Tensor {
            (&batch.0 * &self.w).mean(Kind::Float)
        }
        fn validation_step(&mut self, _batch: &(Tensor, Tensor)) {}
        fn configure_optimizers(&mut self) -> Optimizer {
            Optimizer::sgd(&self.vs, 0.01)
        }
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let w = vs.root().ones("w", &[1]);
    let mut bare = NoValData { vs, w };
    let error = message(cpu().max_epochs(1).fit(&mut bare, data(2), None));
    assert!(error.contains("defines `validation_step` but `fit` has no validation data"), "{error}");
    // ...and `limit_val_batches(0)` is the way to say "no validation".
    cpu().max_epochs(1).limit_val_batches(0).fit(&mut bare, data(2), None).unwrap();
    cpu().max_epochs(1).fit(&mut module, None, None).unwrap();
}

#[test]
fn an_empty_loader_is_an_error() {
    let mut module = Faulty::new(Fault::None);
    let error = message(cpu().max_epochs(1).fit(&mut module, data(0), None));
    assert!(error.contains("the training loader has no batches"), "{error}");
    let empty_iter = Loader::from_fn(|_| Vec::<(Tensor, Tensor)>::new());
    let error = message(cpu().max_epochs(1).fit(&mut module, empty_iter, None));
    assert!(error.contains("the training loader yielded no batches in epoch 0"), "{error}");
}

#[test]
fn a_nan_loss_stops_the_run_naming_the_step() {
    let mut module = Faulty::new(Fault::NanAtBatch(2));
    let result = cpu().max_epochs(2).fit(&mut module, data(4), None);
    match result {
        Err(Error::NonFiniteLoss { value, epoch, batch_idx, global_step }) => {
            assert!(value.is_nan());
            assert_eq!((epoch, batch_idx, global_step), (0, 2, 2));
        }
        other => panic!("expected a non-finite loss error, got {other:?}"),
    }
    assert_eq!(*module.log.lock().unwrap(), ["teardown fit"]);
    let weights = module.linear.ws.copy();
    assert!(weights.isfinite().all().int64_value(&[]) == 1, "no NaN reached the weights");

    let mut module = Faulty::new(Fault::NanAtBatch(2));
    let mut trainer = cpu().max_epochs(2).nonfinite_loss(NonFinite::Skip);
    trainer.fit(&mut module, data(4), None).unwrap();
    assert_eq!(trainer.global_step(), 6, "batch 2 of each of the two epochs is skipped");
}

#[test]
fn a_panicking_hook_returns_an_error_after_on_exception_and_teardown() {
    let log = Log::default();
    let mut module = Faulty::new(Fault::PanicAtBatch(1));
    module.log = log.clone();
    let mut trainer = cpu().max_epochs(1).callback(RecordingCallback(log.clone()));
    let result = trainer.fit(&mut module, data(3), None);
    match &result {
        Err(Error::Panic { hook, message }) => {
            assert_eq!(*hook, "training_step");
            assert!(message.contains("cannot handle batch 1"), "{message}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    let calls = log.lock().unwrap().clone();
    let tail: Vec<&str> = calls.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["Callback.on_exception", "Callback.teardown", "teardown fit"]);
}

#[test]
fn a_hook_returning_err_names_the_hook() {
    let mut module = Faulty::new(Fault::ErrInSetup);
    let error = message(cpu().max_epochs(1).fit(&mut module, data(2), None));
    assert_eq!(error, "hook `setup` failed: the data folder is missing");
    assert_eq!(*module.log.lock().unwrap(), ["teardown fit"]);
}

#[test]
fn logging_where_lightning_forbids_it_is_an_error() {
    let mut module = Faulty::new(Fault::LogInSetup);
    let error = message(cpu().max_epochs(1).fit(&mut module, data(2), None));
    assert!(error.contains("`ctx.log(\"too_early\", ..)` in `setup`"), "{error}");

    let mut module = Faulty::new(Fault::LogOnStepInEpochEnd);
    let error = message(cpu().max_epochs(1).fit(&mut module, data(2), None));
    assert!(error.contains("`on_train_epoch_end`: this hook only allows `on_step(false)`"), "{error}");

    let mut module = Faulty::new(Fault::None);
    let error = message(cpu().predict(&mut module, data(1)));
    assert!(error.contains("logging is not supported during predict"), "{error}");
}

#[test]
fn a_cuda_device_that_does_not_exist_is_an_error() {
    let mut module = Faulty::new(Fault::None);
    let count = tch::Cuda::device_count() as usize;
    let error = message(
        Trainer::new()
            .logger(false)
            .enable_checkpointing(false)
            .max_epochs(1)
            .accelerator(Accelerator::Cuda(count))
            .fit(&mut module, data(1), None),
    );
    assert!(error.contains(&format!("CUDA device {count}")), "{error}");
}

/// On CUDA, a `transfer_batch_to_device` that leaves the batch on the CPU is caught before the first step.
#[test]
fn a_batch_left_on_the_wrong_device_is_an_error() {
    if !tch::Cuda::is_available() {
        eprintln!("no CUDA device here: this test needs one and is skipped");
        return;
    }
    struct StaysOnCpu {
        vs: nn::VarStore,
        linear: nn::Linear,
    }
    #[lightning_module]
    impl StaysOnCpu {
        fn transfer_batch_to_device(&mut self, batch: (Tensor, Tensor), _device: Device) -> (Tensor, Tensor) {
            batch
        }
        fn training_step(&mut self, (x, y): &(Tensor, Tensor)) -> Tensor {
            self.linear.forward(x).mse_loss(y, Reduction::Mean)
        }
        fn configure_optimizers(&mut self) -> Optimizer {
            Optimizer::sgd(&self.vs, 0.01)
        }
    }
    let vs = nn::VarStore::new(Device::Cpu);
    let linear = nn::linear(vs.root(), 3, 1, Default::default());
    let mut module = StaysOnCpu { vs, linear };
    let error = message(
        Trainer::new().logger(false).enable_checkpointing(false).max_epochs(1).accelerator(Accelerator::Cuda(0)).fit(
            &mut module,
            data(2),
            None,
        ),
    );
    assert!(error.contains("a training batch has a tensor on Cpu but the module runs on Cuda(0)"), "{error}");
}

#[test]
fn a_panic_in_a_loader_names_the_loader_not_the_last_hook() {
    let panicking = Loader::from_fn(|_epoch| {
        (0..4usize).map(|i| {
            assert!(i < 2, "the data file ends early at batch {i}");
            regression_batches(i + 1).pop().unwrap()
        })
    });
    let log = Log::default();
    let mut module = Faulty::new(Fault::None);
    let mut trainer = cpu().max_epochs(1).callback(RecordingCallback(log.clone()));
    match trainer.fit(&mut module, panicking, None) {
        Err(error @ Error::Panic { .. }) => {
            let Error::Panic { hook, message } = &error else { unreachable!() };
            assert_eq!(*hook, "the training loader");
            assert!(message.contains("the data file ends early at batch 2"), "{message}");
            assert!(error.to_string().starts_with("the training loader panicked: "), "{error}");
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    // The hooks around it ran and returned: none of them is blamed.
    assert!(log.lock().unwrap().iter().any(|call| call == "Callback.on_train_batch_end"));
}
