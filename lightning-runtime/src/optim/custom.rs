//! Update rules of your own (RMSprop, Lion, Adafactor, ...) inside the runtime's [`Optimizer`]: it keeps the
//! parameters, the learning rate (which schedulers drive), parameter groups, the step count and the state tensors,
//! so that checkpoints save and restore a custom optimizer as exactly as the built-in ones.

use tch::Tensor;

use crate::Result;

/// What one step of an update rule is told besides a parameter and its gradient.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepInfo {
    /// The learning rate of the parameter's group (after the schedulers).
    pub lr: f64,
    /// The weight decay of the parameter's group.
    pub weight_decay: f64,
    /// The step being taken, from 1 (PyTorch's `state["step"]` after its increment).
    pub step: u64,
}

/// An update rule for [`Optimizer::custom`](crate::Optimizer::custom). The optimizer calls
/// [`update`](Self::update) for every parameter that has a gradient, under `no_grad`, with the parameter's
/// [`slots`](Self::slots) state tensors (zeros like the parameter at the first step). Everything else an optimizer
/// does (zero_grad, clipping, gradient scaling, learning-rate schedules, parameter groups, checkpoints) works as
/// for the built-in rules.
///
/// ```
/// use lightning_runtime::tch::{nn::VarStore, Device, Kind, Tensor};
/// use lightning_runtime::{Optimizer, StepInfo, UpdateRule};
///
/// /// Lion (Chen et al., 2023): the sign of an interpolated momentum.
/// struct Lion {
///     beta1: f64,
///     beta2: f64,
/// }
///
/// impl UpdateRule for Lion {
///     fn name(&self) -> &str {
///         "Lion"
///     }
///     fn slots(&self) -> usize {
///         1 // the momentum
///     }
///     fn update(&self, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor], step: StepInfo) -> lightning_runtime::Result<()> {
///         let m = &mut state[0];
///         let _ = param.f_mul_scalar_(1.0 - step.lr * step.weight_decay)?;
///         let direction = m.f_mul_scalar(self.beta1)?.f_add(&grad.f_mul_scalar(1.0 - self.beta1)?)?.f_sign()?;
///         let _ = param.f_sub_(&direction.f_mul_scalar(step.lr)?)?;
///         let _ = m.f_mul_scalar_(self.beta2)?.f_add_(&grad.f_mul_scalar(1.0 - self.beta2)?)?;
///         Ok(())
///     }
///     fn settings(&self) -> serde_json::Value {
///         serde_json::json!({ "beta1": self.beta1, "beta2": self.beta2 })
///     }
/// }
///
/// let vs = VarStore::new(Device::Cpu);
/// let w = vs.root().zeros("w", &[2]);
/// let mut opt = Optimizer::custom(&vs, 1e-2, Lion { beta1: 0.9, beta2: 0.99 });
/// (&w - 1.0).square().sum(Kind::Float).backward();
/// opt.step().unwrap();
/// assert!((w.double_value(&[0]) - 0.01).abs() < 1e-7);
/// ```
pub trait UpdateRule: Send + 'static {
    /// Its name, saved in checkpoints: a checkpoint restores only into a rule of the same name.
    fn name(&self) -> &str;
    /// How many state tensors it keeps per parameter.
    fn slots(&self) -> usize;
    /// Updates `param` in place from `grad`, with its `state` tensors (as many as [`slots`](Self::slots)).
    fn update(&self, param: &mut Tensor, grad: &Tensor, state: &mut [Tensor], step: StepInfo) -> Result<()>;
    /// Its settings as JSON, saved in checkpoints (default: none).
    fn settings(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Takes the settings a checkpoint saved; says what does not fit (the checkpoint is then refused, naming
    /// the file). The default takes none and accepts any.
    fn load_settings(&mut self, _settings: serde_json::Value) -> std::result::Result<(), String> {
        Ok(())
    }
    /// What is wrong with its settings, checked when `fit` starts and when a checkpoint brings them back (PyTorch
    /// checks its optimizers' settings when they are made). The default finds nothing.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// An optimizer's custom rule.
pub(super) struct CustomRule(pub Box<dyn UpdateRule>);

impl std::fmt::Debug for CustomRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.0.name(), self.0.settings())
    }
}

/// What a checkpoint keeps of a custom rule.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CustomState {
    pub name: String,
    pub settings: serde_json::Value,
}
