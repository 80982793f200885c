//! The two config file formats of [`LightningCli`](crate::LightningCli): TOML and YAML (Lightning's), read into
//! the JSON value the configuration is merged in, and printed back from it.

use std::path::Path;

use serde_json::Value;

use crate::{Error, Result};

/// A config file's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum ConfigFormat {
    /// TOML: `[trainer]` tables (the default).
    #[default]
    Toml,
    /// YAML, as Lightning's `LightningCLI` reads and prints: `trainer:` mappings.
    Yaml,
}

impl ConfigFormat {
    /// The format a file's name says: `.yaml` and `.yml` are YAML, anything else is TOML (as before YAML existed).
    pub(crate) fn of_path(path: &Path) -> ConfigFormat {
        let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("yaml" | "yml") => ConfigFormat::Yaml,
            _ => ConfigFormat::Toml,
        }
    }

    /// `toml`, `yaml` or `yml`, as `--print-config=FORMAT` takes them.
    pub(crate) fn named(name: &str) -> Option<ConfigFormat> {
        match name {
            "toml" => Some(ConfigFormat::Toml),
            "yaml" | "yml" => Some(ConfigFormat::Yaml),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ConfigFormat::Toml => "TOML",
            ConfigFormat::Yaml => "YAML",
        }
    }
}

/// A config file's text as a JSON value; a syntax error names the file (`source`) and the format. A `model:` or
/// `trainer:` section with nothing in it (every key commented out) sets nothing, and YAML's `<<:` merge keys are
/// applied. A number JSON cannot hold (`nan`, `inf`) is refused, naming its key: JSON would turn it into an
/// unset value without a word.
pub(crate) fn parse(text: &str, format: ConfigFormat, source: &str) -> Result<Value> {
    let invalid = |e: &dyn std::fmt::Display| {
        Error::Config(format!("the config file {source} is not valid {}: {e}", format.name()))
    };
    let non_finite = |key: String| {
        Error::Config(format!(
            "the config file {source} sets `{key}` to a number that is not finite (nan or inf): a configuration \
             holds finite numbers only"
        ))
    };
    let value = match format {
        ConfigFormat::Toml => {
            let table: toml::Table = toml::from_str(text).map_err(|e| invalid(&e))?;
            if let Some(key) = non_finite_toml(&toml::Value::Table(table.clone()), String::new()) {
                return Err(non_finite(key));
            }
            serde_json::to_value(table)
        }
        ConfigFormat::Yaml => {
            // Read through YAML's own value first: its errors carry the line and column, and a mapping key that is
            // not text (`1: x`) is refused here rather than by JSON with a vaguer message.
            let mut yaml: serde_yaml_ng::Value = serde_yaml_ng::from_str(text).map_err(|e| invalid(&e))?;
            resolve_merges(&mut yaml).map_err(|e| invalid(&e))?;
            if let serde_yaml_ng::Value::Null = yaml {
                // An empty file (or one of comments only) sets nothing, as an empty TOML file does.
                return Ok(Value::Object(Default::default()));
            }
            if let Some(key) = non_finite_yaml(&yaml, String::new()) {
                return Err(non_finite(key));
            }
            serde_json::to_value(yaml)
        }
    };
    let mut value =
        value.map_err(|e| Error::Config(format!("the config file {source} holds a value JSON cannot hold: {e}")))?;
    if let Value::Object(top) = &mut value {
        for section in ["model", "trainer"] {
            if let Some(slot @ Value::Null) = top.get_mut(section) {
                *slot = Value::Object(Default::default());
            }
        }
    }
    Ok(value)
}

