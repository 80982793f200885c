//! Turns a validated module into code: the user's block, one hidden shim per hook (the catalogue's exact
//! signature, calling the user's method with the parameters it wrote), the `LightningModule` impl with its
//! hook table, and the stage marker traits.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::ItemImpl;

use crate::args::Args;
use crate::catalogue::{Ret, HOOKS};
use crate::model::{HookFn, Module, Slot};
use crate::types;

/// The stage marker traits, each with the hook that earns it (the catalogue's `marker`).
fn markers() -> impl Iterator<Item = (&'static str, &'static str)> {
    HOOKS.iter().filter_map(|hook| hook.marker.map(|marker| (hook.name, marker)))
}

pub fn expand(args: &Args, module: &Module) -> TokenStream {
    let p = args.private();
    let item = &module.item;
    let shims = module.hooks.iter().map(|hook_fn| shim(&p, hook_fn));
    let generics = static_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let self_ty = &item.self_ty;
    let batch = args.batch.clone().or_else(|| module.inferred_batch());
    let batch = batch.map_or_else(|| quote!(()), |ty| quote!(#ty));
    let prediction = module.prediction().map_or_else(|| quote!(()), |ty| quote!(#ty));
    let entries = module.hooks.iter().map(|hook_fn| {
        let name = format_ident!("{}", hook_fn.hook.name);
        let shim = types::shim_name(hook_fn.hook);
        let cfgs = &hook_fn.cfgs;
        quote!(#(#cfgs)* #name: ::core::option::Option::Some(Self::#shim),)
    });
    let field = args.var_store_field(self_ty.span());
    let manual = args.manual_optimization.then(|| {
        quote!(
            const AUTOMATIC_OPTIMIZATION: bool = false;
        )
    });
    // What the module logs, when all of it can be read off the block (see `logged_names.rs`).
    let logged = crate::logged_names::logged_names(item).map(|names| {
        quote!(
            const LOGGED_NAMES: ::core::option::Option<&'static [&'static str]> =
                ::core::option::Option::Some(&[#(#names),*]);
        )
    });
    let hparams = args.hparams.as_ref().map(|field| {
        quote! {
            fn hparams(&self) -> ::core::option::Option<#p::JsonValue> {
                #p::hparams_json(&self.#field)
            }
        }
    });
    // A marker holds where its hook is compiled: once if a definition has no `cfg`, else under each one's.
    let markers = markers().flat_map(|(hook, marker)| {
        let definitions: Vec<&HookFn> = module.hooks.iter().filter(|hook_fn| hook_fn.hook.name == hook).collect();
        let conditions: Vec<&[syn::Attribute]> = if definitions.iter().any(|hook_fn| hook_fn.cfgs.is_empty()) {
            vec![&[]]
        } else {
            definitions.iter().map(|hook_fn| hook_fn.cfgs.as_slice()).collect()
        };
        conditions.into_iter().map(|cfgs| {
            let marker = marker_impl(&p, item, marker);
            quote!(#(#cfgs)* #marker)
        })
    });
    quote! {
        #item

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::all)]
        impl #impl_generics #self_ty #where_clause {
            #(#shims)*
        }

        // A module defining every hook leaves `..EMPTY` nothing to fill.
        #[allow(clippy::needless_update)]
        impl #impl_generics #p::LightningModule for #self_ty #where_clause {
            type Batch = #batch;
            type Prediction = #prediction;
            const HOOKS: #p::HookTable<Self> = #p::HookTable {
                #(#entries)*
                ..#p::HookTable::<Self>::EMPTY
            };
            #manual
            #logged
            #hparams
            // Both through the place `(*self)`, so that a missing field is one error (rustc's two would differ
            // only in `&Model` and `&mut Model`).
            #[inline]
            fn var_store(&self) -> &#p::VarStore {
                &(*self).#field
            }
            #[inline]
            fn var_store_mut(&mut self) -> &mut #p::VarStore {
                &mut (*self).#field
            }
        }

        #(#markers)*
    }
}

