//! Floats in checkpoint JSON. JSON has no NaN or infinity, and serde_json writes them as `null`, which then
//! fails to read back as a number: a NaN loss logged on a skipped step, or a scheduler driven to infinity, would
//! make every later checkpoint unreadable. Every `f64` a checkpoint's metadata holds goes through here: a number
//! when finite, else the text `"nan"`, `"inf"` or `"-inf"` (the spelling `ModelCheckpoint` has always used for
//! its scores, so older files read the same).

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Repr {
    Number(f64),
    Text(String),
}

/// The text for a non-finite value.
fn text(value: f64) -> &'static str {
    if value.is_nan() {
        "nan"
    } else if value > 0.0 {
        "inf"
    } else {
        "-inf"
    }
}

/// Serializes a float, finite or not.
pub(crate) fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.is_finite() {
        serializer.serialize_f64(*value)
    } else {
        serializer.serialize_str(text(*value))
    }
}

/// Reads what [`serialize`] wrote; `null` and other text are errors.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let repr = Repr::deserialize(deserializer);
    match repr.as_ref().map(|r| match r {
        Repr::Number(v) => Ok(*v),
        Repr::Text(t) => Err(t.as_str()),
    }) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err("nan")) => Ok(f64::NAN),
        Ok(Err("inf")) => Ok(f64::INFINITY),
        Ok(Err("-inf")) => Ok(f64::NEG_INFINITY),
        Ok(Err(other)) => {
            Err(serde::de::Error::custom(format!("`{other}` is not a number (nor \"nan\", \"inf\", \"-inf\")")))
        }
        Err(_) => Err(serde::de::Error::custom("expected a number or \"nan\", \"inf\", \"-inf\"")),
    }
}

/// The same for `Option<f64>` (`None` is `null`).
pub(crate) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::serialize(value, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<f64>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(deserialize_with = "super::deserialize")] f64);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(value)| value))
    }
}

/// A float that serializes through this module, for places that hold plain values (callback states).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub(crate) struct JsonF64(#[serde(with = "self")] pub f64);

impl From<f64> for JsonF64 {
    fn from(value: f64) -> Self {
        JsonF64(value)
    }
}

impl From<JsonF64> for f64 {
    fn from(value: JsonF64) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize)]
    struct Holder {
        #[serde(with = "super")]
        x: f64,
        #[serde(with = "super::option", default)]
        y: Option<f64>,
    }

    #[test]
    fn every_float_round_trips() {
        for x in [0.0, -1.5, 1e300, f64::MIN_POSITIVE, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for y in [None, Some(x)] {
                let json = serde_json::to_string(&Holder { x, y }).unwrap();
                let back: Holder = serde_json::from_str(&json).unwrap();
                assert!(back.x.to_bits() == x.to_bits() || (x.is_nan() && back.x.is_nan()), "{json}");
                assert_eq!(back.y.map(f64::is_nan), y.map(f64::is_nan), "{json}");
            }
        }
        assert!(serde_json::from_str::<Holder>(r#"{"x": null}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"x": "NaNx"}"#).is_err());
    }
}