/// `parent.key`, or `key` at the top level.
fn dotted(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// The dotted key of the first non-finite float in a TOML value (`[i]` for list items).
pub(crate) fn non_finite_toml(value: &toml::Value, at: String) -> Option<String> {
    match value {
        toml::Value::Float(f) if !f.is_finite() => Some(at),
        toml::Value::Array(items) => {
            items.iter().enumerate().find_map(|(i, item)| non_finite_toml(item, format!("{at}[{i}]")))
        }
        toml::Value::Table(table) => table.iter().find_map(|(k, v)| non_finite_toml(v, dotted(&at, k))),
        _ => None,
    }
}

/// Applies YAML's `<<:` merge keys everywhere in `value`, innermost first: a merged mapping's own `<<:` is resolved
/// before its entries are copied, so chains (`<<: *mid` where `mid` merges `*base`) and lists of mappings that each
/// merge another come out whole. A mapping's own keys win over merged ones, and in a list of mappings the earlier
/// wins, as the merge-key spec says. (`serde_yaml_ng`'s `apply_merge` is one pass from the outside in: it would
/// copy an inner `<<` unresolved.)
fn resolve_merges(value: &mut serde_yaml_ng::Value) -> std::result::Result<(), String> {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Mapping(mapping) => {
            let merged = mapping.remove("<<");
            for child in mapping.values_mut() {
                resolve_merges(child)?;
            }
            let sources = match merged {
                None => return Ok(()),
                Some(Y::Sequence(items)) => items,
                Some(single) => vec![single],
            };
            for mut source in sources {
                resolve_merges(&mut source)?;
                let Y::Mapping(source) = source else {
                    return Err("a merge key (`<<`) takes a mapping or a list of mappings".to_string());
                };
                for (k, v) in source {
                    mapping.entry(k).or_insert(v);
                }
            }
            Ok(())
        }
        Y::Sequence(items) => items.iter_mut().try_for_each(resolve_merges),
        Y::Tagged(tagged) => resolve_merges(&mut tagged.value),
        _ => Ok(()),
    }
}

/// The dotted key of the first non-finite float in a YAML value (`[i]` for list items).
fn non_finite_yaml(value: &serde_yaml_ng::Value, at: String) -> Option<String> {
    use serde_yaml_ng::Value as Y;
    match value {
        Y::Number(n) if n.as_f64().is_some_and(|f| !f.is_finite()) => Some(at),
        Y::Sequence(items) => {
            items.iter().enumerate().find_map(|(i, item)| non_finite_yaml(item, format!("{at}[{i}]")))
        }
        Y::Mapping(map) => map.iter().find_map(|(k, v)| {
            let key = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
            non_finite_yaml(v, dotted(&at, &key))
        }),
        Y::Tagged(tagged) => non_finite_yaml(&tagged.value, at),
        _ => None,
    }
}

