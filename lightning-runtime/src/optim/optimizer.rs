//! `Optimizer`: SGD, Adam and AdamW over a list of parameters, with the state the runtime owns (so that
//! checkpoints can save it), libtorch's fused Adam kernel, gradient clipping and PyTorch's checks of the settings.

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

use super::custom::StepInfo;
use super::groups::{GroupSettings, ParamGroup};
use crate::kernels::AdamStep;
use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) enum Rule {
    Sgd {
        #[serde(with = "crate::json_float")]
        momentum: f64,
        #[serde(with = "crate::json_float")]
        dampening: f64,
        nesterov: bool,
    },
    Adam {
        #[serde(with = "crate::json_float")]
        beta1: f64,
        #[serde(with = "crate::json_float")]
        beta2: f64,
        #[serde(with = "crate::json_float")]
        eps: f64,
        decoupled: bool,
    },
    /// A rule of the user's own: the optimizer's `custom` field holds it.
    Custom,
}

/// An optimizer over a list of parameters: SGD (momentum, Nesterov, weight decay), Adam or AdamW.
///
/// Adam and AdamW run libtorch's fused kernel (PyTorch's `fused=True`: one call updates every parameter) when
/// the parameters are dense floating tensors on one CPU or CUDA device, and PyTorch's single-tensor update
/// otherwise or after [`fused(false)`](Self::fused). The two compute the same update up to float rounding.
/// `zero_grad` sets gradients to None, as PyTorch's does by default since 2.0.
///
/// ```
/// use lightning::Optimizer;
/// let vs = tch::nn::VarStore::new(tch::Device::Cpu);
/// let w = vs.root().zeros("w", &[2]);
/// let mut opt = Optimizer::sgd(&vs, 0.1).momentum(0.9);
/// (&w - 1.0).square().sum(tch::Kind::Float).backward();
/// opt.step().unwrap();
/// assert!(w.double_value(&[0]) > 0.0);
/// ```
#[derive(Debug)]
pub struct Optimizer {
    pub(super) rule: Rule,
    pub(super) params: Vec<Tensor>,
    pub(super) lr: f64,
    pub(super) weight_decay: f64,
    /// Per parameter: the momentum buffer (SGD) or the two moments (Adam).
    pub(super) state: Vec<Vec<Tensor>>,
    pub(super) steps: u64,
    pub(super) fusion: Fusion,
    /// Calls of `step`, skipped ones included (what the Trainer counts as global steps, as Lightning does).
    pub(super) step_calls: u64,
    /// The run's gradient scaler (`16-mixed`): `step` unscales, and skips a step with an inf/NaN gradient.
    pub(crate) scaler: Option<crate::precision::SharedScaler>,
    /// Parameter groups after the first (whose settings are the optimizer's own), in order.
    pub(super) groups: Vec<GroupSettings>,
    /// The rule, when it is the user's own (`Rule::Custom`).
    pub(super) custom: Option<super::custom::CustomRule>,
    /// Whether the fused kernel's step counter on the device is the count of steps taken (after a step whose
    /// skip the device decided, under a gradient scaler); `steps` may then count skipped steps too.
    pub(super) steps_on_device: bool,
}

/// Whether Adam's steps go through libtorch's fused kernel; decided at the first step, when the parameters are
/// on the device they train on.
#[derive(Debug)]
pub(super) enum Fusion {
    Undecided,
    Off,
    /// On, with the float32 step counter the kernel reads, on the parameters' device.
    On(Tensor),
}

/// Where an optimizer's parameters come from: a `VarStore` (its trainable variables) or a list of tensors.
pub trait Params {
    /// The parameters, sharing storage with the model's.
    fn params(self) -> Vec<Tensor>;
}

impl Params for &VarStore {
    fn params(self) -> Vec<Tensor> {
        self.trainable_variables()
    }
}

impl Params for &[Tensor] {
    fn params(self) -> Vec<Tensor> {
        self.iter().map(Tensor::shallow_clone).collect()
    }
}

impl Params for Vec<Tensor> {
    fn params(self) -> Vec<Tensor> {
        self
    }
}

impl Optimizer {
    fn new(rule: Rule, params: impl Params, lr: f64) -> Self {
        let params = params.params();
        Optimizer {
            rule,
            params,
            lr,
            weight_decay: 0.0,
            state: Vec::new(),
            steps: 0,
            fusion: Fusion::Undecided,
            step_calls: 0,
            scaler: None,
            groups: Vec::new(),
            custom: None,
            steps_on_device: false,
        }
    }

