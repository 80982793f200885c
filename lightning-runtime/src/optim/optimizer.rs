//! `Optimizer`: SGD, Adam and AdamW over a list of parameters, with the state the runtime owns (so that
//! checkpoints can save it), libtorch's fused Adam kernel, gradient clipping and PyTorch's checks of the settings.

use serde::{Deserialize, Serialize};
use tch::{nn::VarStore, Device, Kind, Tensor};

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
}

/// An optimizer over a list of parameters: SGD (momentum, Nesterov, weight decay), Adam or AdamW.
///
/// Adam and AdamW run libtorch's fused kernel (PyTorch's `fused=True`: one call updates every parameter) when
/// the parameters are dense floating tensors on one CPU or CUDA device, and PyTorch's single-tensor update
/// otherwise or after [`fused(false)`](Self::fused). The two compute the same update up to float rounding.
/// `zero_grad` sets gradients to None, as PyTorch's does by default since 2.0.
///
/// ```
/// use lightning_runtime::Optimizer;
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
        }
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

    /// The number of steps taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// What is wrong with its settings, PyTorch's checks: a learning rate, weight decay or momentum that is
    /// negative or not a number, betas outside `[0, 1)`, a negative epsilon. The Trainer refuses such an
    /// optimizer when `fit` starts, and when a checkpoint brings one back.
    pub fn check(&self) -> std::result::Result<(), String> {
        let at_least_zero = super::finite_at_least_zero;
        at_least_zero("learning rate", self.lr)?;
        at_least_zero("weight_decay", self.weight_decay)?;
        match self.rule {
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
                scaler.step(&params, || self.update()).map(drop)
            }
            None => self.update(),
        }
    }

    /// Calls of `step` so far, steps a gradient scaler skipped included.
    pub(crate) fn step_calls(&self) -> u64 {
        self.step_calls
    }

    /// One update of the parameters from their gradients.
    fn update(&mut self) -> Result<()> {
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return Err(crate::Error::Config(format!(
                "the optimizer's learning rate is {}: it must be a finite number, 0 or more",
                self.lr
            )));
        }
        self.steps += 1;
        let _guard = tch::no_grad_guard();
        if self.state.is_empty() {
            let slots = match self.rule {
                Rule::Sgd { momentum: 0.0, .. } => 0,
                Rule::Sgd { .. } => 1,
                Rule::Adam { .. } => 2,
            };
            self.state = self
                .params
                .iter()
                .map(|p| (0..slots).map(|_| p.f_zeros_like()).collect::<std::result::Result<Vec<_>, _>>())
                .collect::<std::result::Result<_, _>>()?;
        }
        if let Rule::Adam { beta1, beta2, eps, decoupled } = self.rule {
            if matches!(self.fusion, Fusion::Undecided) {
                self.fusion = fusion(&self.params)?;
            }
            if let Fusion::On(step) = &self.fusion {
                let h = AdamStep {
                    t: self.steps,
                    lr: self.lr,
                    beta1,
                    beta2,
                    weight_decay: self.weight_decay,
                    eps,
                    decoupled,
                };
                return crate::kernels::fused_adam(&self.params, &self.state, step, &h);
            }
        }
        let (lr, wd, t) = (self.lr, self.weight_decay, self.steps as i32);
        for (param, state) in self.params.iter().zip(self.state.iter_mut()) {
            let grad = param.grad();
            if !grad.defined() {
                continue;
            }
            let mut param = param.shallow_clone();
            match self.rule {
                Rule::Sgd { momentum, dampening, nesterov } => {
                    let mut g = if wd != 0.0 { grad.f_add(&param.f_mul_scalar(wd)?)? } else { grad };
                    if let Some(buf) = state.first_mut() {
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
            }
        }
        Ok(())
    }
}

/// `Fusion::On` when libtorch's fused Adam kernel takes `params`: dense floating tensors on one CPU or CUDA device.
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
mod tests {
    use super::*;
    use tch::Kind;

    /// A parameter `p` (starting at `start`) and `f(p) = sum(p²) / 2`, whose gradient is `p`.
    fn param(start: &[f32]) -> Tensor {
        Tensor::from_slice(start).set_requires_grad(true)
    }

    fn step_on_half_square(opt: &mut Optimizer, p: &Tensor) {
        opt.zero_grad().unwrap();
        (p * p / 2.0).sum(Kind::Float).backward();
        opt.step().unwrap();
    }

    fn values(p: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(p.to_kind(Kind::Double)).unwrap()
    }

