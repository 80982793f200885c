//! Data modules and several evaluation loaders, end to end: Lightning 2.6's call order (the data module's
//! `prepare_data`/`setup`/`teardown` first, its dataloaders and batch-transfer hooks in place of the module's, its
//! `on_exception` after the callbacks'), its state in checkpoints and back on resume, and `dataloader_idx` with
//! Lightning's `/dataloader_idx_N` keys.

use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{Accelerator, AnyModule, CallbackResult, Error, ModelCheckpoint, Trainer};

type Calls = Arc<Mutex<Vec<String>>>;

fn push(calls: &Calls, call: impl Into<String>) {
    calls.lock().unwrap().push(call.into());
}

fn batches(n: usize, value: f64) -> Vec<Tensor> {
    (0..n).map(|_| Tensor::full([2, 1], value, (Kind::Float, Device::Cpu))).collect()
}

/// A data module that records its hooks, counts the batches it served (its state), and fails when told.
struct Data {
    calls: Calls,
    served: i64,
    restored: Option<i64>,
    val_loaders: usize,
}

#[lightning_datamodule]
impl Data {
    fn prepare_data(&mut self) {
        push(&self.calls, "data.prepare_data");
    }

    fn setup(&mut self, stage: Stage) {
        push(&self.calls, format!("data.setup({stage})"));
    }

    fn train_dataloader(&mut self) -> Loader<Tensor> {
        push(&self.calls, "data.train_dataloader");
        batches(3, 1.0).into()
    }

    fn val_dataloader(&mut self) -> Vec<Loader<Tensor>> {
        push(&self.calls, "data.val_dataloader");
        (0..self.val_loaders).map(|i| Loader::from(batches(2 + i, i as f64))).collect()
    }

    fn test_dataloader(&mut self) -> [Loader<Tensor>; 2] {
        [batches(2, 0.0).into(), batches(3, 10.0).into()]
    }

    fn predict_dataloader(&mut self) -> Vec<Loader<Tensor>> {
        vec![batches(1, 0.0).into(), batches(2, 5.0).into()]
    }

    fn on_before_batch_transfer(&mut self, batch: Tensor, dataloader_idx: usize) -> Tensor {
        self.served += 1;
        push(&self.calls, format!("data.on_before_batch_transfer({dataloader_idx})"));
        batch
    }

    fn state_dict(&self) -> serde_json::Value {
        serde_json::json!({ "served": self.served })
    }

    fn load_state_dict(&mut self, state: serde_json::Value) {
        self.restored = state["served"].as_i64();
        push(&self.calls, "data.load_state_dict");
    }

    fn teardown(&mut self, stage: Stage) {
        push(&self.calls, format!("data.teardown({stage})"));
    }

    fn on_exception(&mut self, error: &Error) {
        push(&self.calls, format!("data.on_exception({})", error.to_string().contains("boom")));
    }
}

impl Data {
    fn new(calls: &Calls) -> Self {
        Data { calls: calls.clone(), served: 0, restored: None, val_loaders: 1 }
    }
}

struct Model {
    vs: nn::VarStore,
    w: Tensor,
    calls: Calls,
    fail: bool,
}

impl Model {
    fn new(calls: &Calls) -> Self {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        Model { vs, w, calls: calls.clone(), fail: false }
    }
}

#[lightning_module]
impl Model {
    fn prepare_data(&mut self) {
        push(&self.calls, "module.prepare_data");
    }

    fn setup(&mut self, stage: Stage) {
        push(&self.calls, format!("module.setup({stage})"));
    }

    fn train_dataloader(&mut self) -> Loader<Tensor> {
        push(&self.calls, "module.train_dataloader");
        batches(1, 1.0).into()
    }

    fn on_before_batch_transfer(&mut self, batch: Tensor) -> Tensor {
        push(&self.calls, "module.on_before_batch_transfer");
        batch
    }