    /// An optimizer with an update rule of your own (see [`UpdateRule`](crate::UpdateRule)), whose state the
    /// runtime keeps and checkpoints save, as the built-in rules'.
    pub fn custom(params: impl Params, lr: f64, rule: impl super::UpdateRule) -> Self {
        let mut optimizer = Self::new(Rule::Custom, params, lr);
        optimizer.custom = Some(super::custom::CustomRule(Box::new(rule)));
        optimizer
    }

    /// Stochastic gradient descent.
    pub fn sgd(params: impl Params, lr: f64) -> Self {
        Self::new(Rule::Sgd { momentum: 0.0, dampening: 0.0, nesterov: false }, params, lr)
    }

    /// Adam, with PyTorch's defaults (betas 0.9 and 0.999, eps 1e-8).
    pub fn adam(params: impl Params, lr: f64) -> Self {
        Self::new(Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled: false }, params, lr)
    }

    /// AdamW: Adam with decoupled weight decay (PyTorch's default 0.01).
    pub fn adamw(params: impl Params, lr: f64) -> Self {
        Self::new(Rule::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, decoupled: true }, params, lr).weight_decay(0.01)
    }

    /// SGD's momentum.
    pub fn momentum(mut self, value: f64) -> Self {
        if let Rule::Sgd { momentum, .. } = &mut self.rule {
            *momentum = value;
        }
        self
    }

    /// SGD's Nesterov momentum.
    pub fn nesterov(mut self, on: bool) -> Self {
        if let Rule::Sgd { nesterov, .. } = &mut self.rule {
            *nesterov = on;
        }
        self
    }

    /// Adam's betas.
    pub fn betas(mut self, b1: f64, b2: f64) -> Self {
        if let Rule::Adam { beta1, beta2, .. } = &mut self.rule {
            (*beta1, *beta2) = (b1, b2);
        }
        self
    }

    /// Whether Adam and AdamW may use libtorch's fused kernel (on by default; SGD ignores it). Off, each
    /// parameter is updated by PyTorch's single-tensor Adam, eight kernels per parameter.
    pub fn fused(mut self, on: bool) -> Self {
        self.fusion = if on { Fusion::Undecided } else { Fusion::Off };
        self
    }

    /// Weight decay (L2 for SGD and Adam, decoupled for AdamW).
    pub fn weight_decay(mut self, value: f64) -> Self {
        self.weight_decay = value;
        self
    }

    /// Adds parameters with settings of their own (PyTorch's `param_groups`): what the group does not set, it
    /// takes from this optimizer. The optimizer's own parameters are the first group.
    pub fn param_group(mut self, group: ParamGroup) -> Self {
        let mut settings = group.settings;
        (settings.start, settings.len) = (self.params.len(), group.params.len());
        // Kept as a multiple of the optimizer's rate, which schedulers set: the group follows them.
        settings.lr_scale = settings.lr.map(|lr| if self.lr == 0.0 { f64::INFINITY } else { lr / self.lr });
        self.params.extend(group.params);
        self.groups.push(settings);
        self
    }

    /// The parameter groups: for each, its parameters' range among [`params`](Self::params), its learning rate,
    /// weight decay.
    pub fn groups(&self) -> Vec<(std::ops::Range<usize>, f64, f64)> {
        self.segments().into_iter().map(|(range, lr, wd, _)| (range, lr, wd)).collect()
    }

    /// State tensors per parameter: one layout for every parameter (checkpoints keep it so), with a momentum
    /// buffer if any group has momentum.
    pub(super) fn slots(&self) -> usize {
        self.segments()
            .iter()
            .map(|(.., rule)| match rule {
                Rule::Sgd { momentum, .. } if *momentum == 0.0 => 0,
                Rule::Sgd { .. } => 1,
                Rule::Adam { .. } => 2,
                Rule::Custom => self.custom.as_ref().map_or(0, |rule| rule.0.slots()),
            })
            .max()
            .unwrap_or(0)
    }

    /// Each group's range of parameters and its settings, the optimizer's own first.
    fn segments(&self) -> Vec<(std::ops::Range<usize>, f64, f64, Rule)> {
        let first_end = self.groups.first().map_or(self.params.len(), |g| g.start);
        let mut out = vec![(0..first_end, self.lr, self.weight_decay, self.rule)];
        for group in &self.groups {
            let lr = self.lr * group.lr_scale.unwrap_or(1.0);
            let wd = group.weight_decay.unwrap_or(self.weight_decay);
            out.push((group.start..group.start + group.len, lr, wd, group.rule(self.rule)));
        }
        out
    }

    /// The learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Sets the learning rate (what schedulers do).
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The parameters it updates.
    pub fn params(&self) -> &[Tensor] {
        &self.params
    }

    /// The number of steps taken (steps a gradient scaler skipped not included).
    pub fn steps(&self) -> u64 {
        match (&self.fusion, self.steps_on_device) {
            // A read of the device's counter: a sync, for checkpoints and callers that ask.
            (Fusion::On(step), true) => step.f_double_value(&[]).map_or(self.steps, |t| t as u64),
            _ => self.steps,
        }
    }

    /// What is wrong with its settings, PyTorch's checks: a learning rate, weight decay or momentum that is
    /// negative or not a number, betas outside `[0, 1)`, a negative epsilon. The Trainer refuses such an
    /// optimizer when `fit` starts, and when a checkpoint brings one back.
    pub fn check(&self) -> std::result::Result<(), String> {
        for (index, (_, lr, weight_decay, rule)) in self.segments().into_iter().enumerate() {
            check_settings(lr, weight_decay, rule).map_err(|problem| {
                if index == 0 {
                    problem
                } else {
                    format!("parameter group {index}: {problem}")
                }
            })?;
        }
        match &self.custom {
            Some(rule) => rule.0.check().map_err(|problem| format!("{}: {problem}", rule.0.name())),
            None => Ok(()),
        }
    }

    /// Clears the gradients of its parameters: sets them to None (PyTorch's `zero_grad(set_to_none=True)`, its
    /// default since 2.0), so that no kernel runs and the next backward writes the gradients afresh.
    pub fn zero_grad(&mut self) -> Result<()> {
        crate::kernels::set_grads_to_none(&self.params)
    }

    /// Clips the gradients so that their joint L2 norm is at most `max_norm`; returns the norm before.
    pub fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).filter(Tensor::defined).collect();
        if grads.is_empty() {
            return Ok(0.0);
        }
        let norms = grads.iter().map(|g| g.f_norm()).collect::<std::result::Result<Vec<_>, _>>()?;
        let total = Tensor::f_stack(&norms, 0)?.f_norm()?.f_double_value(&[])?;
        if total > max_norm {
            let scale = max_norm / (total + 1e-6);
            for mut grad in grads {
                let _ = grad.f_mul_scalar_(scale)?;
            }
        }
        Ok(total)
    }

    /// Clamps every gradient element into `[-clip, clip]`.
    pub fn clip_grad_value(&mut self, clip: f64) -> Result<()> {
        for param in &self.params {
            let mut grad = param.grad();
            if grad.defined() {
                let _ = grad.f_clamp_(-clip, clip)?;
            }
        }
        Ok(())
    }

    /// Clips with the given algorithm (`None` means by norm); a missing or zero value does nothing, a NaN or
    /// negative one is an error (it would turn the gradients, then the weights, to NaN).
    pub fn clip_gradients(&mut self, value: Option<f64>, algorithm: Option<GradClipAlgorithm>) -> Result<()> {
        if let Some(v) = value.filter(|v| v.is_nan() || *v < 0.0) {
            return Err(crate::Error::Config(format!("gradient clipping value {v}: it must be 0 or more")));
        }
        match (value, algorithm.unwrap_or_default()) {
            (None, _) => Ok(()),
            (Some(v), _) if v <= 0.0 => Ok(()),
            (Some(v), GradClipAlgorithm::Norm) => self.clip_grad_norm(v).map(drop),
            (Some(v), GradClipAlgorithm::Value) => self.clip_grad_value(v),
        }
    }

    /// Updates the parameters from their gradients. A learning rate that is NaN, infinite or negative (set by
    /// hand, by a schedule) is an error here rather than NaN weights later.
    pub fn step(&mut self) -> Result<()> {
        self.step_calls += 1;
        match self.scaler.clone() {
            Some(scaler) => {
                let mut scaler = scaler.lock().unwrap_or_else(|p| p.into_inner());
                let params: Vec<Tensor> = self.params.iter().map(Tensor::shallow_clone).collect();
                if self.runs_fused()? {
                    // The fused kernel skips a step with an inf/NaN gradient itself, reading the scaler's verdict
                    // on the device: no host round trip per step (PyTorch's `GradScaler` with `fused=True`).
                    scaler.step_on_device(&params, |found_inf| self.update(Some(found_inf)))
                } else {
                    scaler.step(&params, || self.update(None)).map(drop)
                }
            }
            None => self.update(None),
        }
    }

    /// Whether steps go through libtorch's fused Adam kernel (decided at the first step, on the parameters'
    /// device).
    fn runs_fused(&mut self) -> Result<bool> {
        if !matches!(self.rule, Rule::Adam { .. }) {
            return Ok(false);
        }
        if matches!(self.fusion, Fusion::Undecided) {
            self.fusion = fusion(&self.params)?;
        }
        Ok(matches!(self.fusion, Fusion::On(_)))
    }

    /// Calls of `step` so far, steps a gradient scaler skipped included.
    pub(crate) fn step_calls(&self) -> u64 {
        self.step_calls
    }

    /// One update of the parameters from their gradients; with `found_inf`, none when it is set (decided by the
    /// fused kernel, on the device).
    fn update(&mut self, found_inf: Option<&Tensor>) -> Result<()> {
        // Without groups, no list to build: this runs every step.
        let (single, grouped);
        let segments: &[(std::ops::Range<usize>, f64, f64, Rule)] = if self.groups.is_empty() {
            single = [(0..self.params.len(), self.lr, self.weight_decay, self.rule)];
            &single
        } else {
            grouped = self.segments();
            &grouped
        };
        if let Some((index, (_, lr, ..))) =
            segments.iter().enumerate().find(|(_, (_, lr, ..))| !(lr.is_finite() && *lr >= 0.0))
        {
            let which = if index == 0 { String::new() } else { format!(" (parameter group {index})") };
            return Err(crate::Error::Config(format!(
                "the optimizer's learning rate{which} is {lr}: it must be a finite number, 0 or more"
            )));
        }
        self.steps += 1;
        let _guard = tch::no_grad_guard();
        if self.state.is_empty() {
            let slots = self.slots();
            self.state = self
                .params
                .iter()
                .map(|p| (0..slots).map(|_| p.f_zeros_like()).collect::<std::result::Result<Vec<_>, _>>())
                .collect::<std::result::Result<_, _>>()?;
        }
        self.runs_fused()?;
        if let Fusion::On(step) = &mut self.fusion {
            // The step the kernel's bias corrections use: the host's count until a scaler's skips are decided on
            // the device, the device's own from then on.
            if self.steps_on_device {
                let _ = step.f_add_scalar_(1.0)?;
            } else {
                let _ = step.f_fill_(self.steps as f64)?;
            }
        }
        for (range, lr, wd, rule) in segments.iter().cloned() {
            self.update_group(range, lr, wd, rule, found_inf)?;
        }
        if let (Some(found_inf), Fusion::On(step)) = (found_inf, &mut self.fusion) {
            // A skipped step is not counted (PyTorch's fused path subtracts `found_inf` from its step counts too).
            let _ = step.f_sub_(found_inf)?;
            self.steps_on_device = true;
        }
        Ok(())
    }

    /// One step of the parameters in `range` with these settings.
    fn update_group(
        &mut self,
        range: std::ops::Range<usize>,
        lr: f64,
        wd: f64,
        rule: Rule,
        found_inf: Option<&Tensor>,
    ) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        if let (Rule::Adam { beta1, beta2, eps, decoupled }, Fusion::On(step)) = (rule, &self.fusion) {
            let h = AdamStep { lr, beta1, beta2, weight_decay: wd, eps, decoupled };
            return crate::kernels::fused_adam(&self.params[range.clone()], &self.state[range], step, &h, found_inf);
        }
        let t = self.steps as i32;
        for (param, state) in self.params[range.clone()].iter().zip(self.state[range].iter_mut()) {
            let grad = param.grad();
            if !grad.defined() {
                continue;
            }
            let mut param = param.shallow_clone();
            match rule {
                Rule::Sgd { momentum, dampening, nesterov } => {
                    let mut g = if wd != 0.0 { grad.f_add(&param.f_mul_scalar(wd)?)? } else { grad };
                    // (A group without momentum leaves the buffer another group's momentum made it.)
                    if let (Some(buf), true) = (state.first_mut(), momentum != 0.0) {
                        if t == 1 {
                            buf.f_copy_(&g)?;
                        } else if dampening == 0.0 {
                            let _ = buf.f_mul_scalar_(momentum)?.f_add_(&g)?;
                        } else {
                            let _ = buf.f_mul_scalar_(momentum)?.f_add_(&g.f_mul_scalar(1.0 - dampening)?)?;
                        }
                        g = if nesterov { g.f_add(&buf.f_mul_scalar(momentum)?)? } else { buf.shallow_clone() };
                    }
                    let _ = param.f_sub_(&g.f_mul_scalar(lr)?)?;
                }
                Rule::Adam { beta1, beta2, eps, decoupled } => {
                    let g = if decoupled {
                        if wd != 0.0 {
                            let _ = param.f_mul_scalar_(1.0 - lr * wd)?;
                        }
                        grad
                    } else if wd != 0.0 {
                        grad.f_add(&param.f_mul_scalar(wd)?)?
                    } else {
                        grad
                    };
                    let (m, v) = state.split_at_mut(1);
                    let (m, v) = (&mut m[0], &mut v[0]);
                    // PyTorch's single-tensor Adam, with the step size folded into the denominator so that the
                    // update is one `addcdiv_`: 8 kernels and 2 temporaries per parameter.
                    let bias1 = 1.0 - beta1.powi(t);
                    let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
                    let step_size = lr / bias1;
                    let _ = m.f_lerp_(&g, 1.0 - beta1)?;
                    let _ = v.f_mul_scalar_(beta2)?.f_addcmul_(&g, &g.f_mul_scalar(1.0 - beta2)?)?;
                    // (sqrt(v) / sqrt(bias2) + eps) / -step_size, so that param + m / denom is the Adam update.
                    let mut denom = v.f_sqrt()?;
                    let _ = denom.f_mul_scalar_(-1.0 / (bias2_sqrt * step_size))?.f_add_scalar_(-eps / step_size)?;
                    let _ = param.f_addcdiv_(m, &denom)?;
                }
                Rule::Custom => {
                    let custom = self.custom.as_ref().expect("a custom rule is set with `Rule::Custom`");
                    custom.0.update(&mut param, &grad, state, StepInfo { lr, weight_decay: wd, step: self.steps })?;
                }
            }
        }
        Ok(())
    }
}

