//! Mixed and true precision on the CPU: what runs in which dtype, the gradient scaler's skip and backoff, its
//! state across a resume, and that training still learns.

use std::sync::{Arc, Mutex};

use lightning::prelude::*;
use lightning::{Accelerator, DataLoader, Error, Precision, Trainer};

/// Ten Gaussian blobs in 16 dimensions: a classification an MLP learns to ~100% in a few epochs.
fn blobs(n: i64) -> (Tensor, Tensor) {
    tch::manual_seed(3);
    let centers = Tensor::randn([10, 16], (Kind::Float, Device::Cpu)) * 3.0;
    let y = Tensor::randint(10, [n], (Kind::Int64, Device::Cpu));
    let x = centers.index_select(0, &y) + Tensor::randn([n, 16], (Kind::Float, Device::Cpu));
    (x, y)
}

/// The share of `data` that `net` (with weights of `kind`) classifies right.
fn accuracy_of(net: &nn::Sequential, kind: Kind, (x, y): &(Tensor, Tensor)) -> f64 {
    let _guard = tch::no_grad_guard();
    let x = x.to_kind(kind);
    net.forward(&x).argmax(-1, false).eq_tensor(y).to_kind(Kind::Float).mean(Kind::Float).double_value(&[])
}

/// What a step saw: the dtype of its logits and of its loss.
type Seen = Arc<Mutex<Vec<(Kind, Kind)>>>;

struct Classifier {
    vs: nn::VarStore,
    net: nn::Sequential,
    seen: Seen,
    /// Multiplies the loss: a huge factor makes fp16 gradients overflow.
    loss_factor: f64,
}

impl Classifier {
    fn new() -> Self {
        tch::manual_seed(5);
        let vs = nn::VarStore::new(Device::Cpu);
        let net = nn::seq()
            .add(nn::linear(vs.root() / "l1", 16, 64, Default::default()))
            .add_fn(|x| x.relu())
            .add(nn::linear(vs.root() / "l2", 64, 10, Default::default()));
        Classifier { vs, net, seen: Seen::default(), loss_factor: 1.0 }
    }

    fn accuracy(&self, data: &(Tensor, Tensor)) -> f64 {
        accuracy_of(&self.net, self.vs.kind(), data)
    }
}

#[lightning_module]
impl Classifier {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Tensor {
        let logits = self.net.forward(x);
        let loss = logits.cross_entropy_for_logits(y) * self.loss_factor;
        self.seen.lock().unwrap().push((logits.kind(), loss.kind()));
        ctx.log("train_loss", &loss);
        loss
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-2)
    }
}

fn trainer(precision: Precision) -> Trainer {
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .accelerator(Accelerator::Cpu)
        .precision(precision)
        .seed(1)
        .enable_progress_bar(false)
        .enable_model_summary(false)
}

fn loader(data: &(Tensor, Tensor)) -> Loader<(Tensor, Tensor)> {
    DataLoader::new((data.0.shallow_clone(), data.1.shallow_clone())).batch_size(64).shuffle(true).build().unwrap()
}

#[test]
fn precision_names_parse_as_lightnings() {
    for (name, precision) in [
        ("32-true", Precision::F32True),
        ("64-true", Precision::F64True),
        ("bf16-mixed", Precision::Bf16Mixed),
        ("16-mixed", Precision::F16Mixed),
        ("bf16-true", Precision::Bf16True),
        ("16-true", Precision::F16True),
        ("bf16", Precision::Bf16Mixed),
        ("16", Precision::F16Mixed),
    ] {
        assert_eq!(name.parse::<Precision>().unwrap(), precision);
    }
    let error = "fp8".parse::<Precision>().unwrap_err().to_string();
    assert!(error.contains("\"fp8\"") && error.contains("bf16-mixed"), "{error}");
}

