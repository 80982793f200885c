//! How a value logged at every step becomes the epoch's value (Lightning's `reduce_fx`): the running state of
//! one metric's epoch, kept as tensors on their device until the epoch ends.

use tch::Tensor;

use crate::context::Logged;

/// How [`Ctx::log`](crate::Ctx::log) reduces a value over the epoch (Lightning's `reduce_fx`).
///
/// ```
/// use lightning::ReduceFx;
/// # let mut ctx = lightning::Ctx::new(tch::Device::Cpu);
/// # let errors = tch::Tensor::from(3.0);
/// ctx.log("errors", &errors).on_epoch(true).reduce_fx(ReduceFx::Sum);
/// // Any function of the epoch's values, e.g. their median:
/// ctx.log("median_loss", 0.5).on_epoch(true).reduce_fx(ReduceFx::Custom(|values| {
///     let mut v = values.to_vec();
///     v.sort_by(f64::total_cmp);
///     v[v.len() / 2]
/// }));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub enum ReduceFx {
    /// The mean, weighted by each step's batch size (the default).
    #[default]
    Mean,
    /// The sum of the values.
    Sum,
    /// The largest value.
    Max,
    /// The smallest value.
    Min,
    /// A function of every value of the epoch, in the order logged (they are kept until the epoch ends).
    Custom(fn(&[f64]) -> f64),
}

impl ReduceFx {
    /// Its name in checkpoints.
    pub(super) fn name(self) -> &'static str {
        match self {
            ReduceFx::Mean => "mean",
            ReduceFx::Sum => "sum",
            ReduceFx::Max => "max",
            ReduceFx::Min => "min",
            ReduceFx::Custom(_) => "custom",
        }
    }

    /// From its name in a checkpoint; a custom function comes back when the metric is logged again (until then
    /// its values are averaged).
    pub(super) fn from_name(name: &str) -> ReduceFx {
        match name {
            "sum" => ReduceFx::Sum,
            "max" => ReduceFx::Max,
            "min" => ReduceFx::Min,
            "custom" => ReduceFx::Custom(mean),
            _ => ReduceFx::Mean,
        }
    }
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

pub(super) fn read(value: &Logged) -> f64 {
    match value {
        Logged::Number(x) => *x,
        Logged::Tensor(t) => t.f_double_value(&[]).unwrap_or(f64::NAN),
    }
}

fn nan() -> Tensor {
    Tensor::from(f64::NAN)
}

fn as_double(value: Logged) -> Logged {
    match value {
        Logged::Number(x) => Logged::Number(x),
        Logged::Tensor(t) => Logged::Tensor(t.f_to_kind(tch::Kind::Double).unwrap_or_else(|_| nan())),
    }
}

fn scaled(value: &Logged, weight: f64) -> Logged {
    match value {
        Logged::Number(x) => Logged::Number(x * weight),
        Logged::Tensor(t) => Logged::Tensor(
            t.f_to_kind(tch::Kind::Double).and_then(|t| t.f_mul_scalar(weight)).unwrap_or_else(|_| nan()),
        ),
    }
}

/// `a` and `b` combined elementwise by `op` (`add`, `maximum`, `minimum`), as numbers or tensors.
fn combine(a: Logged, b: Logged, op: ReduceFx) -> Logged {
    let numbers = |x: f64, y: f64| match op {
        ReduceFx::Max => x.max(y),
        ReduceFx::Min => x.min(y),
        _ => x + y,
    };
    let tensors = |x: &Tensor, y: &Tensor| {
        let y = y.f_to_device(x.device()).unwrap_or_else(|_| y.shallow_clone());
        match op {
            ReduceFx::Max => x.f_maximum(&y),
            ReduceFx::Min => x.f_minimum(&y),
            _ => x.f_add(&y),
        }
        .unwrap_or_else(|_| nan())
    };
    match (a, b) {
        (Logged::Number(x), Logged::Number(y)) => Logged::Number(numbers(x, y)),
        (Logged::Tensor(x), Logged::Tensor(y)) => Logged::Tensor(tensors(&x, &y)),
        (Logged::Tensor(x), Logged::Number(y)) | (Logged::Number(y), Logged::Tensor(x)) => {
            Logged::Tensor(tensors(&x, &Tensor::from(y)))
        }
    }
}

/// One metric's epoch so far.
#[derive(Default)]
pub(super) struct EpochState {
    /// Mean: the batch-size-weighted sum; Sum: the sum; Max/Min: the extreme so far.
    pub running: Option<Logged>,
    /// Mean: the sum of the weights.
    pub weight: f64,
    /// Custom: every value.
    pub values: Vec<Logged>,
}

impl EpochState {
    pub fn is_empty(&self) -> bool {
        self.running.is_none() && self.values.is_empty()
    }

    pub fn add(&mut self, value: Logged, batch_size: usize, reduce: ReduceFx) {
        let part = match reduce {
            ReduceFx::Custom(_) => {
                self.values.push(as_double(value));
                return;
            }
            ReduceFx::Mean => {
                let weight = batch_size.max(1) as f64;
                self.weight += weight;
                scaled(&value, weight)
            }
            _ => as_double(value),
        };
        self.running = Some(match self.running.take() {
            Some(running) => combine(running, part, reduce),
            None => part,
        });
    }

    /// The epoch's value (reads it back from its device).
    pub fn finish(&self, reduce: ReduceFx) -> Option<f64> {
        match reduce {
            ReduceFx::Custom(f) => {
                (!self.values.is_empty()).then(|| f(&self.values.iter().map(read).collect::<Vec<_>>()))
            }
            ReduceFx::Mean => self.running.as_ref().map(|sum| read(sum) / self.weight),
            _ => self.running.as_ref().map(read),
        }
    }
}
