//! The names a module logs, read off its `impl` block, so that the Trainer can say before the first training step
//! that a callback monitors a metric the module never logs (Lightning finds out when the callback first looks).
//!
//! Known only when every way the block could log is visible: each `ctx.log(..)` names its metric with a string
//! literal, each `ctx.log_dict(..)` is a literal list of `("name", value)` pairs, and the context is never handed
//! to anything but the block's own methods (which are read too). Anything else (a name in a variable, the context
//! passed to a free function, a macro the reading cannot see into) makes the set unknown, and the check is left
//! to run time.

use std::collections::BTreeSet;

use syn::visit::Visit;
use syn::{Expr, FnArg, Ident, ImplItem, ItemImpl, Lit, Pat};

/// The names every log call of the block uses, or `None` when they cannot all be known.
pub fn logged_names(item: &ItemImpl) -> Option<Vec<String>> {
    let methods: Vec<&syn::ImplItemFn> = item
        .items
        .iter()
        .filter_map(|item| match item {
            ImplItem::Fn(method) => Some(method),
            _ => None,
        })
        .collect();
    // The block's methods that take the context: the ones a context may be handed to.
    let takes_ctx: BTreeSet<String> =
        methods.iter().filter(|m| ctx_param(m).is_some()).map(|m| m.sig.ident.to_string()).collect();
    let mut names = BTreeSet::new();
    for method in &methods {
        let Some(ctx) = ctx_param(method) else {
            continue;
        };
        let mut reader = Reader { ctx, takes_ctx: &takes_ctx, names: &mut names, unknown: false };
        reader.visit_block(&method.block);
        if reader.unknown {
            return None;
        }
    }
    Some(names.into_iter().collect())
}

/// The name of the method's `&mut Ctx` parameter.
fn ctx_param(method: &syn::ImplItemFn) -> Option<Ident> {
    method.sig.inputs.iter().find_map(|arg| match arg {
        FnArg::Typed(pat_type) if crate::check::is_ctx(&pat_type.ty) => match &*pat_type.pat {
            Pat::Ident(pat) => Some(pat.ident.clone()),
            _ => None,
        },
        _ => None,
    })
}

struct Reader<'a> {
    ctx: Ident,
    takes_ctx: &'a BTreeSet<String>,
    names: &'a mut BTreeSet<String>,
    unknown: bool,
}

impl Reader<'_> {
    fn is_ctx(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Path(path) => path.path.is_ident(&self.ctx),
            Expr::Reference(reference) => self.is_ctx(&reference.expr),
            Expr::Paren(paren) => self.is_ctx(&paren.expr),
            _ => false,
        }
    }

    /// The literal first element of a `("name", value)` pair.
    fn pair_name(expr: &Expr) -> Option<String> {
        match expr {
            Expr::Tuple(tuple) if tuple.elems.len() == 2 => literal(&tuple.elems[0]),
            _ => None,
        }
    }

    /// The names of `log_dict`'s argument, when it is a literal list of literal pairs.
    fn dict_names(expr: &Expr) -> Option<Vec<String>> {
        let elems: Vec<Expr> = match expr {
            Expr::Array(array) => array.elems.iter().cloned().collect(),
            Expr::Reference(reference) => return Self::dict_names(&reference.expr),
            Expr::Macro(mac) if mac.mac.path.is_ident("vec") => {
                let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
                syn::parse::Parser::parse2(parser, mac.mac.tokens.clone()).ok()?.into_iter().collect()
            }
            _ => return None,
        };
        elems.iter().map(Self::pair_name).collect()
    }
}

/// A string literal's value (a `&str`, or `"..".to_string()` / `String::from("..")` of one).
fn literal(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Lit(lit) => match &lit.lit {
            Lit::Str(s) => Some(s.value()),
            _ => None,
        },
        Expr::Reference(reference) => literal(&reference.expr),
        Expr::MethodCall(call) if call.args.is_empty() && (call.method == "to_string" || call.method == "into") => {
            literal(&call.receiver)
        }
        Expr::Call(call) if call.args.len() == 1 => match &*call.func {
            Expr::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == "from") => literal(&call.args[0]),
            _ => None,
        },
        _ => None,
    }
}

