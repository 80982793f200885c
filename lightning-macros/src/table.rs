//! `__hook_table!()`: the runtime's `HookTable` struct, one field per catalogue hook.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::callback_hooks::CALLBACK_ONLY;
use crate::catalogue::{Log, HOOKS};
use crate::types;

pub fn expand() -> TokenStream {
    let p = quote!(crate::__private);
    let m = quote!(M);
    let names: Vec<_> = HOOKS.iter().map(|hook| format_ident!("{}", hook.name)).collect();
    let name_strs: Vec<_> = HOOKS.iter().map(|hook| hook.name).collect();
    let count = HOOKS.len();
    let fields = HOOKS.iter().zip(&names).map(|(hook, name)| {
        let pointer = types::fn_pointer(hook, &p, &m);
        let doc = format!("`{}`: {}.", hook.signature(), hook.when);
        quote! {
            #[doc = #doc]
            pub #name: ::core::option::Option<#pointer>,
        }
    });
    let infos = HOOKS.iter().zip(&names).map(|(hook, name)| {
        let name_str = hook.name;
        let rule = match hook.log {
            Log::Never => quote!(LogRule::Never),
            Log::StepDefault => quote!(LogRule::StepDefault),
            Log::EpochDefault => quote!(LogRule::EpochDefault),
            Log::EpochOnly => quote!(LogRule::EpochOnly),
        };
        quote!(pub const #name: HookInfo = HookInfo { name: #name_str, log: #rule };)
    });
    let callback_infos = CALLBACK_ONLY.iter().map(|hook| {
        let (name, name_str) = (format_ident!("{}", hook.name), hook.name);
        quote!(pub const #name: HookInfo = HookInfo { name: #name_str, log: LogRule::Never };)
    });
    quote! {
        /// The hooks a module defines, as plain function pointers: `None` where the module does not define
        /// one, so the runtime pays nothing for absent hooks. `#[lightning_module]` fills it in; each field is
        /// one hook of the catalogue (see the hook table in the docs of `#[lightning_module]`).
        pub struct HookTable<M: LightningModule> {
            #(#fields)*
        }

        impl<M: LightningModule> HookTable<M> {
            /// The table of a module that defines no hook.
            pub const EMPTY: Self = HookTable { #(#names: ::core::option::Option::None,)* };

            /// The names of the hooks defined, in the catalogue's order.
            pub fn defined(&self) -> ::std::vec::Vec<&'static str> {
                let mut defined = ::std::vec::Vec::new();
                #(if self.#names.is_some() { defined.push(#name_strs); })*
                defined
            }
        }

        /// Every hook a `#[lightning_module]` may define, in the catalogue's order.
        pub const HOOK_NAMES: [&str; #count] = [#(#name_strs),*];

        /// What the runtime knows of each hook while it runs: its name and where it may log.
        #[allow(non_upper_case_globals)]
        pub mod hook_info {
            use crate::context::{HookInfo, LogRule};
            #(#infos)*
            /// The callback-only hooks.
            pub mod callback {
                use crate::context::{HookInfo, LogRule};
                #(#callback_infos)*
            }
        }
    }
}

/// `__datamodule_hook_table!()`: the runtime's `DataHookTable` struct, one field per data-module hook, and what
/// the runtime knows of each while it runs.
pub fn expand_datamodule() -> TokenStream {
    let p = quote!(crate::__private::datamodule);
    let d = quote!(D);
    let hooks: Vec<_> = crate::datamodule_catalogue::hooks().collect();
    let names: Vec<_> = hooks.iter().map(|hook| format_ident!("{}", hook.name)).collect();
    let name_strs: Vec<_> = hooks.iter().map(|hook| hook.name).collect();
    let fields = hooks.iter().zip(&names).map(|(hook, name)| {
        let pointer = types::fn_pointer(hook, &p, &d);
        let doc = format!("`{}`: {}.", hook.signature(), hook.when);
        quote! {
            #[doc = #doc]
            pub #name: ::core::option::Option<#pointer>,
        }
    });
    let infos = hooks.iter().zip(&names).map(|(hook, name)| {
        let full = format!("LightningDataModule.{}", hook.name);
        quote!(pub const #name: HookInfo = HookInfo { name: #full, log: LogRule::Never };)
    });
    quote! {
        /// The hooks a data module defines, as plain function pointers: `None` where it does not define one.
        /// `#[lightning_datamodule]` fills it in.
        pub struct DataHookTable<D: LightningDataModule> {
            #(#fields)*
        }

        impl<D: LightningDataModule> DataHookTable<D> {
            /// The table of a data module that defines no hook.
            pub const EMPTY: Self = DataHookTable { #(#names: ::core::option::Option::None,)* };

            /// The names of the hooks defined, in the catalogue's order.
            pub fn defined(&self) -> ::std::vec::Vec<&'static str> {
                let mut defined = ::std::vec::Vec::new();
                #(if self.#names.is_some() { defined.push(#name_strs); })*
                defined
            }
        }

        /// What the runtime knows of each data-module hook while it runs: its name (`LightningDataModule.setup`)
        /// and that it may not log.
        #[allow(non_upper_case_globals)]
        pub mod datamodule_hook_info {
            use crate::context::{HookInfo, LogRule};
            #(#infos)*
        }
    }
}