/// The configuration as a file of `format` that reads back to the same configuration.
pub(crate) fn print(config: &Value, format: ConfigFormat) -> Result<String> {
    match format {
        ConfigFormat::Toml => to_toml(config),
        ConfigFormat::Yaml => to_yaml(config),
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

/// The configuration as a YAML file in Lightning's order: `trainer:`, `model:`, then the top-level keys. Unset
/// options are written `null`, which YAML reads back as unset: every option shows, as in Lightning's output.
pub(crate) fn to_yaml(config: &Value) -> Result<String> {
    let Value::Object(top) = config else { return Ok(String::new()) };
    // `serde_yaml_ng`'s mapping keeps the order keys are inserted in (JSON's map here is sorted by name).
    let mut ordered = serde_yaml_ng::Mapping::new();
    let sections = ["trainer", "model"].into_iter().filter_map(|k| top.get_key_value(k));
    let rest = top.iter().filter(|(k, _)| !matches!(k.as_str(), "model" | "trainer"));
    for (key, value) in sections.chain(rest) {
        let value = serde_yaml_ng::to_value(value)
            .map_err(|e| Error::Config(format!("`{key}` cannot be written as YAML: {e}")))?;
        ordered.insert(serde_yaml_ng::Value::String(key.clone()), value);
    }
    serde_yaml_ng::to_string(&ordered)
        .map_err(|e| Error::Config(format!("the configuration cannot be written as YAML: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_extension_picks_the_format() {
        assert_eq!(ConfigFormat::of_path(Path::new("a/run.yaml")), ConfigFormat::Yaml);
        assert_eq!(ConfigFormat::of_path(Path::new("run.YML")), ConfigFormat::Yaml);
        assert_eq!(ConfigFormat::of_path(Path::new("run.toml")), ConfigFormat::Toml);
        assert_eq!(ConfigFormat::of_path(Path::new("run")), ConfigFormat::Toml);
    }

    #[test]
    fn yaml_reads_as_toml_does() {
        let toml = "ckpt_path = \"last\"\n[model]\nlr = 0.1\nsizes = [4, 8]\n[trainer]\nmax_epochs = 3\nlimit_val_batches = 1.0\n";
        let yaml = "trainer:\n  max_epochs: 3\n  limit_val_batches: 1.0\nmodel:\n  lr: 0.1\n  sizes: [4, 8]\nckpt_path: last\n";
        assert_eq!(parse(toml, ConfigFormat::Toml, "t").unwrap(), parse(yaml, ConfigFormat::Yaml, "y").unwrap());
        assert_eq!(parse("# nothing\n", ConfigFormat::Yaml, "y").unwrap(), json!({}));
        let err = parse("trainer: [1,\n", ConfigFormat::Yaml, "bad.yaml").unwrap_err().to_string();
        assert!(err.contains("bad.yaml") && err.contains("not valid YAML"), "{err}");
    }

    #[test]
    fn an_emptied_section_sets_nothing_and_merge_keys_apply() {
        let emptied = "trainer:\n  # max_epochs: 3\nmodel:\n";
        assert_eq!(parse(emptied, ConfigFormat::Yaml, "y").unwrap(), json!({"trainer": {}, "model": {}}));
        let merged = "base: &base\n  lr: 0.1\n  hidden: 4\nmodel:\n  <<: *base\n  hidden: 8\n";
        let value = parse(merged, ConfigFormat::Yaml, "y").unwrap();
        assert_eq!(value["model"], json!({"lr": 0.1, "hidden": 8}));
        // Chains resolve, innermost first, and each list item's own merge comes along with it.
        let chained = "model:\n  a: &a {lr: 0.1, hidden: 4}\n  b: &b {<<: *a, hidden: 8}\n  c: {<<: *b, depth: 2}\n  \
                       x: &x {<<: *a, p: 1}\n  y: &y {q: 2, <<: {r: 3}}\n  z: {<<: [*x, *y], q: 5}\n";
        let value = parse(chained, ConfigFormat::Yaml, "y").unwrap();
        assert_eq!(value["model"]["c"], json!({"lr": 0.1, "hidden": 8, "depth": 2}));
        assert_eq!(value["model"]["z"], json!({"lr": 0.1, "hidden": 4, "p": 1, "q": 5, "r": 3}));
        let err = parse("model:\n  <<: 3\n", ConfigFormat::Yaml, "m.yaml").unwrap_err().to_string();
        assert!(err.contains("m.yaml") && err.contains("merge key"), "{err}");
    }

    #[test]
    fn non_finite_numbers_are_refused_by_key() {
        for (text, format) in [
            ("trainer:\n  gradient_clip_val: .inf\n", ConfigFormat::Yaml),
            ("[trainer]\ngradient_clip_val = inf\n", ConfigFormat::Toml),
        ] {
            let err = parse(text, format, "run").unwrap_err().to_string();
            assert!(err.contains("`trainer.gradient_clip_val`") && err.contains("not finite"), "{err}");
        }
        let err = parse("model:\n  sizes: [1.0, .nan]\n", ConfigFormat::Yaml, "y").unwrap_err().to_string();
        assert!(err.contains("`model.sizes[1]`"), "{err}");
    }

    #[test]
    fn printed_yaml_reads_back() {
        let config = json!({"ckpt_path": null, "model": {"lr": 0.1, "sizes": [4, 8], "name": "yes", "nested": {"a": 1}}, "trainer": {"max_epochs": 3, "max_steps": null, "limit_val_batches": 1.0, "precision": "16-mixed"}});
        let text = to_yaml(&config).unwrap();
        assert!(text.starts_with("trainer:\n"), "{text}");
        assert!(text.contains("max_steps: null") && text.contains("limit_val_batches: 1.0"), "{text}");
        assert_eq!(parse(&text, ConfigFormat::Yaml, "printed").unwrap(), config);
    }
}
