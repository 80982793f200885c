//! The compile-time rules, one function per rule, each opening with the rule it enforces. Every message is
//! built from the catalogue, names the fix, and is spanned on the smallest token at fault.

use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{FnArg, GenericArgument, Ident, ImplItemFn, Pat, PathArguments, ReturnType, Signature, Type};

use crate::catalogue::{Hook, Log, Passing, Receiver, Ret};
use crate::ctxt::Ctxt;
use crate::model::{output_span, parens_span, HookFn, Module, RetShape, Slot, UserParam};
use crate::not_hooks::{self, FOREIGN, REMOVED, REMOVED_PARAMS};

const HELPER_NOTE: &str = "= note: a helper method that only looks like a hook can be marked `#[lightning(helper)]`";

/// The help line that shows a hook's full signature and what may be left out.
fn expected(hook: &Hook) -> String {
    let mut omittable: Vec<String> =
        hook.params.iter().filter(|param| param.optional).map(|param| format!("`{}`", param.name)).collect();
    if hook.takes_ctx {
        omittable.push("`ctx`".to_string());
    }
    let mut help = format!("= help: expected `{}`", hook.signature());
    if !omittable.is_empty() {
        help.push_str(&format!("\n= note: {} may be left out", omittable.join(", ")));
    }
    help
}

/// Rule (beyond Lightning, which only checks at run time): a `ctx.log(..)` or `ctx.log_dict(..)` written in the
/// body of a hook where Lightning forbids logging is an error on the call. Calls made through helpers stay a
/// run-time error.
pub fn logging(cx: &mut Ctxt, hook: &Hook, method: &ImplItemFn) {
    if hook.log != Log::Never {
        return;
    }
    let ctx = method.sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(pat_type) if is_ctx(&pat_type.ty) => match &*pat_type.pat {
            Pat::Ident(pat) => Some(pat.ident.clone()),
            _ => None,
        },
        _ => None,
    });
    let Some(ctx) = ctx else { return };
    let mut finder = LogCalls { ctx, calls: Vec::new(), rebound: false };
    finder.visit_block_mut(&mut method.block.clone());
    if finder.rebound {
        // The name is bound again somewhere (a `let`, a closure's or a loop's pattern): a `ctx.log` there may
        // be another value's, and the run-time check still holds for the context's.
        return;
    }
    for (call, what) in std::mem::take(&mut finder.calls) {
        cx.error_spanned_by(
            call,
            format!(
                "`{}.{what}(..)` in `{}`: Lightning does not allow logging in this hook\n= help: log from a step hook or an epoch hook (`training_step`, `validation_step`, `on_train_epoch_end`, ...)",
                finder.ctx, hook.name
            ),
        );
    }
}

/// The `ctx.log(..)` and `ctx.log_dict(..)` calls of a block, on the hook's context parameter.
struct LogCalls {
    ctx: Ident,
    calls: Vec<(proc_macro2::TokenStream, &'static str)>,
    /// Whether the body binds the context's name again.
    rebound: bool,
}

impl VisitMut for LogCalls {
    fn visit_expr_method_call_mut(&mut self, call: &mut syn::ExprMethodCall) {
        let what = match call.method.to_string().as_str() {
            "log" => Some("log"),
            "log_dict" => Some("log_dict"),
            _ => None,
        };
        let on_ctx = matches!(&*call.receiver, syn::Expr::Path(path) if path.path.is_ident(&self.ctx));
        if let (Some(what), true) = (what, on_ctx) {
            // The call's own tokens, so that the error points at it.
            self.calls.push((quote::ToTokens::to_token_stream(&*call), what));
        }
        syn::visit_mut::visit_expr_method_call_mut(self, call);
    }

    fn visit_pat_ident_mut(&mut self, pat: &mut syn::PatIdent) {
        if pat.ident == self.ctx {
            self.rebound = true;
        }
        syn::visit_mut::visit_pat_ident_mut(self, pat);
    }