/// `Fusion::On` when libtorch's fused Adam kernel takes `params`: dense floating tensors on one CPU or CUDA device.
/// An error naming a setting that cannot work.
fn check_settings(lr: f64, weight_decay: f64, rule: Rule) -> std::result::Result<(), String> {
    let at_least_zero = super::finite_at_least_zero;
    at_least_zero("learning rate", lr)?;
    at_least_zero("weight_decay", weight_decay)?;
    match rule {
        Rule::Sgd { momentum, dampening, .. } => {
            at_least_zero("momentum", momentum)?;
            at_least_zero("dampening", dampening)
        }
        Rule::Adam { beta1, beta2, eps, .. } => {
            for (index, beta) in [beta1, beta2].into_iter().enumerate() {
                if !(0.0..1.0).contains(&beta) {
                    return Err(format!("beta{} = {beta}: it must be within [0, 1)", index + 1));
                }
            }
            at_least_zero("eps", eps)
        }
        // Checked by the rule itself (`UpdateRule::check`).
        Rule::Custom => Ok(()),
    }
}

fn fusion(params: &[Tensor]) -> Result<Fusion> {
    let Some(first) = params.first() else { return Ok(Fusion::Off) };
    let device = first.device();
    let fits = |p: &Tensor| {
        p.device() == device
            && !p.is_sparse()
            && matches!(p.kind(), Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
    };
    if !matches!(device, Device::Cpu | Device::Cuda(_)) || !params.iter().all(fits) {
        return Ok(Fusion::Off);
    }
    Ok(Fusion::On(Tensor::f_zeros([], (Kind::Float, device))?))
}

/// How `gradient_clip_val` is applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum GradClipAlgorithm {
    /// Scale all gradients so that their joint L2 norm is at most the value.
    #[default]
    Norm,
    /// Clamp each gradient element into `[-value, value]`.
    Value,
}

#[cfg(test)]
#[path = "optimizer_tests.rs"]
mod tests;
