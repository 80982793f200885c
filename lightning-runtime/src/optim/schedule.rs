//! The learning-rate curves an [`LrScheduler`](super::LrScheduler) follows, each a closed form of the base rate
//! and the steps taken (PyTorch's formulas), except `ReduceLROnPlateau`, which follows the monitored metric
//! (`plateau.rs`).

use serde::{Deserialize, Serialize};

use super::plateau::Plateau;

/// A schedule's function of the step (`LambdaLR`): not saved in checkpoints, so a resumed run takes it from
/// `configure_optimizers` again.
#[derive(Clone, Copy, Default)]
pub(super) struct LrLambda(pub Option<fn(usize) -> f64>);

impl PartialEq for LrLambda {
    fn eq(&self, other: &Self) -> bool {
        // Functions have no meaningful equality: two lambdas schedules are alike when both have one.
        self.0.is_some() == other.0.is_some()
    }
}

impl std::fmt::Debug for LrLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "fn(step) -> factor" } else { "(not restored yet)" })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) enum Schedule {
    /// `StepLR`: times `gamma` every `step_size` steps.
    Step {
        step_size: usize,
        #[serde(with = "crate::json_float")]
        gamma: f64,
    },
    /// `CosineAnnealingLR`: from the base rate down to `eta_min` over `t_max` steps.
    Cosine {
        t_max: usize,
        #[serde(with = "crate::json_float")]
        eta_min: f64,
    },
    /// `LinearLR`: from `start_factor` times the base rate up to it over `warmup` steps.
    LinearWarmup {
        warmup: usize,
        #[serde(with = "crate::json_float")]
        start_factor: f64,
    },
    /// `ExponentialLR`: times `gamma` every step.
    Exponential {
        #[serde(with = "crate::json_float")]
        gamma: f64,
    },
    /// `OneCycleLR` (cosine annealing, two phases): up from `max_lr / div_factor` to `max_lr` over the first
    /// `pct_start` of `total_steps`, then down to `max_lr / div_factor / final_div_factor`.
    OneCycle {
        #[serde(with = "crate::json_float")]
        max_lr: f64,
        total_steps: usize,
        #[serde(with = "crate::json_float")]
        pct_start: f64,
        #[serde(with = "crate::json_float")]
        div_factor: f64,
        #[serde(with = "crate::json_float")]
        final_div_factor: f64,
    },
    /// `LambdaLR`: the base rate times a function of the step.
    Lambda {
        #[serde(skip)]
        factor: LrLambda,
    },
    /// `SequentialLR`: `parts[i]` from `milestones[i - 1]` on, each counting its steps from its own start.
    Sequential { parts: Vec<Schedule>, milestones: Vec<usize> },
    /// `ReduceLROnPlateau`.
    Plateau(Plateau),
}

fn count(what: &str, value: usize) -> Result<(), String> {
    if value == 0 {
        Err(format!("{what} = 0: it must be at least 1"))
    } else {
        Ok(())
    }
}

fn within(what: &str, value: f64, low: f64, high: f64) -> Result<(), String> {
    if value > low && value <= high {
        Ok(())
    } else {
        Err(format!("{what} = {value}: it must be within ({low}, {high}]"))
    }
}

fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
}