    // A nested item has its own scope: a `ctx` there is not the hook's.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Rule: a hook is defined once.
pub fn duplicate(cx: &mut Ctxt, ident: &Ident) {
    cx.error_spanned_by(ident, format!("hook `{ident}` is defined twice\n= help: remove one of the two definitions"));
}

/// Rule: a method whose name is a Lightning 1.x hook that 2.x removed, or a near miss of a hook's name, is
/// almost always a mistake (the runtime would never call it); the user says otherwise with
/// `#[lightning(helper)]`.
pub fn not_a_hook(cx: &mut Ctxt, ident: &Ident, cfgs: &[syn::Attribute]) {
    let name = ident.to_string();
    if let Some((_, why)) = REMOVED.iter().find(|(removed, _)| *removed == name) {
        cx.error_under_cfg(cfgs, ident, format!("`{name}` {why}\n{HELPER_NOTE}"));
    } else if let Some((_, hook)) = FOREIGN.iter().find(|(foreign, _)| *foreign == name) {
        cx.error_under_cfg(
            cfgs,
            ident,
            format!("`{name}` is not a hook of `#[lightning_module]`\n= help: Lightning's name for it is `{hook}`\n{HELPER_NOTE}"),
        );
    } else if let Some(hook) = not_hooks::near_miss(&name) {
        cx.error_under_cfg(
            cfgs,
            ident,
            format!(
                "`{name}` is not a hook of `#[lightning_module]`\n= help: did you mean `{}`?\n{HELPER_NOTE}",
                hook.name
            ),
        );
    }
}

/// Rules that need the attribute's arguments: a hook that can never be called, a step that can never train.
pub fn against_args(cx: &mut Ctxt, manual_optimization: bool, module: &Module) {
    if manual_optimization {
        if let Some(hook_fn) = module.hook("optimizer_step") {
            cx.error_under_cfg(
                &hook_fn.cfgs,
                &hook_fn.ident,
                "`optimizer_step` is never called under `#[lightning_module(manual_optimization)]`: `training_step` steps the optimizers itself\n= help: step them in `training_step` (`ctx.optimizers()`), or remove `manual_optimization` to have the Trainer call `optimizer_step`",
            );
        }
    } else {
        // Each definition on its own (alternatives under `#[cfg]`s are judged where they are compiled).
        for hook_fn in
            module.hooks.iter().filter(|hook_fn| hook_fn.hook.name == "training_step" && hook_fn.ret.ok.is_none())
        {
            cx.error_under_cfg(
                &hook_fn.cfgs,
                hook_fn.ret.span_tokens(),
            "`training_step` returns no loss, so automatic optimization has nothing to step on: the run would train nothing\n= help: return the loss (`-> Tensor`, or `-> Option<Tensor>` to skip a batch), or step the optimizers yourself under `#[lightning_module(manual_optimization)]`",
            );
        }
    }
}

/// Checks one hook's signature against the catalogue; every rule runs so that all mistakes show at once.
pub fn signature(cx: &mut Ctxt, hook: &'static Hook, sig: &Signature) -> Option<HookFn> {
    let qualifiers_ok = qualifiers(cx, hook, sig);
    let receiver_ok = receiver(cx, hook, sig);
    let params = params(cx, hook, sig);
    let ret = return_type(cx, hook, sig);
    match (qualifiers_ok && receiver_ok, params, ret) {
        (true, Some(params), Some(ret)) => {
            Some(HookFn { hook, ident: sig.ident.clone(), params, ret, allows_deprecated: false, cfgs: Vec::new() })
        }
        _ => None,
    }
}

/// Rule: hooks are plain synchronous, safe, non-generic functions, because the runtime calls them through
/// plain function pointers between tensor operations.
fn qualifiers(cx: &mut Ctxt, hook: &Hook, sig: &Signature) -> bool {
    let name = hook.name;
    let mut ok = true;
    let mut fail = |cx: &mut Ctxt, tokens: &dyn quote::ToTokens, message: String| {
        cx.error_spanned_by(tokens, message);
        ok = false;
    };
    if let Some(token) = &sig.asyncness {
        fail(
            cx,
            token,
            format!("hook `{name}` cannot be `async`: the Trainer calls hooks synchronously\n= help: remove `async`"),
        );
    }
    if let Some(token) = &sig.constness {
        fail(cx, token, format!("hook `{name}` cannot be `const`\n= help: remove `const`"));
    }
    if let Some(token) = &sig.unsafety {
        fail(cx, token, format!("hook `{name}` cannot be `unsafe`: the Trainer has no way to uphold its contract\n= help: remove `unsafe` and use an `unsafe` block inside"));
    }
    if let Some(abi) = &sig.abi {
        fail(cx, abi, format!("hook `{name}` cannot have an ABI\n= help: remove `{}`", quote::quote!(#abi)));
    }
    // Lifetime parameters are fine: such a method still coerces to the one function pointer the runtime calls.
    if sig.generics.params.iter().any(|param| !matches!(param, syn::GenericParam::Lifetime(_))) {
        fail(cx, &sig.generics, format!("hook `{name}` cannot be generic over types or constants: the runtime calls it through one function pointer\n= help: remove the type and const parameters"));
    } else if let Some(clause) = &sig.generics.where_clause {
        fail(
            cx,
            clause,
            format!("hook `{name}` cannot have a `where` clause\n= help: put bounds on the `impl` block instead"),
        );
    }
    if let Some(variadic) = &sig.variadic {
        fail(cx, variadic, format!("hook `{name}` cannot be variadic"));
    }
    ok
}

/// Rule: a hook is a method taking `&self` or `&mut self`; hooks that exist to change the module take
/// `&mut self`. The Trainer keeps the module, so `self` by value is never possible.
fn receiver(cx: &mut Ctxt, hook: &Hook, sig: &Signature) -> bool {
    let name = hook.name;
    let Some(FnArg::Receiver(receiver)) = sig.inputs.first() else {
        cx.error_spanned_by(
            &sig.ident,
            format!("hook `{name}` must be a method: add `&mut self` as its first parameter\n{}", expected(hook)),
        );
        return false;
    };
    if receiver.colon_token.is_some() && receiver.reference.is_none() {
        let ty = &receiver.ty;
        let typed = quote::quote!(#ty).to_string().replace(' ', "");
        if typed == "&Self" || typed == "&mutSelf" {
            return true;
        }
        cx.error_spanned_by(
            receiver,
            format!("hook `{name}` must take `&self` or `&mut self`, not `self: {typed}`\n{}", expected(hook)),
        );
        return false;
    }
    match (&receiver.reference, &receiver.mutability, hook.receiver) {
        (None, _, _) => {
            cx.error_spanned_by(
                receiver,
                format!("hook `{name}` cannot take `self` by value: the Trainer keeps the module\n= help: write `&mut self`"),
            );
            false
        }
        (Some(_), None, Receiver::Mut) => {
            cx.error_spanned_by(
                receiver,
                format!(
                    "hook `{name}` must take `&mut self`: it is where the module is changed\n= help: write `&mut self`"
                ),
            );
            false
        }
        _ => true,
    }
}

/// `&mut Ctx` (any path ending in `Ctx`).
pub(crate) fn is_ctx(ty: &Type) -> bool {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => {
            matches!(&*reference.elem, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "Ctx"))
        }
        _ => false,
    }
}

fn passing(ty: &Type) -> Passing {
    match ty {
        Type::Reference(reference) if reference.mutability.is_some() => Passing::RefMut,
        Type::Reference(_) => Passing::Ref,
        _ => Passing::Value,
    }
}

/// Rule: the parameters are the catalogue's, in its order. A trailing run of optional ones may be left out,
/// and the context, when written, is the last parameter. Parameters 2.x removed get an error that says why.
fn params(cx: &mut Ctxt, hook: &Hook, sig: &Signature) -> Option<Vec<UserParam>> {
    let name = hook.name;
    let typed: Vec<&syn::PatType> = sig
        .inputs
        .iter()
        .filter_map(|arg| match arg {
            FnArg::Typed(pat_type) => Some(pat_type),
            FnArg::Receiver(_) => None,
        })
        .collect();
    let mut ok = true;
    let mut out = Vec::with_capacity(typed.len());
    for (position, param) in typed.iter().enumerate() {
        if let Pat::Ident(pat) = &*param.pat {
            let param_name = pat.ident.to_string();
            if let Some((_, why)) = REMOVED_PARAMS.iter().find(|(removed, _)| *removed == param_name) {
                cx.error_spanned_by(&pat.ident, format!("{why}\n{}", expected(hook)));
                ok = false;
                continue;
            }
        }
        if is_ctx(&param.ty) {
            if !hook.takes_ctx {
                cx.error_spanned_by(
                    &param.ty,
                    format!(
                        "hook `{name}` takes no `ctx`: its closure holds the context while it runs\n{}",
                        expected(hook)
                    ),
                );
                ok = false;
            } else if position + 1 != typed.len() {
                cx.error_spanned_by(
                    &param.ty,
                    format!("the context must be the last parameter of `{name}`\n{}", expected(hook)),
                );
                ok = false;
            } else {
                out.push(UserParam { slot: Slot::Ctx, ty: (*param.ty).clone() });
            }
            continue;
        }
        let index = out.iter().filter(|param: &&UserParam| param.slot != Slot::Ctx).count();
        let Some(spec) = hook.params.get(index) else {
            cx.error_spanned_by(
                param,
                format!(
                    "hook `{name}` takes {} parameter{} after `self`, this is one too many\n{}",
                    hook.params.len(),
                    if hook.params.len() == 1 { "" } else { "s" },
                    expected(hook)
                ),
            );
            ok = false;
            break;
        };
        if passing(&param.ty) != spec.ty.passing() {
            let how = match spec.ty.passing() {
                Passing::Value => "by value",
                Passing::Ref => "by shared reference",
                Passing::RefMut => "by mutable reference",
            };
            cx.error_spanned_by(
                &param.ty,
                format!("`{name}` receives `{}` {how}, as `{}`\n{}", spec.name, spec.ty.display(), expected(hook)),
            );
            ok = false;
        }
        out.push(UserParam { slot: Slot::Param(index), ty: (*param.ty).clone() });
    }
    let written = out.iter().filter(|param| param.slot != Slot::Ctx).count();
    if ok && written < hook.required_params() {
        let missing = &hook.params[written];
        cx.push(syn::Error::new(
            parens_span(sig),
            format!(
                "hook `{name}` is missing the parameter `{}: {}`\n{}",
                missing.name,
                missing.ty.display(),
                expected(hook)
            ),
        ));
        ok = false;
    }
    ok.then_some(out)
}

/// `Result<T, ..>` (any path whose last segment is `Result`) split into `T`.
/// The type arguments of a `Result<..>` (any type whose last path segment is `Result`), in order.
fn result_args(ty: &Type) -> Option<impl Iterator<Item = &Type>> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last().filter(|last| last.ident == "Result")?;
    let PathArguments::AngleBracketed(args) = &last.arguments else { return None };
    Some(args.args.iter().filter_map(|arg| if let GenericArgument::Type(ty) = arg { Some(ty) } else { None }))
}

/// `T` of a `Result<T, ..>`.
fn split_result(ty: &Type) -> Option<&Type> {
    result_args(ty)?.next()
}

/// `E` of a `Result<T, E>` written with both arguments.
fn result_error(ty: &Type) -> Option<&Type> {
    result_args(ty)?.nth(1)
}

fn is_unit(ty: &Type) -> bool {
    matches!(ty, Type::Tuple(tuple) if tuple.elems.is_empty())
}

/// Rule: hooks whose return value Lightning ignores return nothing (or `Result<(), E>`); hooks whose return
/// value is the point (`configure_optimizers`, the dataloaders, the batch-transfer hooks, `predict_step`)
/// must declare it. Any hook may return `Result<_, E>` to fail the run with `E`.
fn return_type(cx: &mut Ctxt, hook: &Hook, sig: &Signature) -> Option<RetShape> {
    let name = hook.name;
    let span = output_span(sig);
    let (is_result, ok) = match &sig.output {
        ReturnType::Default => (false, None),
        ReturnType::Type(_, ty) => match split_result(ty) {
            Some(ok) => (true, Some(ok.clone())),
            None => (false, Some((**ty).clone())),
        },
    };
    let ok = ok.filter(|ty| !is_unit(ty));
    let error = match &sig.output {
        ReturnType::Type(_, ty) => result_error(ty),
        ReturnType::Default => None,
    };
    if let Some(unit) = error.filter(|ty| is_unit(ty)) {
        cx.error_spanned_by(
            unit,
            format!("hook `{name}` returns `Result<_, ()>`: `()` carries no error for the Trainer to report\n= help: use an error type that converts into `Box<dyn std::error::Error + Send + Sync>`: `String`, `std::io::Error`, `anyhow::Error`, `lightning::Error`, or your own error type"),
        );
        return None;
    }
    let error_span = error.map(|ty| ty.span());
    match (hook.ret, &ok) {
        (Ret::Unit, Some(ty)) => {
            cx.error_spanned_by(
                ty,
                format!("hook `{name}` returns nothing: its return value would be ignored\n= help: remove the return type, or return `Result<(), E>` to report an error"),
            );
            None
        }
        (
            Ret::Prediction
            | Ret::Batch
            | Ret::Loader
            | Ret::Loaders
            | Ret::Json
            | Ret::Optimizers
            | Ret::Callbacks
            | Ret::ExampleInput,
            None,
        ) => {
            cx.push(syn::Error::new(
                span,
                format!("hook `{name}` must return {}\n{}", hook.ret.meaning(), expected(hook)),
            ));
            None
        }
        _ => Some(RetShape { is_result, ok, span, error_span }),
    }
}
