//! Reads the user's `impl` block into a small IR: which methods are hooks, and how each hook's written
//! signature maps onto the catalogue's. Every check lives in `check.rs`; expansion works only on this IR.

use std::collections::HashMap;

use syn::spanned::Spanned;
use syn::{Ident, ImplItem, ImplItemFn, ItemImpl, Type};

use crate::catalogue::{self, Hook, Ty};
use crate::check;
use crate::ctxt::Ctxt;

/// A validated `#[lightning_module]` impl block.
pub struct Module {
    /// The user's block as it is emitted: `#[lightning(..)]` attributes removed, duplicate hooks dropped.
    pub item: ItemImpl,
    /// The hooks it defines, in the order written.
    pub hooks: Vec<HookFn>,
}

/// One hook the user defined.
pub struct HookFn {
    pub hook: &'static Hook,
    pub ident: Ident,
    /// The user's parameters after the receiver, in order.
    pub params: Vec<UserParam>,
    pub ret: RetShape,
    /// The method (or its block) says `#[allow(deprecated)]`: no deprecation warning for it.
    pub allows_deprecated: bool,
    /// The method's `#[cfg(..)]` attributes: its shim and table entry exist under the same conditions.
    pub cfgs: Vec<syn::Attribute>,
}

/// A method's `#[cfg(..)]` attributes.
fn cfgs(attrs: &[syn::Attribute]) -> Vec<syn::Attribute> {
    attrs.iter().filter(|attr| attr.path().is_ident("cfg")).cloned().collect()
}

/// The conditions of a set of `#[cfg(..)]` attributes, comparable.
fn cfg_key(cfgs: &[syn::Attribute]) -> Vec<String> {
    let mut key: Vec<String> = cfgs.iter().map(|attr| quote::ToTokens::to_token_stream(attr).to_string()).collect();
    key.sort();
    key
}

/// Whether `attrs` hold an `#[allow(..)]` naming `deprecated`.
fn allows_deprecated(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("allow")
            && attr.meta.require_list().is_ok_and(|list| list.tokens.to_string().contains("deprecated"))
    })
}

/// Where a user's parameter goes in the hook's catalogue signature.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    /// The catalogue parameter at this index.
    Param(usize),
    /// The trailing `ctx: &mut Ctx`.
    Ctx,
}

pub struct UserParam {
    pub slot: Slot,
    pub ty: Type,
}

/// The user's return type, split for conversion.
pub struct RetShape {
    /// Whether the hook returns `Result<T, E>` (any type whose last path segment is `Result`).
    pub is_result: bool,
    /// `T` (or the whole type when not a `Result`); `None` for `()` or no return type.
    pub ok: Option<Type>,
    /// Where errors about the return value point.
    pub span: proc_macro2::Span,
    /// The error type of a `Result<T, E>` written with both arguments: where a conversion error points.
    pub error_span: Option<proc_macro2::Span>,
}

impl RetShape {
    /// A token where errors about the return value point (for errors that take tokens).
    pub fn span_tokens(&self) -> proc_macro2::TokenStream {
        quote::quote_spanned!(self.span=> _)
    }
}

/// The hooks a block is read against: a module's (`#[lightning_module]`) or a data module's.
pub struct Catalogue {
    pub find: fn(&str) -> Option<&'static Hook>,
    /// Reports a method that is no hook, when it looks like a mistake.
    pub not_a_hook: fn(&mut Ctxt, &Ident, &[syn::Attribute]),
}

/// `#[lightning_module]`'s hooks.
pub const MODULE: Catalogue = Catalogue { find: catalogue::find, not_a_hook: check::not_a_hook };

impl Module {
    pub fn from_impl(cx: &mut Ctxt, item: ItemImpl) -> Module {
        Module::from_impl_in(cx, item, &MODULE)
    }