    fn on_after_batch_transfer(&mut self, batch: Tensor, dataloader_idx: usize) -> Tensor {
        push(&self.calls, format!("module.on_after_batch_transfer({dataloader_idx})"));
        batch
    }

    fn training_step(&mut self, x: &Tensor) -> Tensor {
        assert!(!self.fail, "boom");
        (x * &self.w).sum(Kind::Float)
    }

    fn validation_step(&mut self, x: &Tensor, batch_idx: usize, dataloader_idx: usize, ctx: &mut Ctx) {
        push(&self.calls, format!("module.validation_step({dataloader_idx}, {batch_idx})"));
        ctx.log("val_x", x.mean(Kind::Float));
        ctx.log("val_all", x.mean(Kind::Float)).add_dataloader_idx(false);
    }

    fn on_validation_epoch_end(&mut self, ctx: &mut Ctx) {
        assert_eq!(ctx.dataloader_idx(), None);
        ctx.log("val_epoch_end", 1.0);
    }

    fn test_step(&mut self, x: &Tensor, batch_idx: usize, dataloader_idx: usize, ctx: &mut Ctx) {
        assert_eq!(ctx.dataloader_idx(), Some(dataloader_idx));
        ctx.log("test_x", x.mean(Kind::Float) + batch_idx as f64);
    }

    fn predict_step(&mut self, x: &Tensor, batch_idx: usize, dataloader_idx: usize) -> (usize, usize, f64) {
        (dataloader_idx, batch_idx, x.mean(Kind::Float).double_value(&[]))
    }

    fn teardown(&mut self, stage: Stage) {
        push(&self.calls, format!("module.teardown({stage})"));
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::sgd(&self.vs, 0.01)
    }
}

/// Records the callback hooks a data module's hooks are ordered against.
struct Recorder(Calls);

impl lightning::Callback for Recorder {
    fn setup(&mut self, _: &mut Ctx, _: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        push(&self.0, format!("callback.setup({stage})"));
        Ok(())
    }
    fn teardown(&mut self, _: &mut Ctx, _: &mut dyn AnyModule, stage: Stage) -> CallbackResult {
        push(&self.0, format!("callback.teardown({stage})"));
        Ok(())
    }
    fn on_exception(&mut self, _: &mut Ctx, _: &mut dyn AnyModule, _: &Error) -> CallbackResult {
        push(&self.0, "callback.on_exception");
        Ok(())
    }
    fn on_validation_start(&mut self, ctx: &mut Ctx, _: &mut dyn AnyModule) -> CallbackResult {
        push(&self.0, format!("callback.on_validation_start({:?})", ctx.total_batches()));
        Ok(())
    }
    fn on_validation_batch_start(
        &mut self,
        ctx: &mut Ctx,
        _: &mut dyn AnyModule,
        _: &dyn std::any::Any,
        batch_idx: usize,
        dataloader_idx: usize,
    ) -> CallbackResult {
        let total = ctx.total_batches();
        push(&self.0, format!("callback.on_validation_batch_start({dataloader_idx}, {batch_idx}, {total:?})"));
        Ok(())
    }
}

fn trainer(calls: &Calls) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .max_epochs(1)
        .num_sanity_val_steps(0)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .callback(Recorder(calls.clone()))
}

fn take(calls: &Calls) -> Vec<String> {
    std::mem::take(&mut *calls.lock().unwrap())
}

#[test]
fn fit_calls_the_data_module_in_lightnings_order() {
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    trainer(&calls).fit(&mut model, &mut data, None).unwrap();
    let calls = take(&calls);
    let opening: Vec<&str> = calls.iter().take(5).map(String::as_str).collect();
    assert_eq!(
        opening,
        ["data.prepare_data", "module.prepare_data", "data.setup(fit)", "callback.setup(fit)", "module.setup(fit)"]
    );
    let closing: Vec<&str> = calls.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(closing, ["data.teardown(fit)", "callback.teardown(fit)", "module.teardown(fit)"]);
    // The data module's loaders replace the module's; its `on_before_batch_transfer` replaces the module's, while
    // the module's `on_after_batch_transfer` (which the data module does not define) still runs.
    assert!(calls.contains(&"data.train_dataloader".to_string()));
    assert!(!calls.iter().any(|c| c == "module.train_dataloader" || c == "module.on_before_batch_transfer"));
    let transfers = calls.iter().filter(|c| c.starts_with("data.on_before_batch_transfer")).count();
    assert_eq!(transfers, 3 + 2, "3 training and 2 validation batches");
    assert_eq!(calls.iter().filter(|c| c.starts_with("module.on_after_batch_transfer")).count(), 5);
    assert_eq!(data.served, 5);
}

