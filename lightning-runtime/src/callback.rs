//! Callbacks: code that runs at the hooks of every module, before the module's own.

use crate::context::Ctx;

/// A callback. Every method has a no-op default; the Trainer calls each callback's hook before the module's.
pub trait Callback: Send {
    /// A name for messages and for the callback's entry in checkpoints.
    fn name(&self) -> String {
        std::any::type_name::<Self>().rsplit("::").next().unwrap_or("callback").to_string()
    }
    /// At the start of `fit`.
    fn on_fit_start(&mut self, _ctx: &mut Ctx) {}
    /// At the end of `fit`.
    fn on_fit_end(&mut self, _ctx: &mut Ctx) {}
}

impl crate::output::HookOutput<Vec<Box<dyn Callback>>> for Vec<Box<dyn Callback>> {
    #[inline]
    fn into_output(self) -> Vec<Box<dyn Callback>> {
        self
    }
}
