//! How many batches a loop runs: all, a count, or a fraction of the loader.

use crate::{Error, Result};

/// A number of batches: all of them, a count (`5`), or a fraction of the loader (`0.25`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Limit {
    /// Every batch.
    #[default]
    All,
    /// This many batches (at most the loader's length).
    Batches(usize),
    /// This fraction of the loader's batches (needs a loader that knows its length).
    Fraction(f64),
}

impl From<usize> for Limit {
    fn from(count: usize) -> Self {
        Limit::Batches(count)
    }
}

impl From<f64> for Limit {
    fn from(fraction: f64) -> Self {
        if fraction == 1.0 {
            Limit::All
        } else {
            Limit::Fraction(fraction)
        }
    }
}

impl Limit {
    /// The number of batches to run (`None`: until the loader ends), for a loader of `len` batches.
    pub(crate) fn resolve(self, len: Option<usize>, what: &str) -> Result<Option<usize>> {
        match (self, len) {
            (Limit::All, len) => Ok(len),
            (Limit::Batches(n), Some(len)) => Ok(Some(n.min(len))),
            (Limit::Batches(n), None) => Ok(Some(n)),
            (Limit::Fraction(f), _) if !(0.0..=1.0).contains(&f) => {
                Err(Error::Config(format!("limit_{what}_batches={f}: a fraction must be within 0.0..=1.0")))
            }
            (Limit::Fraction(f), Some(len)) => {
                let n = (len as f64 * f) as usize;
                if n == 0 && f > 0.0 {
                    return Err(Error::Config(format!(
                        "limit_{what}_batches={f} of {len} batches is 0 batches: raise the fraction or pass a count"
                    )));
                }
                Ok(Some(n))
            }
            (Limit::Fraction(f), None) => Err(Error::Config(format!(
                "limit_{what}_batches={f} is a fraction, but the {what} loader does not know its length: pass a count"
            ))),
        }
    }
}