#[test]
fn bf16_mixed_computes_in_bf16_keeps_fp32_weights_and_learns_as_fp32_does() {
    // One draw split in two (tests run on threads that share torch's generator: two draws could differ).
    let all = blobs(2560);
    let train = (all.0.narrow(0, 0, 2048), all.1.narrow(0, 0, 2048));
    let test = (all.0.narrow(0, 2048, 512), all.1.narrow(0, 2048, 512));
    let mut accuracies = Vec::new();
    for precision in [Precision::F32True, Precision::Bf16Mixed] {
        let mut model = Classifier::new();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("end.ckpt");
        trainer(precision).max_epochs(3).fit(&mut model, loader(&train), None).unwrap();
        let seen = model.seen.lock().unwrap().clone();
        let low = if precision == Precision::Bf16Mixed { Kind::BFloat16 } else { Kind::Float };
        // Inside the step: the linear layers ran in bf16; the loss (a reduction) in fp32, as torch.autocast does.
        assert!(seen.iter().all(|&(logits, loss)| logits == low && loss == Kind::Float), "{precision}: {seen:?}");
        // Outside: the weights and the optimizer's moments are fp32.
        for (name, tensor) in model.vs.variables() {
            assert_eq!(tensor.kind(), Kind::Float, "{precision}: weight {name}");
        }
        save_and_check_state_kinds(&mut model, &path, precision, &train);
        accuracies.push(model.accuracy(&test));
    }
    let (fp32, bf16) = (accuracies[0], accuracies[1]);
    assert!(fp32 > 0.9 && bf16 > 0.9, "fp32 {fp32}, bf16-mixed {bf16}");
    assert!((fp32 - bf16).abs() < 0.03, "fp32 {fp32}, bf16-mixed {bf16}");
}

/// One more epoch that saves a checkpoint, whose optimizer state must be fp32.
fn save_and_check_state_kinds(
    model: &mut Classifier,
    path: &std::path::Path,
    precision: Precision,
    data: &(Tensor, Tensor),
) {
    struct SaveAtEnd(std::path::PathBuf);
    impl lightning::Callback for SaveAtEnd {
        fn on_train_end(&mut self, ctx: &mut Ctx, _m: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
            ctx.save_checkpoint(self.0.clone());
            Ok(())
        }
    }
    trainer(precision).max_epochs(1).callback(SaveAtEnd(path.to_path_buf())).fit(model, loader(data), None).unwrap();
    let checkpoint = lightning::Checkpoint::read(path).unwrap();
    let moments: Vec<&str> = checkpoint.tensor_names().into_iter().filter(|n| n.starts_with("optimizer.")).collect();
    assert!(!moments.is_empty());
    for name in moments {
        assert_eq!(checkpoint.tensor(name).unwrap().kind(), Kind::Float, "{precision}: {name}");
    }
}

#[test]
fn sixteen_mixed_skips_an_overflowing_step_halves_the_scale_and_leaves_the_weights() {
    let mut model = Classifier::new();
    // Gradients of ~1e35 x 65536 overflow even fp32 once scaled: every step has an inf.
    model.loss_factor = 1e35;
    let before: Vec<Tensor> = model.vs.trainable_variables().iter().map(|t| t.detach().copy()).collect();
    let dir = tempfile::tempdir().unwrap();
    let data = blobs(192);
    let path = dir.path().join("after.ckpt");
    struct Save(std::path::PathBuf);
    impl lightning::Callback for Save {
        fn on_train_end(&mut self, ctx: &mut Ctx, _m: &mut dyn lightning::AnyModule) -> lightning::CallbackResult {
            ctx.save_checkpoint(self.0.clone());
            Ok(())
        }
    }
    let mut trainer = trainer(Precision::F16Mixed).max_epochs(1).callback(Save(path.clone()));
    trainer.fit(&mut model, loader(&data), None).unwrap();
    // Three batches, three skipped steps: still counted as global steps, as Lightning counts them.
    assert_eq!(trainer.global_step(), 3);
    for (b, a) in before.iter().zip(model.vs.trainable_variables()) {
        assert!(b.equal(&a), "a skipped step changed the weights");
    }
    let scaler = lightning::Checkpoint::read(&path).unwrap().scaler().expect("a 16-mixed checkpoint holds the scaler");
    assert_eq!(scaler.scale, 65536.0 / 8.0);
    assert_eq!(scaler.growth_tracker, 0);
}