    pub fn from_impl_in(cx: &mut Ctxt, mut item: ItemImpl, hooks_of: &Catalogue) -> Module {
        let block_allows_deprecated = allows_deprecated(&item.attrs);
        let mut hooks = Vec::new();
        // Each hook's definitions so far, by their `cfg` conditions.
        let mut seen: HashMap<&'static str, Vec<Vec<String>>> = HashMap::new();
        let mut kept = Vec::with_capacity(item.items.len());
        for impl_item in std::mem::take(&mut item.items) {
            let ImplItem::Fn(mut method) = impl_item else {
                kept.push(impl_item);
                continue;
            };
            let helper = take_helper_attr(cx, &mut method);
            let name = method.sig.ident.to_string();
            let method_cfgs = cfgs(&method.attrs);
            match (hooks_of.find)(&name) {
                Some(hook) if !helper => {
                    // Two definitions under different `cfg`s are taken as alternatives (rustc reports them if both
                    // are compiled); without a `cfg`, or under the same one, the second is a mistake.
                    let key = cfg_key(&method_cfgs);
                    let earlier = seen.entry(hook.name).or_default();
                    if earlier.iter().any(|other| key.is_empty() || other.is_empty() || *other == key) {
                        check::duplicate(cx, &method.sig.ident);
                        continue;
                    }
                    earlier.push(key);
                    check::logging(cx, hook, &method);
                    if let Some(mut hook_fn) = check::signature(cx, hook, &method.sig) {
                        hook_fn.allows_deprecated = block_allows_deprecated || allows_deprecated(&method.attrs);
                        hook_fn.cfgs = method_cfgs;
                        hooks.push(hook_fn);
                    }
                }
                Some(_) => {}
                None if !helper => (hooks_of.not_a_hook)(cx, &method.sig.ident, &method_cfgs),
                None => {}
            }
            kept.push(ImplItem::Fn(method));
        }
        item.items = kept;
        Module { item, hooks }
    }

    pub fn hook(&self, name: &str) -> Option<&HookFn> {
        self.hooks.iter().find(|hook_fn| hook_fn.hook.name == name)
    }

    /// The batch type as the first batch-taking hook wrote it (`&T` read as `T`).
    pub fn inferred_batch(&self) -> Option<Type> {
        self.hooks.iter().find_map(|hook_fn| {
            let index = hook_fn.hook.batch_param()?;
            let param = hook_fn.params.iter().find(|param| param.slot == Slot::Param(index))?;
            let ty = match (&param.ty, hook_fn.hook.params[index].ty) {
                (Type::Reference(reference), Ty::BatchRef) => (*reference.elem).clone(),
                (ty, Ty::Batch) => ty.clone(),
                _ => return None,
            };
            // `Self::Batch` (written out as `<Self as LightningModule>::Batch`) says nothing of the type.
            (!crate::rewrite::is_rewritten(&ty)).then_some(ty)
        })
    }

    /// What `predict_step` returns, if the module defines it.
    pub fn prediction(&self) -> Option<Type> {
        self.hook("predict_step")
            .and_then(|hook_fn| hook_fn.ret.ok.clone())
            .filter(|ty| !crate::rewrite::is_rewritten(ty))
    }
}

/// Removes the method's `#[lightning(...)]` attributes; true when one of them is `#[lightning(helper)]`.
fn take_helper_attr(cx: &mut Ctxt, method: &mut ImplItemFn) -> bool {
    let mut helper = false;
    method.attrs.retain(|attr| {
        if !attr.path().is_ident("lightning") {
            return true;
        }
        let parsed = attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("helper") {
                helper = true;
                Ok(())
            } else {
                Err(meta.error("unknown `lightning` attribute\n= help: the only one is `#[lightning(helper)]`"))
            }
        });
        if let Err(error) = parsed {
            cx.push(error);
        }
        false
    });
    helper
}

/// The span of a signature's parentheses, for errors about its parameters as a whole.
pub fn parens_span(sig: &syn::Signature) -> proc_macro2::Span {
    sig.paren_token.span.join()
}

/// The span errors about a missing return type point at: just after the parentheses.
pub fn output_span(sig: &syn::Signature) -> proc_macro2::Span {
    match &sig.output {
        syn::ReturnType::Default => sig.paren_token.span.close(),
        syn::ReturnType::Type(_, ty) => ty.span(),
    }
}
