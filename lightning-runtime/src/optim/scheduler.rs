//! `LrScheduler`: step decay, cosine annealing and linear warm-up, stepped per epoch or per optimizer step, with
//! their settings checked before a run uses them.

use serde::{Deserialize, Serialize};

/// When a scheduler steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    /// At the end of every training epoch.
    #[default]
    Epoch,
    /// After every optimizer step.
    Step,
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
enum Schedule {
    Step {
        step_size: usize,
        #[serde(with = "crate::json_float")]
        gamma: f64,
    },
    Cosine {
        t_max: usize,
        #[serde(with = "crate::json_float")]
        eta_min: f64,
    },
    LinearWarmup {
        warmup: usize,
        #[serde(with = "crate::json_float")]
        start_factor: f64,
    },
}

/// A learning-rate schedule for one optimizer: step decay, cosine annealing or linear warm-up.
///
/// ```
/// use lightning_runtime::LrScheduler;
/// let mut s = LrScheduler::step_lr(2, 0.5);
/// s.set_base_lr(1.0);
/// s.step();
/// s.step();
/// assert_eq!(s.lr(), 0.5);
/// ```
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrScheduler {
    schedule: Schedule,
    /// When it steps.
    pub(crate) interval: Interval,
    /// It steps every `frequency` intervals.
    pub(crate) frequency: usize,
    /// The optimizer it drives (its index in `Optimizers`).
    pub(crate) optimizer: usize,
    #[serde(with = "crate::json_float")]
    base_lr: f64,
    steps: usize,
}

impl LrScheduler {
    fn new(schedule: Schedule) -> Self {
        LrScheduler { schedule, interval: Interval::Epoch, frequency: 1, optimizer: 0, base_lr: 0.0, steps: 0 }
    }

    /// Multiplies the learning rate by `gamma` every `step_size` steps (PyTorch's `StepLR`). `step_size` must
    /// be at least 1 and `gamma` finite and not negative: the Trainer refuses it when `fit` starts otherwise.
    pub fn step_lr(step_size: usize, gamma: f64) -> Self {
        Self::new(Schedule::Step { step_size, gamma })
    }

    /// Cosine annealing from the base rate down to `eta_min` over `t_max` steps (`CosineAnnealingLR`); `t_max`
    /// at least 1, `eta_min` finite and not negative.
    pub fn cosine(t_max: usize, eta_min: f64) -> Self {
        Self::new(Schedule::Cosine { t_max, eta_min })
    }

    /// Linear warm-up from `start_factor` times the base rate to the base rate over `warmup` steps (at least 1;
    /// `start_factor` within `(0, 1]`, as PyTorch's `LinearLR` requires).
    pub fn linear_warmup(warmup: usize, start_factor: f64) -> Self {
        Self::new(Schedule::LinearWarmup { warmup, start_factor })
    }

    /// What is wrong with its settings: a step count of 0 (which would divide by zero), a factor that is not a
    /// finite number or is out of range. The Trainer refuses such a scheduler when `fit` starts, and when a
    /// checkpoint brings one back.
    pub fn check(&self) -> std::result::Result<(), String> {
        let count = |what: &str, value: usize| {
            if value == 0 {
                Err(format!("{what} = 0: it must be at least 1"))
            } else {
                Ok(())
            }
        };
        let at_least_zero = super::finite_at_least_zero;
        count("frequency", self.frequency)?;
        match self.schedule {
            Schedule::Step { step_size, gamma } => {
                count("step_size", step_size)?;
                at_least_zero("gamma", gamma)
            }
            Schedule::Cosine { t_max, eta_min } => {
                count("T_max", t_max)?;
                at_least_zero("eta_min", eta_min)
            }
            Schedule::LinearWarmup { warmup, start_factor } => {
                count("warmup", warmup)?;
                if start_factor > 0.0 && start_factor <= 1.0 {
                    Ok(())
                } else {
                    Err(format!("start_factor = {start_factor}: it must be within (0, 1]"))
                }
            }
        }
    }

    /// When it steps: every `frequency` (the second) epochs or optimizer steps (the first).
    pub fn stepping(&self) -> (Interval, usize) {
        (self.interval, self.frequency)
    }

    /// The index of the optimizer it drives.
    pub fn optimizer_index(&self) -> usize {
        self.optimizer
    }

    /// Steps it every `interval`.
    pub fn interval(mut self, interval: Interval) -> Self {
        self.interval = interval;
        self
    }

    /// Steps it every `frequency` intervals (at least 1).
    pub fn frequency(mut self, frequency: usize) -> Self {
        self.frequency = frequency;
        self
    }

    /// Makes it drive the optimizer at `index`.
    pub fn for_optimizer(mut self, index: usize) -> Self {
        self.optimizer = index;
        self
    }

    /// Sets the rate the schedule starts from (the runtime sets it to the optimizer's rate).
    pub fn set_base_lr(&mut self, lr: f64) {
        self.base_lr = lr;
    }

    /// Advances the schedule by one step.
    pub fn step(&mut self) {
        self.steps += 1;
    }

    /// The number of steps taken.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The learning rate for the current step. (A schedule [`check`](Self::check) refuses counts as 1 here
    /// rather than dividing by zero.)
    pub fn lr(&self) -> f64 {
        let (base, t) = (self.base_lr, self.steps);
        match self.schedule {
            Schedule::Step { step_size, gamma } => base * gamma.powi((t / step_size.max(1)) as i32),
            Schedule::Cosine { t_max, eta_min } => {
                let t_max = t_max.max(1);
                let t = t.min(t_max) as f64;
                eta_min + (base - eta_min) * (1.0 + (std::f64::consts::PI * t / t_max as f64).cos()) / 2.0
            }
            Schedule::LinearWarmup { warmup, start_factor } => {
                let warmup = warmup.max(1);
                let progress = t.min(warmup) as f64 / warmup as f64;
                base * (start_factor + (1.0 - start_factor) * progress)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[f64], b: &[f64]) {
        assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6), "{a:?} != {b:?}");
    }

    #[test]
    fn schedulers_follow_their_curves() {
        let mut cosine = LrScheduler::cosine(4, 0.0);
        cosine.set_base_lr(1.0);
        let mut rates = vec![cosine.lr()];
        for _ in 0..4 {
            cosine.step();
            rates.push(cosine.lr());
        }
        close(&rates, &[1.0, 0.853_553_390_593_273_8, 0.5, 0.146_446_609_406_726_24, 0.0]);
        let mut warmup = LrScheduler::linear_warmup(2, 0.5);
        warmup.set_base_lr(2.0);
        let mut rates = vec![warmup.lr()];
        for _ in 0..3 {
            warmup.step();
            rates.push(warmup.lr());
        }
        close(&rates, &[1.0, 1.5, 2.0, 2.0]);
    }
}
