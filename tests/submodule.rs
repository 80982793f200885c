//! `vs.submodule("generator")`: the parameters under one path of a `VarStore`, for an optimizer per network.
//! A run whose optimizer holds one network's parameters trains that network only; BatchNorm's running
//! statistics are not among them; a misspelt path ends the run with an error naming the paths there are.

use lightning::prelude::*;
use lightning::{Accelerator, Error, Trainer};

/// Two networks in one VarStore; the optimizer trains `path` only.
struct Two {
    vs: nn::VarStore,
    generator: nn::Linear,
    norm: nn::BatchNorm,
    critic: nn::Linear,
    path: &'static str,
}

impl Two {
    fn new(path: &'static str) -> Self {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(Device::Cpu);
        let generator = nn::linear(vs.root() / "generator" / "l1", 2, 3, Default::default());
        let norm = nn::batch_norm1d(vs.root() / "generator" / "norm", 3, Default::default());
        let critic = nn::linear(vs.root() / "critic", 3, 1, Default::default());
        Two { vs, generator, norm, critic, path }
    }

    fn snapshot(&self, prefix: &str) -> Vec<(String, Tensor)> {
        let mut named: Vec<(String, Tensor)> =
            self.vs.variables().into_iter().filter(|(name, _)| name.starts_with(prefix)).collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        named.into_iter().map(|(name, t)| (name, t.detach().copy())).collect()
    }
}

#[lightning_module(batch = Tensor)]
impl Two {
    fn training_step(&mut self, x: &Tensor, ctx: &mut Ctx) -> Tensor {
        let h = self.norm.forward_t(&self.generator.forward(x), ctx.is_training());
        self.critic.forward(&h).square().mean(Kind::Float)
    }

    fn configure_optimizers(&mut self) -> lightning::Result<Optimizer> {
        Ok(Optimizer::sgd(self.vs.submodule(self.path)?, 0.1))
    }
}

fn fit(module: &mut Two) -> lightning::Result<()> {
    let data: Vec<Tensor> = (0..4).map(|_| Tensor::randn([8, 2], (Kind::Float, Device::Cpu))).collect();
    Trainer::new()
        .logger(false)
        .enable_checkpointing(false)
        .max_epochs(1)
        .accelerator(Accelerator::Cpu)
        .enable_progress_bar(false)
        .enable_model_summary(false)
        .fit(module, Loader::from(data), None)
}

#[test]
fn an_optimizer_over_one_submodule_trains_that_one_only() {
    let mut module = Two::new("generator");
    let parameters = module.vs.submodule("generator").unwrap();
    // l1's weight and bias, the norm's weight and bias; not its running mean and variance.
    assert_eq!(parameters.parameters().len(), 4);
    assert_eq!(module.vs.submodule(&(module.vs.root() / "generator" / "l1")).unwrap().parameters().len(), 2);
    // A name that only starts like a path is not under it.
    assert!(module.vs.submodule("gen").is_err());

    let (generator, critic) = (module.snapshot("generator."), module.snapshot("critic."));
    fit(&mut module).unwrap();
    for (name, before) in &generator {
        if name == "generator.l1.bias" {
            // BatchNorm subtracts the batch mean right after: this bias gets no gradient at all.
            continue;
        }
        let after = module.vs.variables()[name].detach();
        // Trained (parameters) or updated by the forward passes (running statistics): all changed.
        assert!(!after.allclose(before, 0.0, 0.0, false), "{name} did not change");
    }
    for (name, before) in &critic {
        assert!(module.vs.variables()[name].equal(before), "{name} changed, but its optimizer does not hold it");
    }
}

#[test]
fn a_misspelt_path_is_an_error_naming_the_paths_there_are() {
    let mut module = Two::new("genrator");
    let error = fit(&mut module).unwrap_err();
    assert!(matches!(error, Error::Hook { hook: "configure_optimizers", .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("no parameters under `genrator`") && message.contains("critic, generator"), "{message}");
}
