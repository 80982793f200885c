//! An optimizer's part of a checkpoint: its settings and counters as JSON, its state tensors by name.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::custom::CustomState;
use super::groups::GroupSettings;
use super::optimizer::Rule;
use super::Optimizer;

/// What a checkpoint keeps of an optimizer besides its state tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerState {
    rule: Rule,
    #[serde(with = "crate::json_float")]
    lr: f64,
    #[serde(with = "crate::json_float")]
    weight_decay: f64,
    steps: u64,
    /// The shape of each parameter, to check that the checkpoint fits the optimizer it is loaded into.
    shapes: Vec<Vec<i64>>,
    /// State tensors per parameter (0 before the first step).
    slots: usize,
    /// The parameter groups after the first (none in checkpoints that predate them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<GroupSettings>,
    /// A custom rule's name and settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    custom: Option<CustomState>,
}

impl Optimizer {
    /// The optimizer's settings and counters, and its state tensors named `optimizer.<index>.<param>.<slot>`.
    pub(crate) fn export(&self, index: usize) -> (OptimizerState, Vec<(String, Tensor)>) {
        let state = OptimizerState {
            rule: self.rule,
            lr: self.lr,
            weight_decay: self.weight_decay,
            steps: self.steps(),
            shapes: self.params.iter().map(Tensor::size).collect(),
            slots: self.state.first().map_or(0, Vec::len),
            groups: self.groups.clone(),
            custom: self
                .custom
                .as_ref()
                .map(|rule| CustomState { name: rule.0.name().to_string(), settings: rule.0.settings() }),
        };
        let tensors = self
            .state
            .iter()
            .enumerate()
            .flat_map(|(p, slots)| {
                slots.iter().enumerate().map(move |(s, t)| (format!("optimizer.{index}.{p}.{s}"), t.shallow_clone()))
            })
            .collect();
        (state, tensors)
    }

    /// Restores what `export` saved; says what does not fit.
    pub(crate) fn import(
        &mut self,
        index: usize,
        state: &OptimizerState,
        tensor: impl Fn(&str) -> Option<Tensor>,
    ) -> std::result::Result<(), String> {
        if std::mem::discriminant(&state.rule) != std::mem::discriminant(&self.rule) {
            return Err(format!("optimizer {index} is {:?} in the checkpoint but {:?} here", state.rule, self.rule));
        }
        let custom_name =
            |custom: Option<&str>| custom.map_or("a custom rule with no name".to_string(), |n| format!("`{n}`"));
        let here = self.custom.as_ref().map(|rule| rule.0.name().to_string());
        let saved = state.custom.as_ref().map(|custom| custom.name.clone());
        if state.rule == Rule::Custom && here != saved {
            return Err(format!(
                "optimizer {index} is {} in the checkpoint but {} here",
                custom_name(saved.as_deref()),
                custom_name(here.as_deref())
            ));
        }
        let shapes: Vec<Vec<i64>> = self.params.iter().map(Tensor::size).collect();
        if shapes != state.shapes {
            return Err(format!(
                "optimizer {index} updates parameters of shapes {shapes:?} here, but {:?} in the checkpoint",
                state.shapes
            ));
        }
        let mut restored = Vec::with_capacity(self.params.len());
        for (p, param) in self.params.iter().enumerate() {
            let mut slots = Vec::with_capacity(state.slots);
            for s in 0..state.slots {
                let name = format!("optimizer.{index}.{p}.{s}");
                let saved = tensor(&name).ok_or_else(|| format!("the checkpoint has no `{name}`"))?;
                let moved = saved.f_to_device(param.device()).map_err(|e| e.to_string())?;
                slots.push(moved);
            }
            restored.push(slots);
        }
        let layout = |groups: &[GroupSettings]| groups.iter().map(|g| (g.start, g.len)).collect::<Vec<_>>();
        if layout(&self.groups) != layout(&state.groups) {
            return Err(format!(
                "optimizer {index} has parameter groups at (start, length) {:?} here, but {:?} in the checkpoint",
                layout(&self.groups),
                layout(&state.groups)
            ));
        }
        let kept = (self.rule, self.lr, self.weight_decay, std::mem::take(&mut self.groups));
        (self.rule, self.lr, self.weight_decay, self.groups) =
            (state.rule, state.lr, state.weight_decay, state.groups.clone());
        // A custom rule takes its saved settings (and gets its own back if the checkpoint is refused).
        let kept_settings = self.custom.as_ref().map(|rule| rule.0.settings());
        let loaded = match (&mut self.custom, &state.custom) {
            (Some(rule), Some(saved)) => rule.0.load_settings(saved.settings.clone()),
            _ => Ok(()),
        };
        let needed = self.slots();
        let checked = loaded.and_then(|()| self.check());
        let problem = match checked {
            Err(problem) => Some(format!("optimizer {index} has an invalid setting: {problem}")),
            Ok(()) if state.slots != 0 && state.slots != needed => Some(format!(
                "optimizer {index} keeps {} state tensor(s) per parameter in the checkpoint, but its settings need {needed}",
                state.slots
            )),
            Ok(()) => None,
        };
        if let Some(problem) = problem {
            (self.rule, self.lr, self.weight_decay, self.groups) = kept;
            if let (Some(rule), Some(settings)) = (&mut self.custom, kept_settings) {
                let _ = rule.0.load_settings(settings);
            }
            return Err(problem);
        }
        self.state = if state.slots == 0 { Vec::new() } else { restored };
        (self.steps, self.steps_on_device) = (state.steps, false);
        Ok(())
    }
}