#[test]
fn the_data_modules_state_is_saved_and_restored_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    let checkpoint = ModelCheckpoint::new(dir.path()).save_last(true);
    trainer(&calls).callback(checkpoint).fit(&mut model, &mut data, None).unwrap();
    assert_eq!(data.served, 5);
    let last = dir.path().join("last.ckpt");

    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    take(&calls);
    trainer(&calls).max_epochs(2).fit_from(&mut model, &mut data, None, &last).unwrap();
    assert_eq!(data.restored, Some(5), "load_state_dict got what state_dict saved");
    let seen = take(&calls);
    let setup = seen.iter().position(|c| c == "module.setup(fit)").unwrap();
    let restored = seen.iter().position(|c| c == "data.load_state_dict").unwrap();
    let first_batch = seen.iter().position(|c| c.starts_with("data.on_before_batch_transfer")).unwrap();
    assert!(setup < restored && restored < first_batch, "{seen:?}");

    // `validate` from a checkpoint restores it too (Lightning restores the data module in every entry point).
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    trainer(&calls).validate_from(&mut model, &mut data, &last).unwrap();
    assert_eq!(data.restored, Some(5));
}

#[test]
fn a_failing_run_calls_the_data_modules_on_exception_after_the_callbacks() {
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    model.fail = true;
    let error = trainer(&calls).fit(&mut model, &mut data, None).unwrap_err();
    assert!(error.to_string().contains("boom"), "{error}");
    let calls = take(&calls);
    let tail: Vec<&str> = calls.iter().rev().take(5).rev().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "callback.on_exception",
            "data.on_exception(true)",
            "data.teardown(fit)",
            "callback.teardown(fit)",
            "module.teardown(fit)"
        ]
    );
}

#[test]
fn several_validation_loaders_log_under_lightnings_keys() {
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    data.val_loaders = 2;
    let metrics = trainer(&calls).validate(&mut model, &mut data).unwrap();
    let keys: Vec<&str> = metrics.keys().map(String::as_str).collect();
    assert_eq!(keys, ["val_all", "val_epoch_end", "val_x/dataloader_idx_0", "val_x/dataloader_idx_1"]);
    assert_eq!(metrics["val_x/dataloader_idx_0"], 0.0);
    assert_eq!(metrics["val_x/dataloader_idx_1"], 1.0);
    // `add_dataloader_idx(false)`: one value over both loaders' 2 + 3 batches (0 twice, 1 three times).
    assert!((metrics["val_all"] - 0.6).abs() < 1e-9, "{}", metrics["val_all"]);
    let seen = take(&calls);
    // The progress bar's total is the stage's over both loaders; each batch hook sees its loader's.
    assert!(seen.contains(&"callback.on_validation_start(Some(5))".to_string()), "{seen:?}");
    let starts: Vec<&String> = seen.iter().filter(|c| c.starts_with("callback.on_validation_batch_start")).collect();
    assert_eq!(starts[0], "callback.on_validation_batch_start(0, 0, Some(2))");
    assert_eq!(starts[4], "callback.on_validation_batch_start(1, 2, Some(3))");
    let steps: Vec<String> = seen.into_iter().filter(|c| c.starts_with("module.validation_step")).collect();
    assert_eq!(
        steps,
        [
            "module.validation_step(0, 0)",
            "module.validation_step(0, 1)",
            "module.validation_step(1, 0)",
            "module.validation_step(1, 1)",
            "module.validation_step(1, 2)"
        ]
    );
}

