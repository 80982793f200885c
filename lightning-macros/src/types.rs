//! The catalogue's types as tokens, for the generated shims (`Self`, through the user's path to the runtime)
//! and for the runtime's `HookTable` (`M`, through `crate::__private`). One function, so the two always agree.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::catalogue::{Hook, Ret, Ty};

/// `p` is the path to the runtime's `__private` module; `s` is the module type (`Self` or `M`).
pub fn ty(t: Ty, p: &TokenStream, s: &TokenStream) -> TokenStream {
    let module = quote!(<#s as #p::LightningModule>);
    match t {
        Ty::BatchRef => quote!(&#module::Batch),
        Ty::Batch => quote!(#module::Batch),
        Ty::Usize => quote!(usize),
        Ty::TensorRef => quote!(&#p::Tensor),
        Ty::OutputRef => quote!(&#p::StepOutput),
        Ty::PredictionRef => quote!(&#module::Prediction),
        Ty::Optimizer => quote!(&mut #p::Optimizer),
        Ty::Closure => quote!(&mut #p::OptimizerClosure<'_, #s>),
        Ty::Scheduler => quote!(&mut #p::LrScheduler),
        Ty::OptionF64 => quote!(::core::option::Option<f64>),
        Ty::ClipAlgorithm => quote!(::core::option::Option<#p::GradClipAlgorithm>),
        Ty::Stage => quote!(#p::Stage),
        Ty::Device => quote!(#p::Device),
        Ty::Checkpoint => quote!(&mut #p::Checkpoint),
        Ty::Json => quote!(#p::JsonValue),
        Ty::ErrorRef => quote!(&#p::Error),
    }
}

pub fn ret(r: Ret, p: &TokenStream, s: &TokenStream) -> TokenStream {
    let module = quote!(<#s as #p::LightningModule>);
    match r {
        Ret::Unit => quote!(()),
        Ret::Control => quote!(#p::BatchControl),
        Ret::Output => quote!(#p::StepOutput),
        Ret::Prediction => quote!(#module::Prediction),
        Ret::Batch => quote!(#module::Batch),
        Ret::Loader => quote!(#p::Loader<#module::Batch>),
        Ret::Loaders => quote!(#p::Loaders<#module::Batch>),
        Ret::Json => quote!(#p::JsonValue),
        Ret::Optimizers => quote!(#p::Optimizers),
        Ret::Callbacks => quote!(::std::vec::Vec<::std::boxed::Box<dyn #p::Callback>>),
        Ret::ExampleInput => quote!(#p::LayerShapes),
    }
}

pub fn ctx(p: &TokenStream) -> TokenStream {
    quote!(&mut #p::Ctx)
}

/// The full result type of a hook's shim.
pub fn result(hook: &Hook, p: &TokenStream, s: &TokenStream) -> TokenStream {
    let ret = ret(hook.ret, p, s);
    quote!(::core::result::Result<#ret, #p::HookError>)
}

/// The parameter types of a hook's shim after `&mut Self`, the optional context included.
pub fn params(hook: &Hook, p: &TokenStream, s: &TokenStream) -> Vec<TokenStream> {
    let mut params: Vec<TokenStream> = hook.params.iter().map(|param| ty(param.ty, p, s)).collect();
    if hook.takes_ctx {
        params.push(ctx(p));
    }
    params
}

/// The function-pointer type the hook table holds for a hook.
pub fn fn_pointer(hook: &Hook, p: &TokenStream, s: &TokenStream) -> TokenStream {
    let params = params(hook, p, s);
    let result = result(hook, p, s);
    quote!(fn(&mut #s #(, #params)*) -> #result)
}

/// The name of the generated shim method of a hook.
pub fn shim_name(hook: &Hook) -> syn::Ident {
    format_ident!("__lightning_hook_{}", hook.name)
}
