//! Parameter groups: parts of an optimizer's parameters with settings of their own (PyTorch's
//! `param_groups`), e.g. no weight decay on biases and norms. The group's parameters are appended to the
//! optimizer's, so that clipping, `zero_grad`, state and checkpoints see one list; each step updates the groups
//! one after another with their own settings.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::optimizer::Rule;
use super::Params;

/// Parameters with settings of their own, for [`Optimizer::param_group`](crate::Optimizer::param_group);
/// what a group does not set, it takes from the optimizer.
///
/// ```
/// use lightning::{tch::{nn, Device}, Optimizer, ParamGroup};
/// let vs = nn::VarStore::new(Device::Cpu);
/// let layer = nn::linear(vs.root() / "layer", 4, 4, Default::default());
/// // The standard split: weight decay on the weights, none on the biases.
/// let optimizer = Optimizer::adamw(vec![layer.ws.shallow_clone()], 1e-3)
///     .weight_decay(0.01)
///     .param_group(ParamGroup::new(layer.bs.iter().map(|b| b.shallow_clone()).collect::<Vec<_>>()).weight_decay(0.0));
/// ```
pub struct ParamGroup {
    pub(super) params: Vec<Tensor>,
    pub(super) settings: GroupSettings,
}

/// What a group sets, and where its parameters are in the optimizer's list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupSettings {
    /// Its first parameter's index among the optimizer's, and how many.
    pub start: usize,
    pub len: usize,
    /// Its rate as a multiple of the optimizer's (which schedulers set), from the rate it was given.
    #[serde(default, with = "crate::json_float::option")]
    pub lr_scale: Option<f64>,
    /// Its own learning rate as given, turned into `lr_scale` when the group joins the optimizer.
    #[serde(skip)]
    pub lr: Option<f64>,
    #[serde(default, with = "crate::json_float::option")]
    pub weight_decay: Option<f64>,
    #[serde(default, with = "crate::json_float::option")]
    pub momentum: Option<f64>,
    #[serde(default)]
    pub betas: Option<(crate::json_float::JsonF64, crate::json_float::JsonF64)>,
}

impl ParamGroup {
    /// A group of `params` that takes every setting from the optimizer until told otherwise.
    pub fn new(params: impl Params) -> Self {
        ParamGroup { params: params.params(), settings: GroupSettings::default() }
    }

    /// Its learning rate when the run starts. Schedulers then scale it as they scale the optimizer's: it stays
    /// the same multiple of it (PyTorch's per-group schedules give the same rates for multiplicative schedules;
    /// a cosine or one-cycle with a floor differs by the floor's share).
    pub fn lr(mut self, lr: f64) -> Self {
        self.settings.lr = Some(lr);
        self
    }

    /// Its weight decay (0 for biases and norms, say).
    pub fn weight_decay(mut self, value: f64) -> Self {
        self.settings.weight_decay = Some(value);
        self
    }

    /// Its SGD momentum.
    pub fn momentum(mut self, value: f64) -> Self {
        self.settings.momentum = Some(value);
        self
    }

    /// Its Adam betas.
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.settings.betas = Some((beta1.into(), beta2.into()));
        self
    }
}

impl GroupSettings {
    /// The rule with this group's momentum or betas.
    pub fn rule(&self, base: Rule) -> Rule {
        match base {
            Rule::Sgd { momentum, dampening, nesterov } => {
                Rule::Sgd { momentum: self.momentum.unwrap_or(momentum), dampening, nesterov }
            }
            Rule::Adam { beta1, beta2, eps, decoupled } => {
                let (beta1, beta2) = self.betas.map_or((beta1, beta2), |(b1, b2)| (b1.0, b2.0));
                Rule::Adam { beta1, beta2, eps, decoupled }
            }
            Rule::Custom => Rule::Custom,
        }
    }
}
