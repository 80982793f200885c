//! The rustdoc hook table (`HOOKS.md`), generated from the catalogue. A test keeps the file in step with it.

use crate::callback_hooks::CALLBACK_ONLY;
use crate::catalogue::{Group, Log, HOOKS};
use crate::not_hooks::REMOVED;

/// The Markdown of the hook table.
pub fn hook_table() -> String {
    let mut out = String::new();
    for group in Group::ALL {
        out.push_str(&format!(
            "### {}\n\n| hook | when it runs | signature | return value | `ctx.log` |\n|---|---|---|---|---|\n",
            group.title()
        ));
        for hook in HOOKS.iter().filter(|hook| hook.group == group) {
            let mut when = hook.when.to_string();
            if let Some(note) = hook.deprecated {
                when.push_str(&format!(" ({note})"));
            }
            let log = match hook.log {
                Log::Never => "not allowed",
                Log::StepDefault => "per step (default) or epoch",
                Log::EpochDefault => "per epoch (default) or step",
                Log::EpochOnly => "per epoch only",
            };
            out.push_str(&format!(
                "| `{}` | {} | `{}` | {} | {} |\n",
                hook.name,
                when,
                hook.signature().replace('|', "\\|"),
                hook.ret.meaning(),
                log
            ));
        }
        out.push('\n');
    }
    out.push_str("### Callback-only hooks\n\nHooks of `Callback` that a module does not have (every other callback hook has the module hook's name and runs just before it). Logging is not allowed in them.\n\n| hook | when it runs | `Callback` method |\n|---|---|---|\n");
    for hook in CALLBACK_ONLY {
        out.push_str(&format!("| `{}` | {} | `{}` |\n", hook.name, hook.when, hook.signature));
    }
    out.push('\n');
    out.push_str("### Removed in Lightning 2.x\n\nDefining one of these is an error that names its replacement.\n\n| 1.x name | what to do |\n|---|---|\n");
    for (name, why) in REMOVED {
        out.push_str(&format!("| `{name}` | {why} |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    /// `HOOKS.md` is what the catalogue says; `LIGHTNING_BLESS=1 cargo test` rewrites it.
    #[test]
    fn hooks_md_matches_the_catalogue() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/HOOKS.md");
        let generated = super::hook_table();
        if std::env::var_os("LIGHTNING_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == generated,
            "HOOKS.md is out of date: run `LIGHTNING_BLESS=1 cargo test -p lightning-macros`"
        );
    }
}
