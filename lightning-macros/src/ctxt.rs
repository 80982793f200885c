//! Collects every error of one expansion, so that one compile shows all of the user's mistakes.

use std::fmt::Display;

use proc_macro2::TokenStream;
use quote::ToTokens;

/// The errors found so far. Consumed by [`Ctxt::finish`]; dropping it unchecked is a bug in the macro.
#[derive(Default)]
pub struct Ctxt {
    errors: Option<Vec<syn::Error>>,
    /// Errors about methods under `#[cfg(..)]`, emitted under the same `cfg`: they count only where the method is
    /// compiled, so they do not stop the expansion.
    conditional: Vec<TokenStream>,
}

impl Ctxt {
    pub fn new() -> Self {
        Ctxt { errors: Some(Vec::new()), conditional: Vec::new() }
    }

    /// Records an error spanned on `tokens`.
    pub fn error_spanned_by(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub fn push(&mut self, error: syn::Error) {
        self.errors.as_mut().expect("Ctxt used after finish").push(error);
    }

    /// Records an error spanned on `tokens` that holds only where `cfgs` (a method's `#[cfg(..)]` attributes) do.
    pub fn error_under_cfg(&mut self, cfgs: &[syn::Attribute], tokens: impl ToTokens, message: impl Display) {
        if cfgs.is_empty() {
            return self.error_spanned_by(tokens, message);
        }
        let error = syn::Error::new_spanned(tokens, message).into_compile_error();
        self.conditional.push(quote::quote!(#(#cfgs)* const _: () = { #error };));
    }

    /// The errors recorded with [`error_under_cfg`](Self::error_under_cfg), to emit beside the expansion.
    pub fn conditional(&mut self) -> TokenStream {
        std::mem::take(&mut self.conditional).into_iter().collect()
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
