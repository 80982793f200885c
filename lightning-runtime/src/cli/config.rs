//! The merged configuration of a [`LightningCli`](crate::LightningCli) run, as JSON: the defaults, each
//! `--config` file (TOML or YAML, `format.rs`) over them, then each flag; unknown keys refused with a
//! suggestion; a value of the wrong type traced to its key.

use std::path::Path;

use serde_json::{Map, Value};

use super::format::{parse, ConfigFormat};
use crate::{Error, Result};

/// The top-level keys a config file may hold. `seed_everything` is Lightning's name for the seed; it is read
/// into `trainer.seed` (see `seed_everything`).
pub(crate) const TOP_LEVEL: &[&str] = &["model", "trainer", "ckpt_path", "seed_everything"];

/// `"; did you mean `x`?"` for the known name nearest to `unknown`, when one is near enough.
pub(crate) fn did_you_mean<'a>(unknown: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    known
        .into_iter()
        .map(|name| (strsim::jaro_winkler(unknown, name), name))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| format!("; did you mean `{name}`?"))
        .unwrap_or_default()
}

/// Checks `layer`'s keys against `defaults` (the same shape), one level into the `model` and `trainer` sections
/// (deeper keys of the module's own types are serde's to check).
fn check_keys(layer: &Value, defaults: &Value, source: &str) -> Result<()> {
    let Value::Object(top) = layer else {
        return Err(Error::Config(format!("{source}: expected a table of settings at the top level")));
    };
    for (key, value) in top {
        if !TOP_LEVEL.contains(&key.as_str()) {
            return Err(Error::Config(format!(
                "{source}: unknown key `{key}` (the top-level keys are {TOP_LEVEL:?}){}",
                did_you_mean(key, TOP_LEVEL.iter().copied())
            )));
        }
        let (Value::Object(section), Some(Value::Object(known))) = (value, defaults.get(key)) else { continue };
        for name in section.keys() {
            if !known.contains_key(name) {
                let mut names: Vec<&str> = known.keys().map(String::as_str).collect();
                names.sort_unstable();
                return Err(Error::Config(format!(
                    "{source}: unknown key `{key}.{name}`{}\n(the keys of `{key}` are: {})",
                    did_you_mean(name, names.iter().copied()),
                    names.join(", ")
                )));
            }
        }
    }
    Ok(())
}

/// Sets `over`'s values into `base`, tables merged key by key.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(slot) if slot.is_object() && value.is_object() => merge(slot, value),
                    _ => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// Reads a config file (YAML for `.yaml`/`.yml`, else TOML) and merges it into `config`, refusing keys
/// `defaults` does not have.
pub(crate) fn merge_file(config: &mut Value, defaults: &Value, path: &Path) -> Result<()> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read the config file {source}: {e}")))?;
    let mut layer = parse(&text, ConfigFormat::of_path(path), &source)?;
    check_keys(&layer, defaults, &source)?;
    seed_everything(&mut layer, &source)?;
    merge(config, layer);
    Ok(())
}

/// Lightning's top-level `seed_everything` as our `trainer.seed`: an integer is the seed; `true` (Lightning's
/// default: a random seed) and `false` unset it, since a run without a seed draws one and records it anyway.
fn seed_everything(layer: &mut Value, source: &str) -> Result<()> {
    let Some(value) = layer.as_object_mut().and_then(|top| top.remove("seed_everything")) else { return Ok(()) };
    let seed = match value {
        Value::Number(n) if n.is_u64() => Value::Number(n),
        Value::Bool(_) | Value::Null => Value::Null,
        other => {
            return Err(Error::Config(format!(
                "{source}: seed_everything = {other}: expected a non-negative integer, true or false"
            )))
        }
    };
    if let Some(given) = layer.get("trainer").and_then(|t| t.get("seed")) {
        if *given != seed {
            return Err(Error::Config(format!(
                "{source}: seed_everything = {seed} and trainer.seed = {given} disagree: give one of them"
            )));
        }
    }
    set(layer, Some("trainer"), "seed", seed);
    Ok(())
}

