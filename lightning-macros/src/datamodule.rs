//! `#[lightning_datamodule]`: the same reading, checks and shims as `#[lightning_module]`, against the data
//! module's hooks (`datamodule_catalogue.rs`), generating the runtime's `LightningDataModule` impl.
//!
//! The shims name the runtime's types through `<crate>::__private::datamodule`, where `LightningModule` is the
//! data-module trait: the catalogue's types (`<Self as LightningModule>::Batch`, ...) then mean the data module's.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{GenericArgument, Ident, Path, PathArguments, Token, Type};

use crate::ctxt::Ctxt;
use crate::datamodule_catalogue;
use crate::expand::{shim_named, static_generics};
use crate::model::{Catalogue, Module};

const TAKES: &str = "= help: `#[lightning_datamodule]` takes `batch = Type` and `crate = path`";

/// The data-module hooks.
const DATAMODULE: Catalogue =
    Catalogue { find: datamodule_catalogue::find, not_a_hook: datamodule_catalogue::not_a_hook };

enum Arg {
    Crate(Path),
    Batch(Type),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![crate]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            return Ok(Arg::Crate(input.call(Path::parse_mod_style)?));
        }
        let key: Ident = input.parse()?;
        if key != "batch" {
            let guess = if strsim::damerau_levenshtein(&key.to_string(), "batch") <= 2 {
                "\n= help: did you mean `batch`?"
            } else {
                ""
            };
            return Err(syn::Error::new(key.span(), format!("unknown argument `{key}`{guess}\n{TAKES}")));
        }
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(key.span(), format!("`batch` takes a type: `batch = YourBatch`\n{TAKES}")));
        }
        input.parse::<Token![=]>()?;
        Ok(Arg::Batch(input.parse()?))
    }
}

pub fn datamodule(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut cx = Ctxt::new();
    let (mut krate, mut batch): (Path, Option<Type>) = (syn::parse_quote!(::lightning), None);
    match syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, args) {
        Ok(list) => {
            for arg in list {
                match arg {
                    Arg::Crate(path) => krate = path,
                    Arg::Batch(ty) => batch = Some(ty),
                }
            }
        }
        Err(error) => cx.push(error),
    }
    let p = quote!(#krate::__private::datamodule);
    let mut item = match syn::parse2::<syn::Item>(item.clone()) {
        Ok(syn::Item::Impl(item)) if item.trait_.is_none() => item,
        Ok(_) => {
            cx.push(syn::Error::new_spanned(
                &item,
                "`#[lightning_datamodule]` goes on an inherent `impl` block of the data module\n= help: write its hooks as methods of `impl MyData { .. }`",
            ));
            let errors = cx.finish();
            return quote!(#item #errors);
        }
        Err(error) => {
            cx.push(error);
            let errors = cx.finish();
            return quote!(#item #errors);
        }
    };
    crate::rewrite::self_associated_types(&mut item, &p);
    let module = Module::from_impl_in(&mut cx, item, &DATAMODULE);
    let batch = batch.or_else(|| module.inferred_batch()).or_else(|| loader_batch(&module));
    if batch.is_none() && !cx.has_errors() {
        cx.push(syn::Error::new_spanned(
            &module.item.self_ty,
            "the data module's batch type cannot be read off its hooks\n= help: add `#[lightning_datamodule(batch = YourBatch)]`, or return `Loader<YourBatch>` from a `*_dataloader` hook",
        ));
    }
    let conditional = cx.conditional();
    let item = &module.item;
    let generics = static_generics(&item.generics);
    let (impl_generics, _, where_clause) = generics.split_for_impl();
    let self_ty = &item.self_ty;
    let batch = batch.map_or_else(|| quote!(()), |ty| quote!(#ty));
    if cx.has_errors() {
        let errors = cx.finish();
        return quote! {
            #item
            impl #impl_generics #p::LightningModule for #self_ty #where_clause {
                type Batch = #batch;
                const HOOKS: #p::DataHookTable<Self> = #p::DataHookTable::<Self>::EMPTY;
            }
            #errors
            #conditional
        };
    }
    cx.finish();
    let shim_name = |name: &str| format_ident!("__lightning_datamodule_hook_{}", name);
    let shims = module.hooks.iter().map(|hook_fn| shim_named(&p, hook_fn, &shim_name(hook_fn.hook.name)));
    let entries = module.hooks.iter().map(|hook_fn| {
        let name = format_ident!("{}", hook_fn.hook.name);
        let shim = shim_name(hook_fn.hook.name);
        let cfgs = &hook_fn.cfgs;
        quote!(#(#cfgs)* #name: ::core::option::Option::Some(Self::#shim),)
    });
    quote! {
        #item

        #[doc(hidden)]
        #[allow(non_snake_case, clippy::all)]
        impl #impl_generics #self_ty #where_clause {
            #(#shims)*
        }

        #[allow(clippy::needless_update)]
        impl #impl_generics #p::LightningModule for #self_ty #where_clause {
            type Batch = #batch;
            const HOOKS: #p::DataHookTable<Self> = #p::DataHookTable {
                #(#entries)*
                ..#p::DataHookTable::<Self>::EMPTY
            };
        }
        #conditional
    }
}

/// The batch type of the first `Loader<T>` or `Loaders<T>` a dataloader hook's return type names (`Loader<T>`,
/// `Result<Loader<T>>`, `Vec<Loader<T>>`, ...); `Self::Batch` there says nothing of it.
fn loader_batch(module: &Module) -> Option<Type> {
    module
        .hooks
        .iter()
        .filter(|hook_fn| hook_fn.hook.name.ends_with("_dataloader"))
        .find_map(|hook_fn| hook_fn.ret.ok.as_ref().and_then(find_loader))
        .filter(|ty| !crate::rewrite::is_rewritten(ty))
}

fn find_loader(ty: &Type) -> Option<Type> {
    match ty {
        Type::Path(path) => {
            let segment = path.path.segments.last()?;
            let PathArguments::AngleBracketed(args) = &segment.arguments else { return None };
            let types = args.args.iter().filter_map(|arg| match arg {
                GenericArgument::Type(ty) => Some(ty),
                _ => None,
            });
            if segment.ident == "Loader" || segment.ident == "Loaders" {
                return types.into_iter().next().cloned();
            }
            types.into_iter().find_map(find_loader)
        }
        Type::Array(array) => find_loader(&array.elem),
        Type::Slice(slice) => find_loader(&slice.elem),
        Type::Paren(paren) => find_loader(&paren.elem),
        _ => None,
    }
}
