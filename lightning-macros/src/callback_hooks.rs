//! The hooks only callbacks have, the second half of the hook catalogue: listed in `HOOKS.md`, and the source
//! of the `HookInfo` the runtime records while they run (`table.rs`).

/// A hook only callbacks have: the module has no hook of that name. The runtime's `Callback` trait declares it
/// with this signature; logging is not allowed in it.
pub struct CallbackHook {
    pub name: &'static str,
    /// The `Callback` trait method, as the docs print it (read by the docs generator, `docs.rs`).
    #[cfg_attr(not(test), allow(dead_code))]
    pub signature: &'static str,
    /// When the runtime calls it.
    #[cfg_attr(not(test), allow(dead_code))]
    pub when: &'static str,
}

/// Every callback-only hook (Lightning's `Callback` hooks that `LightningModule` does not have).
pub const CALLBACK_ONLY: &[CallbackHook] = &[
    CallbackHook {
        name: "on_sanity_check_start",
        signature: "fn on_sanity_check_start(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult",
        when: "`fit`, before the sanity check's validation run",
    },
    CallbackHook {
        name: "on_sanity_check_end",
        signature: "fn on_sanity_check_end(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule) -> CallbackResult",
        when: "`fit`, after the sanity check's validation run",
    },
    CallbackHook {
        name: "on_exception",
        signature: "fn on_exception(&mut self, ctx: &mut Ctx, module: &mut dyn AnyModule, error: &Error) -> CallbackResult",
        when: "when an entry point fails (an error, a panic, Ctrl-C or SIGTERM), before the teardown hooks",
    },
    CallbackHook {
        name: "state_dict",
        signature: "fn state_dict(&self) -> Option<serde_json::Value>",
        when: "when a checkpoint is taken, before every `on_save_checkpoint`; saved under the callback's `state_key`",
    },
    CallbackHook {
        name: "load_state_dict",
        signature: "fn load_state_dict(&mut self, state: serde_json::Value) -> CallbackResult",
        when: "when `fit` resumes, after every callback's `on_load_checkpoint`, with the state saved under its `state_key`",
    },
];