/// The first key of `section` whose merged value `fits` refuses, with the error: found by putting each value
/// alone into the section's defaults (which fit), so that a type error names its key whatever the type's
/// deserializer says. `None` when no single value is to blame.
pub(crate) fn blame<E: std::fmt::Display>(
    merged: &Value,
    defaults: &Value,
    fits: impl Fn(Value) -> std::result::Result<(), E>,
) -> Option<(String, Value, String)> {
    let (Value::Object(merged), Value::Object(defaults)) = (merged, defaults) else { return None };
    merged.iter().find_map(|(key, value)| {
        let mut alone = defaults.clone();
        alone.insert(key.clone(), value.clone());
        fits(Value::Object(alone)).err().map(|e| (key.clone(), value.clone(), e.to_string()))
    })
}

/// The value a `--section.key text` flag sets: read as the default's type (text stays text where the default
/// is text), else as a TOML value (`3`, `0.5`, `true`, `[1, 2]`), else as text; `null` unsets an option.
pub(crate) fn flag_value(text: &str, default: Option<&Value>) -> Value {
    if text == "null" {
        return Value::Null;
    }
    if let Some(Value::String(_)) = default {
        return Value::String(text.to_string());
    }
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        // `inf` and `nan`, alone or inside a list or table, keep the flag as text (JSON has no such numbers and
        // would unset the value): the option's type then refuses it by name.
        Ok(table) if table.get("v").is_some_and(|v| super::format::non_finite_toml(v, String::new()).is_some()) => {
            Value::String(text.to_string())
        }
        Ok(mut table) => table.remove("v").and_then(|v| serde_json::to_value(v).ok()).unwrap_or(Value::Null),
        Err(_) => Value::String(text.to_string()),
    }
}

/// Sets `section.key` in `config`.
pub(crate) fn set(config: &mut Value, section: Option<&str>, key: &str, value: Value) {
    let Value::Object(top) = config else { return };
    match section {
        None => {
            top.insert(key.to_string(), value);
        }
        Some(section) => {
            let slot = top.entry(section.to_string()).or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(table) = slot {
                table.insert(key.to_string(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flags_take_the_defaults_type() {
        assert_eq!(flag_value("3", Some(&json!(1))), json!(3));
        assert_eq!(flag_value("0.5", Some(&Value::Null)), json!(0.5));
        assert_eq!(flag_value("32", Some(&json!("32-true"))), json!("32"));
        assert_eq!(flag_value("cpu", None), json!("cpu"));
        assert_eq!(flag_value("[1, 2]", Some(&json!([]))), json!([1, 2]));
        assert_eq!(flag_value("null", Some(&json!(1))), Value::Null);
        assert_eq!(flag_value("inf", Some(&Value::Null)), json!("inf"));
        assert_eq!(flag_value("[1.0, inf]", Some(&json!([]))), json!("[1.0, inf]"));
        assert_eq!(flag_value("{a = nan}", Some(&Value::Null)), json!("{a = nan}"));
    }

    #[test]
    fn printed_config_reads_back() {
        let config = json!({"ckpt_path": null, "model": {"lr": 0.1, "sizes": [4, 8], "name": "a b"}, "trainer": {"max_epochs": 3, "max_steps": null, "limit_val_batches": 1.0}});
        let text = super::super::format::to_toml(&config).unwrap();
        let back: toml::Table = toml::from_str(&text).unwrap();
        let mut back = serde_json::to_value(back).unwrap();
        // Unset values come back absent: the defaults fill them.
        merge(&mut back, json!({}));
        assert_eq!(back["model"], config["model"]);
        assert_eq!(back["trainer"]["limit_val_batches"], json!(1.0));
        assert!(text.contains("# max_steps = (unset)"), "{text}");
    }

    #[test]
    fn suggestions_need_a_near_name() {
        assert_eq!(did_you_mean("max_epoch", ["max_epochs", "max_steps"]), "; did you mean `max_epochs`?");
        assert_eq!(did_you_mean("zzz", ["max_epochs"]), "");
    }
}
