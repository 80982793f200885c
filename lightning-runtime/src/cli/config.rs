//! The merged configuration of a [`LightningCli`](crate::LightningCli) run, as JSON: the defaults, each
//! `--config` file over them, then each flag; unknown keys refused with a suggestion; the result printed back
//! as TOML.

use std::path::Path;

use serde_json::{Map, Value};

use crate::{Error, Result};

/// The top-level keys besides the `model` and `trainer` sections.
pub(crate) const TOP_LEVEL: &[&str] = &["model", "trainer", "ckpt_path"];

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

/// Reads a TOML config file and merges it into `config`, refusing keys `defaults` does not have.
pub(crate) fn merge_file(config: &mut Value, defaults: &Value, path: &Path) -> Result<()> {
    let source = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("cannot read the config file {source}: {e}")))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| Error::Config(format!("the config file {source} is not valid TOML: {e}")))?;
    let layer = serde_json::to_value(table)
        .map_err(|e| Error::Config(format!("the config file {source} holds a value JSON cannot hold: {e}")))?;
    check_keys(&layer, defaults, &source)?;
    merge(config, layer);
    Ok(())
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

/// One TOML `key = value` line; an unset (`null`) value is a commented line, so that every option shows and the
/// text still reads back to the same configuration.
fn line(key: &str, value: &Value) -> Result<String> {
    let key_text = toml::Value::String(key.to_string()).to_string();
    let key_text = if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') { key } else { &key_text };
    if value.is_null() {
        return Ok(format!("# {key_text} = (unset)\n"));
    }
    let value =
        toml::Value::try_from(value).map_err(|e| Error::Config(format!("`{key}` cannot be written as TOML: {e}")))?;
    Ok(format!("{key_text} = {value}\n"))
}

/// The configuration as a TOML file: top-level keys, then `[model]` and `[trainer]` (nested tables of the
/// module's hyper-parameters as inline tables).
pub(crate) fn to_toml(config: &Value) -> Result<String> {
    let mut out = String::new();
    let Value::Object(top) = config else { return Ok(out) };
    for (key, value) in top.iter().filter(|(k, _)| !matches!(k.as_str(), "model" | "trainer")) {
        out.push_str(&line(key, value)?);
    }
    for section in ["model", "trainer"] {
        match top.get(section) {
            Some(Value::Object(table)) => {
                out.push_str(&format!("\n[{section}]\n"));
                for (key, value) in table {
                    out.push_str(&line(key, value)?);
                }
            }
            Some(value) => out.push_str(&line(section, value)?),
            None => {}
        }
    }
    Ok(out)
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
    }

    #[test]
    fn printed_config_reads_back() {
        let config = json!({"ckpt_path": null, "model": {"lr": 0.1, "sizes": [4, 8], "name": "a b"}, "trainer": {"max_epochs": 3, "max_steps": null, "limit_val_batches": 1.0}});
        let text = to_toml(&config).unwrap();
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