    fn close(a: &[f64], b: &[f64]) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} != {b:?}");
    }

    #[test]
    fn sgd_with_momentum_matches_pytorch() {
        let p = param(&[1.0]);
        let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1).momentum(0.9);
        step_on_half_square(&mut opt, &p); // buf = 1, p = 0.9
        close(&values(&p), &[0.9]);
        step_on_half_square(&mut opt, &p); // buf = 0.9 + 0.9 = 1.8, p = 0.72
        close(&values(&p), &[0.72]);
        let p = param(&[1.0]);
        let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1).momentum(0.9).nesterov(true).weight_decay(1.0);
        step_on_half_square(&mut opt, &p); // g = 2, buf = 2, g' = 2 + 1.8 = 3.8, p = 0.62
        close(&values(&p), &[0.62]);
    }

    #[test]
    fn adam_and_adamw_first_steps_match_pytorch() {
        let p = param(&[2.0, -3.0]);
        let mut opt = Optimizer::adam(vec![p.shallow_clone()], 0.1);
        step_on_half_square(&mut opt, &p); // the first step moves each element by lr against its gradient's sign
        close(&values(&p), &[1.9, -2.9]);
        let p = param(&[2.0]);
        let mut opt = Optimizer::adamw(vec![p.shallow_clone()], 0.1).weight_decay(0.5);
        step_on_half_square(&mut opt, &p); // p * (1 - 0.05) = 1.9, then - 0.1
        close(&values(&p), &[1.8]);
        assert_eq!(opt.steps(), 1);
    }

    /// Adam on `sum(p²) / 2` (gradient `p`), element by element in f64, as PyTorch's documentation states it.
    fn adam_reference(start: &[f64], steps: i32, lr: f64, wd: f64, decoupled: bool) -> Vec<f64> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let mut out = Vec::new();
        for &x in start {
            let (mut p, mut m, mut v) = (x, 0.0, 0.0);
            for t in 1..=steps {
                let mut g = p;
                if decoupled {
                    p *= 1.0 - lr * wd;
                } else {
                    g += wd * p;
                }
                m = b1 * m + (1.0 - b1) * g;
                v = b2 * v + (1.0 - b2) * g * g;
                let (m_hat, v_hat) = (m / (1.0 - b1.powi(t)), v / (1.0 - b2.powi(t)));
                p -= lr * m_hat / (v_hat.sqrt() + eps);
            }
            out.push(p);
        }
        out
    }

    #[test]
    fn fused_and_single_tensor_adam_follow_the_reference_over_many_steps() {
        let start = [2.0, -3.0, 0.5, 1e-3];
        for (decoupled, wd) in [(false, 0.0), (false, 0.1), (true, 0.1)] {
            let expected = adam_reference(&start, 30, 0.05, wd, decoupled);
            for fused in [true, false] {
                let p = param(&start.map(|x| x as f32));
                let unused = param(&[7.0]);
                let params = vec![p.shallow_clone(), unused.shallow_clone()];
                let opt = if decoupled { Optimizer::adamw(params, 0.05) } else { Optimizer::adam(params, 0.05) };
                let mut opt = opt.weight_decay(wd).fused(fused);
                for _ in 0..30 {
                    step_on_half_square(&mut opt, &p);
                }
                let got = values(&p);
                let ok = got.iter().zip(&expected).all(|(a, b)| (a - b).abs() <= 1e-5 * (1.0 + b.abs()));
                assert!(ok, "fused {fused}, decoupled {decoupled}, wd {wd}: {got:?} != {expected:?}");
                // A parameter without a gradient is left alone, as PyTorch's optimizers do.
                assert_eq!(values(&unused), [7.0]);
            }
        }
    }

    #[test]
    fn zero_grad_sets_gradients_to_none() {
        let p = param(&[1.0]);
        let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1);
        (&p * 2.0).sum(Kind::Float).backward();
        assert!(p.grad().defined());
        opt.zero_grad().unwrap();
        assert!(!p.grad().defined());
        // The next backward writes the gradient afresh rather than adding to an old one.
        (&p * 3.0).sum(Kind::Float).backward();
        close(&values(&p.grad()), &[3.0]);
    }

    #[test]
    fn clipping_by_norm_and_by_value() {
        let p = param(&[3.0, 4.0]);
        let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 1.0);
        (&p * &p / 2.0).sum(Kind::Float).backward();
        let norm = opt.clip_grad_norm(1.0).unwrap();
        assert!((norm - 5.0).abs() < 1e-6);
        close(&values(&p.grad()), &[0.6, 0.8]);
        opt.clip_gradients(Some(0.7), Some(GradClipAlgorithm::Value)).unwrap();
        close(&values(&p.grad()), &[0.6, 0.7]);
    }

    #[test]
    fn a_learning_rate_or_clip_value_that_cannot_work_is_an_error_not_nan_weights() {
        let p = param(&[1.0]);
        let mut opt = Optimizer::sgd(vec![p.shallow_clone()], 0.1);
        (&p * 2.0).sum(Kind::Float).backward();
        let message = opt.clip_gradients(Some(f64::NAN), Some(GradClipAlgorithm::Value)).unwrap_err().to_string();
        assert!(message.contains("gradient clipping value NaN"), "{message}");
        opt.set_lr(f64::NAN);
        assert!(opt.step().unwrap_err().to_string().contains("learning rate is NaN"));
        assert_eq!((values(&p), opt.steps()), (vec![1.0], 0), "nothing moved");
        assert!(opt.check().unwrap_err().contains("learning rate = NaN"));
    }
}
