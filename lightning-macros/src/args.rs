//! The attribute's arguments:
//! `#[lightning_module(batch = Type, crate = path, var_store = field, hparams = field, manual_optimization)]`.

use proc_macro2::{Span, TokenStream};
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{Ident, Member, Path, Token, Type};

use crate::ctxt::Ctxt;

pub struct Args {
    /// The path the generated code names runtime items through (`::lightning` unless `crate = path`).
    pub krate: Path,
    /// The batch type, when declared.
    pub batch: Option<Type>,
    /// The field that holds the `VarStore` (`vs` unless `var_store = field`).
    pub var_store: Option<Member>,
    /// `manual_optimization`: the module steps its own optimizers.
    pub manual_optimization: bool,
    /// `hparams = field`: the field whose value (serde-serializable) checkpoints keep as hyper-parameters.
    pub hparams: Option<Member>,
}

/// The arguments written as `key` or `key = value` (`crate` is a keyword and parsed apart).
const KEYS: &[&str] = &["batch", "var_store", "hparams", "manual_optimization"];

/// What the attribute takes, for the messages.
const TAKES: &str =
    "= help: `#[lightning_module]` takes `batch = Type`, `crate = path`, `var_store = field`, `hparams = field` and `manual_optimization`";

enum Arg {
    Crate(Path),
    Batch(Type),
    VarStore(Member),
    ManualOptimization,
    Hparams(Member),
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.peek(Token![crate]) {
            input.parse::<Token![crate]>()?;
            input.parse::<Token![=]>()?;
            return Ok(Arg::Crate(input.call(Path::parse_mod_style)?));
        }
        let key: Ident = input.parse()?;
        let name = key.to_string();
        if !KEYS.contains(&name.as_str()) {
            // Said before anything else is parsed, so that `manual_optimisation` is not reported as a missing `=`.
            let close = KEYS.iter().copied().min_by_key(|known| strsim::damerau_levenshtein(&name, known));
            let guess = close
                .filter(|known| strsim::damerau_levenshtein(&name, known) <= (name.len() / 4).max(1))
                .map(|known| format!("\n= help: did you mean `{known}`?"))
                .unwrap_or_default();
            return Err(syn::Error::new(key.span(), format!("unknown argument `{name}`{guess}\n{TAKES}")));
        }
        if name == "manual_optimization" {
            if input.peek(Token![=]) {
                return Err(syn::Error::new(
                    key.span(),
                    "`manual_optimization` is a flag and takes no value\n= help: write `#[lightning_module(manual_optimization)]`; leave it out for automatic optimization",
                ));
            }
            return Ok(Arg::ManualOptimization);
        }
        if !input.peek(Token![=]) {
            return Err(syn::Error::new(key.span(), format!("`{name}` takes a value\n{TAKES}")));
        }
        input.parse::<Token![=]>()?;
        match name.as_str() {
            "batch" => Ok(Arg::Batch(input.parse()?)),
            "var_store" => Ok(Arg::VarStore(input.parse()?)),
            _ => Ok(Arg::Hparams(input.parse()?)),
        }
    }
}

impl Args {
    pub fn parse(cx: &mut Ctxt, tokens: TokenStream) -> Args {
        let mut args = Args {
            krate: syn::parse_quote!(::lightning),
            batch: None,
            var_store: None,
            manual_optimization: false,
            hparams: None,
        };
        let parsed = syn::parse::Parser::parse2(Punctuated::<Arg, Token![,]>::parse_terminated, tokens);
        match parsed {
            Ok(list) => {
                for arg in list {
                    match arg {
                        Arg::Crate(path) => args.krate = path,
                        Arg::Batch(ty) => args.batch = Some(ty),
                        Arg::VarStore(member) => args.var_store = Some(member),
                        Arg::ManualOptimization => args.manual_optimization = true,
                        Arg::Hparams(member) => args.hparams = Some(member),
                    }
                }
            }
            Err(error) => cx.push(error),
        }
        args
    }

    /// `<crate>::__private`, the one path generated code names runtime items through.
    pub fn private(&self) -> TokenStream {
        let krate = &self.krate;
        quote!(#krate::__private)
    }

    /// The `VarStore` field, spanned on `span` when it is the default.
    pub fn var_store_field(&self, span: Span) -> Member {
        self.var_store.clone().unwrap_or_else(|| Member::Named(Ident::new("vs", span)))
    }
}
