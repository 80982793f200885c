//! Collects every error of one expansion, so that one compile shows all of the user's mistakes.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far. Consumed by [`Ctxt::finish`]; dropping it unchecked is a bug in the macro.
#[derive(Default)]
pub struct Ctxt {
    errors: Option<Vec<syn::Error>>,
}

impl Ctxt {
    pub fn new() -> Self {
        Ctxt { errors: Some(Vec::new()) }
    }

    /// Records an error spanned on `tokens`.
    pub fn error_spanned_by(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn push(&mut self, error: syn::Error) {
        self.errors.as_mut().expect("Ctxt used after finish").push(error);
    }

    pub fn has_errors(&self) -> bool {
        self.errors.as_ref().is_some_and(|errors| !errors.is_empty())
    }

    /// All errors as `compile_error!` invocations (empty when there were none).
    pub fn finish(mut self) -> TokenStream {
        let errors = self.errors.take().expect("Ctxt finished twice");
        errors.into_iter().map(syn::Error::into_compile_error).collect()
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if self.errors.is_some() && !std::thread::panicking() {
            panic!("lightning-macros: errors were collected but never reported");
        }
    }
}
