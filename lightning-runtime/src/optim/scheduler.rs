//! `LrScheduler`: a schedule (`schedule.rs`, `plateau.rs`) with when it steps and which optimizer it drives, its
//! settings checked before a run uses them.

use serde::{Deserialize, Serialize};

use super::plateau::Plateau;
use super::schedule::{LrLambda, Schedule};

/// When a scheduler steps.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interval {
    /// At the end of every training epoch.
    #[default]
    Epoch,
    /// After every optimizer step.
    Step,
}

/// A learning-rate schedule for one optimizer: step decay, cosine annealing, linear warm-up, exponential decay,
/// one-cycle, a function of the step, a sequence of these, or a cut when a metric stops improving.
///
/// ```
/// use lightning::LrScheduler;
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

    /// PyTorch's `ExponentialLR`: the base rate times `gamma` to the power of the steps taken.
    pub fn exponential(gamma: f64) -> Self {
        Self::new(Schedule::Exponential { gamma })
    }

    /// PyTorch's `OneCycleLR` with its defaults (cosine annealing, 30% of the steps rising from `max_lr / 25`,
    /// then falling to `max_lr / 25 / 1e4`), usually stepped every optimizer step: `.interval(Interval::Step)`.
    /// It sets the rate itself; the optimizer's own is not used.
    pub fn one_cycle(max_lr: f64, total_steps: usize) -> Self {
        Self::one_cycle_with(max_lr, total_steps, 0.3, 25.0, 1e4)
    }

    /// [`LrScheduler::one_cycle`] with PyTorch's `pct_start`, `div_factor` and `final_div_factor`.
    pub fn one_cycle_with(
        max_lr: f64,
        total_steps: usize,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
    ) -> Self {
        Self::new(Schedule::OneCycle { max_lr, total_steps, pct_start, div_factor, final_div_factor })
    }

    /// PyTorch's `LambdaLR`: the base rate times `factor(steps taken)`. The function is not saved in
    /// checkpoints: a resumed run takes it from `configure_optimizers` again.
    pub fn lambda(factor: fn(usize) -> f64) -> Self {
        Self::new(Schedule::Lambda { factor: LrLambda(Some(factor)) })
    }

    /// PyTorch's `SequentialLR`: `schedulers[0]` until step `milestones[0]`, then `schedulers[1]` counting its
    /// steps from there, and so on (warm-up, then cosine). The parts' intervals, frequencies and optimizers are
    /// this one's.
    ///
    /// ```
    /// use lightning::LrScheduler;
    /// let mut s = LrScheduler::sequential(vec![LrScheduler::linear_warmup(2, 0.5), LrScheduler::cosine(4, 0.0)], vec![2]);
    /// s.set_base_lr(1.0);
    /// let rates: Vec<f64> = (0..4).map(|_| { let lr = s.lr(); s.step(); lr }).collect();
    /// assert_eq!(rates[..3], [0.5, 0.75, 1.0]);
    /// ```
    pub fn sequential(schedulers: Vec<LrScheduler>, milestones: Vec<usize>) -> Self {
        let parts = schedulers.into_iter().map(|s| s.schedule).collect();
        Self::new(Schedule::Sequential { parts, milestones })
    }

    /// PyTorch's `ReduceLROnPlateau`, with the metric it monitors (Lightning's `"monitor"` key): the Trainer
    /// steps it with the metric's value, after validation for the default epoch interval, and a metric that was
    /// never logged is an error listing those that were.
    pub fn reduce_on_plateau(plateau: Plateau) -> Self {
        Self::new(Schedule::Plateau(plateau))
    }

    /// What is wrong with its settings: a step count of 0 (which would divide by zero), a factor that is not a
    /// finite number or is out of range. The Trainer refuses such a scheduler when `fit` starts, and when a
    /// checkpoint brings one back.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.frequency == 0 {
            return Err("frequency = 0: it must be at least 1".into());
        }
        self.schedule.check()
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
        self.schedule.lr(self.base_lr, self.steps)
    }

    /// The metric a `ReduceLROnPlateau` schedule watches.
    pub fn monitor(&self) -> Option<&str> {
        match &self.schedule {
            Schedule::Plateau(plateau) => Some(plateau.monitor()),
            _ => None,
        }
    }

    /// One step with the monitored metric's value, which a plateau schedule needs (the others ignore it).
    ///
    /// # Errors
    /// A plateau schedule given no value.
    pub fn step_with(&mut self, metric: Option<f64>) -> crate::Result<()> {
        if let Schedule::Plateau(plateau) = &mut self.schedule {
            let value = metric.ok_or_else(|| {
                crate::Error::Config(format!(
                    "ReduceLROnPlateau stepped without a value of its monitored metric `{}`",
                    plateau.monitor()
                ))
            })?;
            plateau.observe(value, self.base_lr);
        }
        self.steps += 1;
        Ok(())
    }

    /// Takes back what a checkpoint cannot hold (a lambda schedule's function) from the scheduler
    /// `configure_optimizers` returned.
    pub(crate) fn take_functions_from(&mut self, configured: &LrScheduler) {
        self.schedule.take_functions_from(&configured.schedule);
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

    /// The rates of `scheduler` from base 1.0 over `steps` steps (with `metrics`, for a plateau).
    fn rates(mut scheduler: LrScheduler, steps: usize, metrics: &[f64]) -> Vec<f64> {
        scheduler.set_base_lr(1.0);
        let mut rates = vec![scheduler.lr()];
        for i in 0..steps {
            scheduler.step_with(metrics.get(i).copied()).unwrap();
            rates.push(scheduler.lr());
        }
        rates
    }

    // The expected rates are PyTorch 2.11's, printed by its schedulers on an SGD optimizer with lr 1.0.
    #[test]
    fn the_other_schedules_match_pytorchs_rates() {
        close(&rates(LrScheduler::exponential(0.9), 4, &[]), &[1.0, 0.9, 0.81, 0.729, 0.6561]);
        let one_cycle = [
            0.04,
            0.52,
            1.0,
            0.950_484_632_013_473_7,
            0.811_745_653_949_763_1,
            0.611_262_021_936_289_3,
            0.388_741_978_063_710_75,
            0.188_258_346_050_236_97,
            0.049_519_367_986_526_286,
            4e-6,
        ];
        close(&rates(LrScheduler::one_cycle(1.0, 10), 9, &[]), &one_cycle);
        let warmup_then_cosine =
            LrScheduler::sequential(vec![LrScheduler::linear_warmup(3, 0.1), LrScheduler::cosine(5, 0.0)], vec![3]);
        let sequence = [
            0.1,
            0.4,
            0.7,
            1.0,
            0.904_508_497_187_473_7,
            0.654_508_497_187_473_7,
            0.345_491_502_812_526_3,
            0.095_491_502_812_526_32,
            0.0,
        ];
        close(&rates(warmup_then_cosine, 8, &[]), &sequence);
        close(&rates(LrScheduler::lambda(|t| 1.0 / (t as f64 + 1.0)), 3, &[]), &[1.0, 0.5, 1.0 / 3.0, 0.25]);
        let metrics = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85];
        let plateau = LrScheduler::reduce_on_plateau(Plateau::new("val_loss").factor(0.5).patience(1).cooldown(1));
        close(&rates(plateau, metrics.len(), &metrics), &[1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25]);
    }

    #[test]
    fn settings_that_cannot_work_are_named() {
        let problem = |s: LrScheduler| s.check().unwrap_err();
        assert!(problem(LrScheduler::one_cycle(1.0, 0)).contains("total_steps = 0"));
        assert!(problem(LrScheduler::sequential(vec![LrScheduler::cosine(2, 0.0)], vec![2])).contains("milestones"));
        assert!(problem(LrScheduler::reduce_on_plateau(Plateau::new("x").factor(1.5))).contains("factor = 1.5"));
        assert!(problem(LrScheduler::exponential(f64::NAN)).contains("gamma = NaN"));
        let mut plateau = LrScheduler::reduce_on_plateau(Plateau::new("val_loss"));
        assert!(plateau.step_with(None).unwrap_err().to_string().contains("val_loss"));
    }
}