#[test]
fn limits_and_the_sanity_check_apply_to_each_loader() {
    let calls = Calls::default();
    let mut model = Model::new(&calls);
    let loaders = || vec![Loader::from(batches(3, 0.0)), Loader::from(batches(4, 1.0))];
    let mut t = trainer(&calls).num_sanity_val_steps(2).limit_val_batches(3);
    t.fit(&mut model, Loader::from(batches(2, 1.0)), loaders()).unwrap();
    let steps: Vec<String> = take(&calls).into_iter().filter(|c| c.starts_with("module.validation_step")).collect();
    // The sanity check: 2 batches of each loader; then the epoch's validation: 3 of each.
    let expected: Vec<String> = [(0, 2), (1, 2), (0, 3), (1, 3)]
        .into_iter()
        .flat_map(|(loader, n)| (0..n).map(move |i| format!("module.validation_step({loader}, {i})")))
        .collect();
    assert_eq!(steps, expected);
}

#[test]
fn test_and_predict_take_the_data_modules_loaders() {
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    let metrics = trainer(&calls).test(&mut model, &mut data).unwrap();
    // Loader 0: batches of 0 with batch_idx 0, 1 → mean 0.5; loader 1: 10 + (0, 1, 2) → 11.
    assert_eq!(metrics["test_x/dataloader_idx_0"], 0.5);
    assert_eq!(metrics["test_x/dataloader_idx_1"], 11.0);
    let predictions = trainer(&calls).predict(&mut model, &mut data).unwrap();
    assert_eq!(predictions, [(0, 0, 0.0), (1, 0, 5.0), (1, 1, 5.0)]);
    let calls = take(&calls);
    assert!(calls.contains(&"data.setup(test)".to_string()) && calls.contains(&"data.teardown(predict)".to_string()));
}

#[test]
fn mistakes_in_what_fit_is_given_are_errors() {
    let calls = Calls::default();
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    let both = trainer(&calls).fit(&mut model, &mut data, Loader::from(batches(1, 0.0))).unwrap_err();
    assert!(both.to_string().contains("data module and validation loaders"), "{both}");
    let (mut model, mut data) = (Model::new(&calls), Data::new(&calls));
    let second = trainer(&calls).fit(&mut model, None, &mut data).unwrap_err();
    assert!(second.to_string().contains("first data argument"), "{second}");
    let two = trainer(&calls)
        .fit(&mut model, vec![Loader::from(batches(1, 0.0)), Loader::from(batches(1, 0.0))], None)
        .unwrap_err();
    assert!(two.to_string().contains("trains on one loader"), "{two}");
    let empty = trainer(&calls).validate(&mut model, Vec::<Loader<Tensor>>::new()).unwrap_err();
    assert!(empty.to_string().contains("empty list of loaders"), "{empty}");
}

/// A data module with no `val_dataloader`: its run does not use the module's, so a module with a
/// `validation_step` has no validation data (as in Lightning, where the data module is the data's one source).
struct TrainOnly;

#[lightning_datamodule(batch = Tensor)]
impl TrainOnly {
    fn train_dataloader(&self) -> Loader<Tensor> {
        batches(2, 1.0).into()
    }
}

#[test]
fn a_data_module_without_a_hook_has_no_such_data() {
    let calls = Calls::default();
    let mut model = Model::new(&calls);
    let error = trainer(&calls).fit(&mut model, &mut TrainOnly, None).unwrap_err();
    assert!(error.to_string().contains("define `val_dataloader` on the data module"), "{error}");
    trainer(&calls).limit_val_batches(0).fit(&mut model, &mut TrainOnly, None).unwrap();
    let error = trainer(&calls).test(&mut model, &mut TrainOnly).unwrap_err();
    assert!(error.to_string().contains("define `test_dataloader` on the data module"), "{error}");
}