/// What is emitted when the block has errors: the user's block unchanged (so that IDEs and the rest of the
/// crate keep working), a `LightningModule` impl with an empty table and every marker, so that the user sees
/// only the real errors and none of their knock-on effects, and the errors.
pub fn stub(args: &Args, module: &Module, errors: TokenStream) -> TokenStream {
    let p = args.private();
    let item = &module.item;
    let generics = static_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let self_ty = &item.self_ty;
    let batch = args.batch.clone().or_else(|| module.inferred_batch());
    let batch = batch.map_or_else(|| quote!(()), |ty| quote!(#ty));
    let prediction = module.prediction().map_or_else(|| quote!(()), |ty| quote!(#ty));
    let markers = markers().map(|(_, marker)| marker_impl(&p, item, marker));
    quote! {
        #item

        impl #impl_generics #p::LightningModule for #self_ty #where_clause {
            type Batch = #batch;
            type Prediction = #prediction;
            const HOOKS: #p::HookTable<Self> = #p::HookTable::<Self>::EMPTY;
            fn var_store(&self) -> &#p::VarStore {
                ::core::unreachable!()
            }
            fn var_store_mut(&mut self) -> &mut #p::VarStore {
                ::core::unreachable!()
            }
        }

        #(#markers)*

        #errors
    }
}

/// The block's generics with `T: 'static` added for every type parameter: the runtime owns modules for a
/// whole run and hands them to callbacks as `dyn Any`, so a module type cannot borrow.
pub fn static_generics(generics: &syn::Generics) -> syn::Generics {
    let mut generics = generics.clone();
    let params: Vec<syn::Ident> = generics.type_params().map(|param| param.ident.clone()).collect();
    let clause = generics.make_where_clause();
    for ident in params {
        clause.predicates.push(syn::parse_quote!(#ident: 'static));
    }
    generics
}

fn marker_impl(p: &TokenStream, item: &ItemImpl, marker: &str) -> TokenStream {
    let generics = static_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let self_ty = &item.self_ty;
    let marker = format_ident!("{}", marker);
    quote!(impl #impl_generics #p::#marker for #self_ty #where_clause {})
}

/// The shim of one hook: the catalogue's signature, calling the user's method with the parameters it wrote.
/// Argument and return conversions are spanned on the user's own types, so that rustc's type errors land there.
fn shim(p: &TokenStream, hook_fn: &HookFn) -> TokenStream {
    shim_named(p, hook_fn, &types::shim_name(hook_fn.hook))
}

/// [`shim`] under the name `shim`.
pub fn shim_named(p: &TokenStream, hook_fn: &HookFn, shim: &syn::Ident) -> TokenStream {
    let hook = hook_fn.hook;
    let s = quote!(Self);
    let user = &hook_fn.ident;
    let mut names: Vec<syn::Ident> = hook.params.iter().map(|param| format_ident!("_{}", param.name)).collect();
    if hook.takes_ctx {
        names.push(format_ident!("_ctx"));
    }
    let param_types = types::params(hook, p, &s);
    let result = types::result(hook, p, &s);
    let args = hook_fn.params.iter().map(|param| {
        let name = match param.slot {
            Slot::Param(index) => &names[index],
            Slot::Ctx => names.last().expect("a hook that takes ctx has a ctx name"),
        };
        // The same variable (call-site hygiene) located at the user's type, so that rustc's "expected <user's
        // type>" lands on that type.
        at(name, param.ty.span())
    });
    let deprecation = hook
        .deprecated
        .filter(|_| !hook_fn.allows_deprecated)
        .map(|_| quote_spanned!(user.span()=> let () = #p::CONFIGURE_SHARDED_MODEL;));
    let out = quote!(__lightning_out);
    let unwrap = hook_fn.ret.is_result.then(|| {
        // Reported at the user's error type when it does not convert (rather than at the attribute).
        let error_span = hook_fn.ret.error_span.unwrap_or(hook_fn.ret.span);
        let convert = quote_spanned!(error_span=> #p::hook_error(error));
        quote! {
            let #out = match #out {
                ::core::result::Result::Ok(value) => value,
                ::core::result::Result::Err(error) => return ::core::result::Result::Err(#convert),
            };
        }
    });
    let value = convert(p, hook.ret, &at(&format_ident!("__lightning_out"), hook_fn.ret.span), hook_fn.ret.span);
    let cfgs = &hook_fn.cfgs;
    quote! {
        #(#cfgs)*
        #[inline]
        fn #shim(&mut self #(, #names: #param_types)*) -> #result {
            #deprecation
            let #out = Self::#user(self #(, #args)*);
            #unwrap
            ::core::result::Result::Ok(#value)
        }
    }
}

/// `ident`, resolved where the macro was called but reported at `span`.
fn at(ident: &syn::Ident, span: Span) -> TokenStream {
    let mut located = ident.clone();
    located.set_span(Span::call_site().located_at(span));
    quote!(#located)
}

/// The user's value converted into what the runtime expects of the hook.
fn convert(p: &TokenStream, ret: Ret, out: &TokenStream, span: Span) -> TokenStream {
    let s = quote!(Self);
    match ret {
        // The type is the user's own (or is checked against it by rustc): pass it through.
        Ret::Prediction | Ret::Batch | Ret::Json => out.clone(),
        // Run through the module's `forward`, found by method resolution; a missing or differently shaped
        // `forward` is reported at the user's return type. The closure's names cannot clash with a unit struct
        // or const of the user's (they carry the user's span).
        Ret::ExampleInput => {
            quote_spanned!(span=> #p::forward_example(self, #out, |__lightning_module, __lightning_input| __lightning_module.forward(__lightning_input))?)
        }
        _ => {
            let target = types::ret(ret, p, &s);
            quote_spanned!(span=> <_ as #p::HookOutput<#target>>::into_output(#out))
        }
    }
}
