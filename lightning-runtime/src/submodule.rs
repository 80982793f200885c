//! The parameters of one part of a module (PyTorch's `self.generator.parameters()`): the variables a `VarStore`
//! holds under a path such as `vs.root() / "generator"`, for an optimizer per network without filtering names.

use tch::nn::{Path, VarStore};
use tch::Tensor;

use crate::optim::Params;
use crate::{Error, Result};

/// The parameters under one path of a [`VarStore`]; made by [`VarStoreExt::submodule`], given to an optimizer
/// as its [`Params`].
#[derive(Debug)]
pub struct Submodule {
    prefix: String,
    parameters: Vec<Tensor>,
}

impl Submodule {
    /// The path, as the variables' names start (`generator`, `encoder.layer1`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The parameters, in the order they were created (the order the whole `VarStore` gives them in).
    pub fn parameters(&self) -> &[Tensor] {
        &self.parameters
    }
}

impl Params for Submodule {
    fn params(self) -> Vec<Tensor> {
        self.parameters
    }
}

/// A path in a `VarStore`: a name (`"generator"`, or `"encoder.layer1"` for a nested one), or a tch
/// [`nn::Path`](Path) (`&(vs.root() / "generator")`).
pub trait SubPath {
    /// The path's components joined by `.`, as the variables' names start.
    fn prefix(self) -> String;
}

impl SubPath for &str {
    fn prefix(self) -> String {
        self.trim_matches('.').to_string()
    }
}

impl SubPath for &Path<'_> {
    fn prefix(self) -> String {
        self.components().collect::<Vec<_>>().join(".")
    }
}

/// What `lightning` adds to tch's [`VarStore`] (in the prelude).
pub trait VarStoreExt {
    /// The parameters under `path`: the variables whose names start with `path.`, frozen ones included as in
    /// `Optimizer::adam(&vs, ..)`, buffers (BatchNorm's running statistics) left out. For one optimizer per
    /// network of a module that keeps several in one `VarStore` (a GAN's generator and discriminator):
    ///
    /// ```
    /// use lightning::prelude::*;
    ///
    /// struct Gan { vs: nn::VarStore, generator: nn::Linear, discriminator: nn::Linear }
    ///
    /// #[lightning_module(batch = Tensor, manual_optimization)]
    /// impl Gan {
    ///     fn training_step(&mut self, _real: &Tensor) {}
    ///     fn configure_optimizers(&mut self) -> lightning::Result<Vec<Optimizer>> {
    ///         Ok(vec![
    ///             Optimizer::adam(self.vs.submodule("generator")?, 2e-4),
    ///             Optimizer::adam(self.vs.submodule(&(self.vs.root() / "discriminator"))?, 2e-4),
    ///         ])
    ///     }
    /// }
    ///
    /// let vs = nn::VarStore::new(Device::Cpu);
    /// let generator = nn::linear(vs.root() / "generator", 8, 2, Default::default());
    /// let discriminator = nn::linear(vs.root() / "discriminator", 2, 1, Default::default());
    /// assert_eq!(vs.submodule("generator")?.parameters().len(), 2); // weight and bias
    /// # Ok::<(), lightning::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::Config`] when no parameter lives under `path` (a misspelt name would otherwise train
    /// nothing), naming the top-level paths there are.
    fn submodule(&self, path: impl SubPath) -> Result<Submodule>;
}

impl VarStoreExt for VarStore {
    fn submodule(&self, path: impl SubPath) -> Result<Submodule> {
        let prefix = path.prefix();
        let named = self.variables();
        let under =
            |name: &str| prefix.is_empty() || name.strip_prefix(&prefix).is_some_and(|rest| rest.starts_with('.'));
        // A parameter and its entry among the named variables are the same tensor: matched by storage.
        let parameters: Vec<Tensor> = self
            .trainable_variables()
            .into_iter()
            .filter(|parameter| {
                named.iter().any(|(name, variable)| under(name) && variable.data_ptr() == parameter.data_ptr())
            })
            .collect();
        if parameters.is_empty() {
            let mut tops: Vec<&str> = named.keys().map(|name| name.split('.').next().unwrap_or(name)).collect();
            tops.sort_unstable();
            tops.dedup();
            return Err(Error::Config(format!(
                "the VarStore has no parameters under `{prefix}`; its top-level paths are: {}",
                if tops.is_empty() { "(none: it is empty)".to_string() } else { tops.join(", ") }
            )));
        }
        Ok(Submodule { prefix, parameters })
    }
}
