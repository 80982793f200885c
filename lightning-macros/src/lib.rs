//! The `#[lightning_module]` attribute of Lightning for Rust. Use it through the `lightning` crate, whose
//! documentation of `lightning_module` has the guide, the hook table and examples.
//!
//! The pieces, in the order they run: `args.rs` reads the attribute's arguments, `model.rs` reads the `impl`
//! block into a small IR, `check.rs` holds one function per compile-time rule, and `expand.rs` writes the code.
//! All of them read the hook catalogue in `catalogue.rs`.

mod args;
mod callback_hooks;
mod catalogue;
mod check;
mod ctxt;
mod datamodule;
mod datamodule_catalogue;
#[cfg(test)]
mod docs;
mod expand;
mod hook_types;
mod logged_names;
mod model;
mod not_hooks;
mod rewrite;
mod table;
mod types;

use proc_macro::TokenStream;

/// Makes the inherent `impl` block of a model a LightningModule. See the `lightning` crate's documentation.
#[proc_macro_attribute]
pub fn lightning_module(args: TokenStream, item: TokenStream) -> TokenStream {
    module(args.into(), item.into()).into()
}

/// The whole expansion, on `proc_macro2` tokens so that tests can run it.
fn module(args: proc_macro2::TokenStream, item: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    let mut cx = ctxt::Ctxt::new();
    let args = args::Args::parse(&mut cx, args);
    let (item, self_batch) = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Impl(mut item)) => {
            let self_batch = rewrite::self_associated_types(&mut item, &args.private());
            (item, self_batch)
        }
        Ok(other) => {
            cx.push(syn::Error::new_spanned(
                item_keyword(&other),
                "`#[lightning_module]` goes on an inherent `impl` block of the model\n= help: write the hooks as methods of `impl Model { .. }`",
            ));
            let errors = cx.finish();
            return quote::quote!(#item #errors);
        }
        Err(error) => {
            cx.push(error);
            let errors = cx.finish();
            return quote::quote!(#item #errors);
        }
    };
    if let Some((_, path, _)) = &item.trait_ {
        // Nothing else is said of a trait impl: its methods are the trait's, and a stand-in `LightningModule` impl
        // could only add conflicts (with the block itself, when it is `impl LightningModule for ..`).
        cx.error_spanned_by(
            path,
            "`#[lightning_module]` goes on an inherent `impl` block, not on a trait impl\n= help: write the hooks as methods of `impl Model { .. }`",
        );
        let errors = cx.finish();
        // `impl LightningModule for Model` with hooks in it cannot compile however it is read (hooks are not the
        // trait's items, and the trait's own items are the attribute's to write): only the one error is said.
        let is_lightning_module = path.segments.last().is_some_and(|segment| segment.ident == "LightningModule");
        return if is_lightning_module { errors } else { quote::quote!(#item #errors) };
    }
    let module = model::Module::from_impl(&mut cx, item);
    check::against_args(&mut cx, args.manual_optimization, &module);
    for hook_fn in module.hooks.iter().filter(|hook_fn| hook_fn.hook.name == "predict_step") {
        if hook_fn.ret.ok.as_ref().is_some_and(rewrite::is_rewritten) {
            cx.error_under_cfg(
                &hook_fn.cfgs,
                hook_fn.ret.span_tokens(),
                "`predict_step` must return its own type: `Self::Prediction` is read off it\n= help: write the type the step returns (`Tensor`, `Vec<i64>`, ...)",
            );
        }
    }
    if let (Some(written), None, None) = (self_batch, &args.batch, module.inferred_batch()) {
        cx.push(syn::Error::new_spanned(
            written,
            "`Self::Batch` names the module's batch type, but nothing says what it is\n= help: add `#[lightning_module(batch = YourBatch)]`, or write the type itself in one batch-taking hook",
        ));
    }
    let conditional = cx.conditional();
    let expanded = if cx.has_errors() {
        expand::stub(&args, &module, cx.finish())
    } else {
        cx.finish();
        expand::expand(&args, &module)
    };
    quote::quote!(#expanded #conditional)
}

/// The smallest token that says what kind of item it is (`struct`, `fn`, ...), for the error's span.
fn item_keyword(item: &syn::Item) -> proc_macro2::TokenStream {
    use quote::ToTokens;
    match item {
        syn::Item::Struct(s) => s.struct_token.to_token_stream(),
        syn::Item::Enum(e) => e.enum_token.to_token_stream(),
        syn::Item::Fn(f) => f.sig.fn_token.to_token_stream(),
        syn::Item::Trait(t) => t.trait_token.to_token_stream(),
        syn::Item::Mod(m) => m.mod_token.to_token_stream(),
        other => other.to_token_stream(),
    }
}

/// Makes the inherent `impl` block of a data module a LightningDataModule. See the `lightning` crate's
/// documentation.
#[proc_macro_attribute]
pub fn lightning_datamodule(args: TokenStream, item: TokenStream) -> TokenStream {
    datamodule::datamodule(args.into(), item.into()).into()
}

/// Defines the runtime's `DataHookTable` from the data-module catalogue. Used once, inside `lightning-runtime`.
#[doc(hidden)]
#[proc_macro]
pub fn __datamodule_hook_table(_input: TokenStream) -> TokenStream {
    table::expand_datamodule().into()
}

/// Defines the runtime's `HookTable` from the catalogue. Used once, inside `lightning-runtime`.
#[doc(hidden)]
#[proc_macro]
pub fn __hook_table(_input: TokenStream) -> TokenStream {
    table::expand().into()
}

#[cfg(test)]
mod snapshots;