impl<'ast> Visit<'ast> for Reader<'_> {
    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        if self.is_ctx(&call.receiver) {
            match call.method.to_string().as_str() {
                "log" => match call.args.first().and_then(literal) {
                    Some(name) => {
                        self.names.insert(name);
                    }
                    None => self.unknown = true,
                },
                "log_dict" => match call.args.first().and_then(Self::dict_names) {
                    Some(names) => self.names.extend(names),
                    None => self.unknown = true,
                },
                _ => {}
            }
            // The receiver is the context itself: not handed on. The arguments are read as any expression.
            for arg in &call.args {
                self.visit_expr(arg);
            }
            return;
        }
        let on_self = matches!(&*call.receiver, Expr::Path(p) if p.path.is_ident("self"));
        let to_block_method = on_self && self.takes_ctx.contains(&call.method.to_string());
        self.visit_expr(&call.receiver);
        for arg in &call.args {
            // The context handed to another method of the block is fine: that method is read too.
            if !(to_block_method && self.is_ctx(arg)) {
                self.visit_expr(arg);
            }
        }
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        // `Self::helper(self, .., ctx)`: a method of the block, read too.
        let to_block_method = match &*call.func {
            Expr::Path(path) => {
                let segments: Vec<String> = path.path.segments.iter().map(|s| s.ident.to_string()).collect();
                segments.len() == 2 && segments[0] == "Self" && self.takes_ctx.contains(&segments[1])
            }
            _ => false,
        };
        self.visit_expr(&call.func);
        for arg in &call.args {
            if !(to_block_method && self.is_ctx(arg)) {
                self.visit_expr(arg);
            }
        }
    }

    fn visit_expr_path(&mut self, path: &'ast syn::ExprPath) {
        // The context anywhere else (a free function's argument, a variable, a closure's capture): it may log
        // under names this reading cannot see.
        if path.path.is_ident(&self.ctx) {
            self.unknown = true;
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        // Read macros whose arguments are expressions (`println!`, `assert!`, ...); one that mentions the context
        // in any other form could log unseen.
        let mentions_ctx = mac.tokens.clone().into_iter().any(|token| token_mentions(&token, &self.ctx));
        if !mentions_ctx {
            return;
        }
        let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        match syn::parse::Parser::parse2(parser, mac.tokens.clone()) {
            Ok(exprs) => exprs.iter().for_each(|expr| self.visit_expr(expr)),
            Err(_) => self.unknown = true,
        }
    }

    fn visit_pat_ident(&mut self, pat: &'ast syn::PatIdent) {
        // The context's name bound again: what is logged through it cannot be told apart.
        if pat.ident == self.ctx {
            self.unknown = true;
        }
    }

    // A nested item has its own scope: a `ctx` there is not the method's.
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn token_mentions(token: &proc_macro2::TokenTree, ident: &Ident) -> bool {
    match token {
        proc_macro2::TokenTree::Ident(found) => found == ident,
        proc_macro2::TokenTree::Group(group) => group.stream().into_iter().any(|t| token_mentions(&t, ident)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::logged_names;

    fn names(block: proc_macro2::TokenStream) -> Option<Vec<String>> {
        logged_names(&syn::parse2(block).unwrap())
    }

    #[test]
    fn literal_names_are_read_and_anything_else_is_unknown() {
        let known = names(quote::quote! {
            impl M {
                fn training_step(&mut self, b: &Tensor, ctx: &mut Ctx) -> Tensor {
                    ctx.log("train_loss", 1.0).prog_bar(true);
                    self.helper(ctx);
                    Self::other(self, ctx);
                    println!("{}", ctx.current_epoch());
                    ctx.log_dict(vec![("a".to_string(), 1.0)]);
                    b.sum()
                }
                fn helper(&mut self, ctx: &mut Ctx) { ctx.log_dict([("acc", 1.0), ("f1", 2.0)]); }
                fn other(&mut self, c: &mut lightning::Ctx) { c.log(String::from("other"), 3.0); }
                fn no_ctx(&self) {}
            }
        });
        assert_eq!(known.unwrap(), ["a", "acc", "f1", "other", "train_loss"]);
        for unknown in [
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { let n = "x"; ctx.log(n, 1.0); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { ctx.log(&format!("x{}", 1), 1.0); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { free_helper(ctx); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { ctx.log_dict(self.metrics()); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { my_macro!(ctx => "x"); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { let c = ctx; c.log("x", 1.0); } }),
            quote::quote!(impl M { fn f(&mut self, ctx: &mut Ctx) { self.outside(ctx); } }),
        ] {
            assert_eq!(names(unknown.clone()), None, "{unknown}");
        }
    }
}
