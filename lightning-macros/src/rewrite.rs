//! `Self::Batch` and `Self::Prediction` as the hook reference prints them: in an inherent `impl` block rustc
//! cannot tell whose associated type they are (E0223), so they are written out in full,
//! `<Self as LightningModule>::Batch`, before anything else reads the block.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::visit_mut::VisitMut;
use syn::{ItemImpl, Type};

/// Rewrites every `Self::Batch` and `Self::Prediction` of the block; the first `Self::Batch` as written.
pub fn self_associated_types(item: &mut ItemImpl, private: &TokenStream) -> Option<TokenStream> {
    let mut rewriter = Rewriter { private, first_batch: None };
    rewriter.visit_item_impl_mut(item);
    rewriter.first_batch
}

/// Whether `ty` is one of the rewritten types (`<Self as ..>::Name`): no batch type can be read off it.
pub fn is_rewritten(ty: &Type) -> bool {
    matches!(ty, Type::Path(path) if path.qself.as_ref().is_some_and(|qself| matches!(&*qself.ty, Type::Path(p) if p.path.is_ident("Self"))))
}

struct Rewriter<'p> {
    private: &'p TokenStream,
    first_batch: Option<TokenStream>,
}

impl VisitMut for Rewriter<'_> {
    // In a nested item (an `impl` inside a method body, say), `Self` is another type.
    fn visit_item_mut(&mut self, _: &mut syn::Item) {}

    fn visit_type_mut(&mut self, ty: &mut Type) {
        if let Type::Path(path) = ty {
            let segments = &path.path.segments;
            let plain = path.qself.is_none()
                && path.path.leading_colon.is_none()
                && segments.len() == 2
                && segments[0].ident == "Self"
                && segments.iter().all(|segment| segment.arguments.is_none());
            let name = segments.last().map(|segment| segment.ident.clone());
            if let (true, Some(name)) = (plain, name) {
                if name == "Batch" || name == "Prediction" {
                    if name == "Batch" && self.first_batch.is_none() {
                        self.first_batch = Some(ty.to_token_stream());
                    }
                    let private = self.private;
                    let span = ty.span();
                    *ty = syn::parse_quote_spanned!(span=> <Self as #private::LightningModule>::#name);
                    return;
                }
            }
        }
        syn::visit_mut::visit_type_mut(self, ty);
    }
}