impl Schedule {
    /// The settings that cannot work, named.
    pub fn check(&self) -> Result<(), String> {
        let at_least_zero = super::finite_at_least_zero;
        match self {
            Schedule::Step { step_size, gamma } => {
                count("step_size", *step_size)?;
                at_least_zero("gamma", *gamma)
            }
            Schedule::Cosine { t_max, eta_min } => {
                count("T_max", *t_max)?;
                at_least_zero("eta_min", *eta_min)
            }
            Schedule::LinearWarmup { warmup, start_factor } => {
                count("warmup", *warmup)?;
                within("start_factor", *start_factor, 0.0, 1.0)
            }
            Schedule::Exponential { gamma } => at_least_zero("gamma", *gamma),
            Schedule::OneCycle { max_lr, total_steps, pct_start, div_factor, final_div_factor } => {
                count("total_steps", *total_steps)?;
                at_least_zero("max_lr", *max_lr)?;
                within("pct_start", *pct_start, 0.0, 1.0)?;
                within("div_factor", *div_factor, 0.0, f64::MAX)?;
                within("final_div_factor", *final_div_factor, 0.0, f64::MAX)
            }
            Schedule::Lambda { factor } => match factor.0 {
                Some(_) => Ok(()),
                None => Err("a lambda schedule without its function (a checkpoint's, not restored into a lambda schedule from `configure_optimizers`)".into()),
            },
            Schedule::Sequential { parts, milestones } => {
                if parts.is_empty() || milestones.len() + 1 != parts.len() {
                    return Err(format!(
                        "a sequence of {} schedules needs {} milestones, not {}",
                        parts.len(),
                        parts.len().saturating_sub(1),
                        milestones.len()
                    ));
                }
                if milestones.windows(2).any(|w| w[0] >= w[1]) || milestones.first() == Some(&0) {
                    return Err(format!("milestones {milestones:?}: they must rise from at least 1"));
                }
                for (i, part) in parts.iter().enumerate() {
                    if matches!(part, Schedule::Plateau(_) | Schedule::Sequential { .. }) {
                        return Err(format!("schedule {i} of the sequence: a plateau or a sequence cannot be part of one"));
                    }
                    part.check().map_err(|e| format!("schedule {i} of the sequence: {e}"))?;
                }
                Ok(())
            }
            Schedule::Plateau(plateau) => plateau.check(),
        }
    }

    /// The rate after `t` steps from `base`.
    pub fn lr(&self, base: f64, t: usize) -> f64 {
        match self {
            Schedule::Step { step_size, gamma } => base * gamma.powi((t / (*step_size).max(1)) as i32),
            Schedule::Cosine { t_max, eta_min } => {
                let t_max = (*t_max).max(1);
                let t = t.min(t_max) as f64;
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t / t_max as f64).cos()) / 2.0
            }
            Schedule::LinearWarmup { warmup, start_factor } => {
                let warmup = (*warmup).max(1);
                let progress = t.min(warmup) as f64 / warmup as f64;
                base * (start_factor + (1.0 - start_factor) * progress)
            }
            Schedule::Exponential { gamma } => base * gamma.powi(t.min(i32::MAX as usize) as i32),
            Schedule::OneCycle { max_lr, total_steps, pct_start, div_factor, final_div_factor } => {
                let initial = max_lr / div_factor;
                let min = initial / final_div_factor;
                let up_end = pct_start * *total_steps as f64 - 1.0;
                let down_end = *total_steps as f64 - 1.0;
                // Past the last step PyTorch raises; the rate stays at its end here.
                let t = (t as f64).min(down_end);
                if t <= up_end {
                    cos_anneal(initial, *max_lr, if up_end > 0.0 { t / up_end } else { 1.0 })
                } else {
                    cos_anneal(*max_lr, min, (t - up_end) / (down_end - up_end))
                }
            }
            Schedule::Lambda { factor } => factor.0.map_or(base, |f| base * f(t)),
            Schedule::Sequential { parts, milestones } => {
                let index = milestones.iter().take_while(|&&m| m <= t).count();
                let start = if index == 0 { 0 } else { milestones[index - 1] };
                // (Settings are checked when `fit` starts; unchecked ones must not panic here.)
                parts.get(index).or(parts.last()).map_or(base, |part| part.lr(base, t - start))
            }
            Schedule::Plateau(plateau) => plateau.lr(base),
        }
    }

    /// Puts back the functions a checkpoint cannot hold, from the schedule `configure_optimizers` made.
    pub fn take_functions_from(&mut self, configured: &Schedule) {
        match (self, configured) {
            (Schedule::Lambda { factor }, Schedule::Lambda { factor: theirs }) => *factor = *theirs,
            (Schedule::Sequential { parts, .. }, Schedule::Sequential { parts: theirs, .. }) => {
                for (part, their) in parts.iter_mut().zip(theirs) {
                    part.take_functions_from(their);
                }
            }
            _ => {}
        }
    }
}
