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
        if key == "manual_optimization" {
            return Ok(Arg::ManualOptimization);
        }
        input.parse::<Token![=]>()?;
        match key.to_string().as_str() {
            "batch" => Ok(Arg::Batch(input.parse()?)),
            "var_store" => Ok(Arg::VarStore(input.parse()?)),
            "hparams" => Ok(Arg::Hparams(input.parse()?)),
            other => Err(syn::Error::new(
                key.span(),
                format!(
                    "unknown argument `{other}`\n= help: `#[lightning_module]` takes `batch = Type`, `crate = path`, `var_store = field`, `hparams = field` and `manual_optimization`"
                ),
            )),
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