#[test]
fn sixteen_mixed_trains_and_a_mid_epoch_resume_continues_bitwise() {
    let data = blobs(640);
    let dir = tempfile::tempdir().unwrap();
    let mid = dir.path().join("mid.ckpt");
    struct SaveAt(std::path::PathBuf, usize);
    impl lightning::Callback for SaveAt {
        fn on_train_batch_end(
            &mut self,
            ctx: &mut Ctx,
            _m: &mut dyn lightning::AnyModule,
            _o: &lightning::StepOutput,
            _b: &dyn std::any::Any,
            _i: usize,
        ) -> lightning::CallbackResult {
            if ctx.global_step() == self.1 {
                ctx.save_checkpoint(self.0.clone());
            }
            Ok(())
        }
    }
    let mut straight = Classifier::new();
    trainer(Precision::F16Mixed)
        .max_epochs(2)
        .callback(SaveAt(mid.clone(), 13))
        .fit(&mut straight, loader(&data), None)
        .unwrap();
    let scaler = lightning::Checkpoint::read(&mid).unwrap().scaler().unwrap();
    // The first steps overflow fp16 at 2^16 and back the scale off (as PyTorch's do); clean steps since count up.
    assert!(scaler.scale < 65536.0 && scaler.growth_tracker > 0, "{scaler:?}");

    let mut resumed = Classifier::new();
    trainer(Precision::F16Mixed).max_epochs(2).fit_from(&mut resumed, loader(&data), None, &mid).unwrap();
    for ((name, a), (_, b)) in sorted(&straight).iter().zip(sorted(&resumed).iter()) {
        assert!(a.equal(b), "{name} differs after the resume");
    }
    assert!(straight.accuracy(&data) > 0.9);
}

fn sorted(model: &Classifier) -> Vec<(String, Tensor)> {
    let mut vars: Vec<_> = model.vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

#[test]
fn bf16_true_casts_the_weights_and_the_batches() {
    let mut model = Classifier::new();
    let data = blobs(256);
    trainer(Precision::Bf16True).max_epochs(1).fit(&mut model, loader(&data), None).unwrap();
    for (name, tensor) in model.vs.variables() {
        assert_eq!(tensor.kind(), Kind::BFloat16, "weight {name}");
    }
    let seen = model.seen.lock().unwrap().clone();
    assert!(seen.iter().all(|&(logits, _)| logits == Kind::BFloat16), "{seen:?}");
}

#[test]
fn a_nonfinite_loss_under_16_mixed_is_still_an_error() {
    let mut model = Classifier::new();
    model.loss_factor = f64::NAN;
    let error = trainer(Precision::F16Mixed).max_epochs(1).fit(&mut model, loader(&blobs(64)), None).unwrap_err();
    assert!(matches!(error, Error::NonFiniteLoss { .. }), "{error}");
}

/// Manual optimization under `16-mixed`: `manual_backward` scales, `Optimizer::step` unscales and steps.
struct Manual {
    vs: nn::VarStore,
    net: nn::Sequential,
}

#[lightning_module(manual_optimization)]
impl Manual {
    fn training_step(&mut self, (x, y): &(Tensor, Tensor), _batch_idx: usize, ctx: &mut Ctx) -> Result<Tensor, Error> {
        let loss = self.net.forward(x).cross_entropy_for_logits(y);
        ctx.optimizers()[0].zero_grad()?;
        ctx.manual_backward(self, &loss)?;
        ctx.optimizers()[0].step()?;
        Ok(loss)
    }

    fn configure_optimizers(&mut self) -> Optimizer {
        Optimizer::adam(&self.vs, 1e-2)
    }
}

#[test]
fn sixteen_mixed_in_manual_optimization_scales_and_unscales() {
    let data = blobs(1024);
    let Classifier { vs, net, .. } = Classifier::new();
    let mut model = Manual { vs, net };
    let before = accuracy_of(&model.net, Kind::Float, &data);
    let mut trainer = trainer(Precision::F16Mixed).max_epochs(3);
    trainer.fit(&mut model, loader(&data), None).unwrap();
    // Every call of `step` counts, skipped or not: 16 batches x 3 epochs.
    assert_eq!(trainer.global_step(), 48);
    let after = accuracy_of(&model.net, Kind::Float, &data);
    assert!(after > 0.9 && after > before, "accuracy {before} -> {after}");
}
