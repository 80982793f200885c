//! Checkpoint file names: Lightning's filename templates (`"{epoch}-{val_loss:.2f}"`) and the subset of
//! Python's format-spec mini-language they use, so that a template renders here as it does in Lightning.
//!
//! Lightning turns `{name}` into `name={name}` (`auto_insert_metric_name`), then calls Python's `str.format`
//! with `epoch` and `step` as integers and every metric as a float. This module parses the template once (so a
//! malformed one is reported when the run starts, not at the first save) and renders it per save.

use std::fmt::Write as _;

/// A value a template field renders: `epoch` and `step` are integers, metrics are floats (as in Lightning,
/// where they are 0-dimensional tensors formatted through `tensor.item()`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Value {
    Int(i64),
    Float(f64),
}

/// Why a template could not be rendered.
#[derive(Debug, PartialEq)]
pub(crate) enum RenderError {
    /// The template names a value that is not there.
    Missing(String),
    /// The value cannot be formatted with the field's spec.
    Format(String),
}

/// A parsed filename template.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Template {
    source: String,
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Field { name: String, spec: Spec },
}

impl Template {
    /// Parses `source`. With `auto_insert`, a field `{name...}` not already preceded by `name=` gets that
    /// prefix, as Lightning's `auto_insert_metric_name=True` does (Lightning would write `epoch=epoch=3` for
    /// `"epoch={epoch}"`; not inserting it twice is the one deliberate difference).
    pub fn parse(source: &str, auto_insert: bool) -> Result<Template, String> {
        let bad = |problem: String| format!("the filename template {source:?} is invalid: {problem}");
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(bad("a `}` closes no field (write `}}` for a literal brace)".into())),
                '{' => {
                    let mut field = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some('{') => {
                                return Err(bad(format!(
                                    "nested braces in the field `{{{field}`: format specs cannot refer to other values"
                                )))
                            }
                            Some(c) => field.push(c),
                            None => return Err(bad(format!("the field `{{{field}` is not closed by `}}`"))),
                        }
                    }
                    // As Lightning's regex `(\{.*?)[:\}]` does: the name runs to the first `:`.
                    let (name, spec) = match field.split_once(':') {
                        Some((name, spec)) => (name, spec),
                        None => (field.as_str(), ""),
                    };
                    if name.is_empty() {
                        return Err(bad("an empty field `{}`: name a metric, `epoch` or `step`".into()));
                    }
                    if name.contains(['[', ']', '!']) {
                        return Err(bad(format!(
                            "the field name `{name}` contains `[`, `]` or `!`, which metric names cannot hold here"
                        )));
                    }
                    let spec =
                        Spec::parse(spec).map_err(|problem| bad(format!("in the field `{{{field}}}`: {problem}")))?;
                    if auto_insert && !text.ends_with(&format!("{name}=")) {
                        text.push_str(name);
                        text.push('=');
                    }
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Field { name: name.to_string(), spec });
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if parts.is_empty() {
            return Err(bad("it is empty".into()));
        }
        Ok(Template { source: source.to_string(), parts })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders the template with the values `lookup` finds.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<Value>) -> Result<String, RenderError> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Field { name, spec } => {
                    let value = lookup(name).ok_or_else(|| RenderError::Missing(name.clone()))?;
                    let rendered = spec.format(value).map_err(|problem| {
                        RenderError::Format(format!(
                            "the filename template {:?} cannot format `{name}` = {}: {problem}",
                            self.source,
                            match value {
                                Value::Int(v) => v.to_string(),
                                Value::Float(v) => v.to_string(),
                            }
                        ))
                    })?;
                    out.push_str(&rendered);
                }
            }
        }
        Ok(out)
    }
}

/// Python's `[[fill]align][sign][z][#][0][width][.precision][type]` (grouping is not supported).
#[derive(Clone, Debug, Default, PartialEq)]
struct Spec {
    fill: Option<char>,
    align: Option<char>,
    sign: Option<char>,
    no_negative_zero: bool,
    alternate: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    kind: Option<char>,
}

impl Spec {
    fn parse(spec: &str) -> Result<Spec, String> {
        let chars: Vec<char> = spec.chars().collect();
        let mut out = Spec::default();
        let mut i = 0;
        let is_align = |c: char| matches!(c, '<' | '>' | '=' | '^');
        if chars.len() >= 2 && is_align(chars[1]) {
            (out.fill, out.align) = (Some(chars[0]), Some(chars[1]));
            i = 2;
        } else if chars.first().copied().is_some_and(is_align) {
            out.align = Some(chars[0]);
            i = 1;
        }
        if let Some(&c @ ('+' | '-' | ' ')) = chars.get(i) {
            out.sign = Some(c);
            i += 1;
        }
        if chars.get(i) == Some(&'z') {
            out.no_negative_zero = true;
            i += 1;
        }
        if chars.get(i) == Some(&'#') {
            out.alternate = true;
            i += 1;
        }
        if chars.get(i) == Some(&'0') {
            out.zero = true;
            i += 1;
        }
        let digits = |i: &mut usize| {
            let start = *i;
            while chars.get(*i).is_some_and(char::is_ascii_digit) {
                *i += 1;
            }
            (start < *i).then(|| chars[start..*i].iter().collect::<String>())
        };
        if let Some(width) = digits(&mut i) {
            out.width = width.parse().map_err(|_| format!("the width {width} is too large"))?;
        }
        if let Some(&c @ (',' | '_')) = chars.get(i) {
            return Err(format!("the grouping option `{c}` is not supported in checkpoint file names"));
        }
        if chars.get(i) == Some(&'.') {
            i += 1;
            let precision = digits(&mut i).ok_or("a `.` must be followed by a precision")?;
            out.precision = Some(precision.parse().map_err(|_| format!("the precision {precision} is too large"))?);
        }
        if let Some(&c) = chars.get(i) {
            if !matches!(c, 'd' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' | '%') {
                return Err(format!(
                    "the format type `{c}` is not supported (use d, f, F, e, E, g, G or %, or none), or the spec {spec:?} is malformed"
                ));
            }
            out.kind = Some(c);
            i += 1;
        }
        if i < chars.len() {
            return Err(format!("the format spec {spec:?} is malformed"));
        }
        if out.kind == Some('d') && out.precision.is_some() {
            return Err("precision is not allowed with the integer type `d`".into());
        }
        Ok(out)
    }

    /// Formats `value` as Python's `format(value, spec)` does.
    fn format(&self, value: Value) -> Result<String, String> {
        let (negative, body) = match (value, self.kind) {
            (Value::Int(v), None | Some('d')) => {
                if self.precision.is_some() {
                    return Err("precision is not allowed for an integer".into());
                }
                (v < 0, v.unsigned_abs().to_string())
            }
            (Value::Float(v), Some('d')) => {
                // Python refuses `d` for floats; a logged count (3.0) is an integer in all but type, so allow it.
                if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 {
                    (v < 0.0, (v.abs() as u64).to_string())
                } else {
                    return Err("the type `d` needs an integer value".into());
                }
            }
            (Value::Int(v), kind) => self.float_body(v as f64, kind),
            (Value::Float(v), kind) => self.float_body(v, kind),
        };
        let negative = negative && !(self.no_negative_zero && body.chars().all(|c| matches!(c, '0' | '.' | '%')));
        let sign = match (negative, self.sign) {
            (true, _) => "-",
            (false, Some('+')) => "+",
            (false, Some(' ')) => " ",
            _ => "",
        };
        let (fill, align) = match (self.fill, self.align, self.zero) {
            (fill, Some(align), _) => (fill.unwrap_or(' '), align),
            (_, None, true) => ('0', '='),
            (_, None, false) => (' ', '>'),
        };
        let len = sign.chars().count() + body.chars().count();
        let pad = self.width.saturating_sub(len);
        let fill_n = |n: usize| std::iter::repeat_n(fill, n).collect::<String>();
        Ok(match align {
            '<' => format!("{sign}{body}{}", fill_n(pad)),
            '^' => format!("{}{sign}{body}{}", fill_n(pad / 2), fill_n(pad - pad / 2)),
            '=' => format!("{sign}{}{body}", fill_n(pad)),
            _ => format!("{}{sign}{body}", fill_n(pad)),
        })
    }

    /// A float's text without its sign, and whether it is negative.
    fn float_body(&self, v: f64, kind: Option<char>) -> (bool, String) {
        let negative = v.is_sign_negative() && !v.is_nan();
        let upper = matches!(kind, Some('F' | 'E' | 'G'));
        let a = v.abs();
        let body = if a.is_nan() || a.is_infinite() {
            let text = if a.is_nan() { "nan" } else { "inf" };
            let text = if upper { text.to_uppercase() } else { text.to_string() };
            if kind == Some('%') {
                text + "%"
            } else {
                text
            }
        } else {
            match kind {
                Some('f' | 'F') => self.fixed(a, self.precision.unwrap_or(6)),
                Some('%') => self.fixed(a * 100.0, self.precision.unwrap_or(6)) + "%",
                Some('e' | 'E') => {
                    let text = scientific(a, self.precision.unwrap_or(6), self.alternate);
                    if upper {
                        text.to_uppercase()
                    } else {
                        text
                    }
                }
                Some('g' | 'G') => {
                    let text = general(a, self.precision.unwrap_or(6), self.alternate, false);
                    if upper {
                        text.to_uppercase()
                    } else {
                        text
                    }
                }
                _ => match self.precision {
                    Some(p) => general(a, p, self.alternate, true),
                    None => repr(a),
                },
            }
        };
        (negative, body)
    }

    fn fixed(&self, a: f64, precision: usize) -> String {
        let mut text = format!("{a:.precision$}");
        if self.alternate && precision == 0 {
            text.push('.');
        }
        text
    }
}

/// `a` (non-negative, finite) in Python's `e` format: `1.234560e-05`.
fn scientific(a: f64, precision: usize, alternate: bool) -> String {
    let text = format!("{a:.precision$e}");
    let (mantissa, exponent) = split_exponent(&text);
    let dot = if alternate && precision == 0 { "." } else { "" };
    format!("{mantissa}{dot}e{}", python_exponent(exponent))
}

/// `a` in Python's `g` format (or, with `repr_like`, the format of an empty type with a precision: at least one
/// digit after the point, and scientific notation from one power of ten earlier).
fn general(a: f64, precision: usize, alternate: bool, repr_like: bool) -> String {
    let p = precision.max(1);
    let (_, exponent) = split_exponent(&format!("{a:.prec$e}", prec = p - 1));
    let limit = if repr_like { p as i32 - 1 } else { p as i32 };
    let mut text = if (-4..limit).contains(&exponent) {
        let decimals = (p as i32 - 1 - exponent) as usize;
        let text = format!("{a:.decimals$}");
        match (alternate, text.contains('.')) {
            (true, true) => text,
            // Python's alternate form always shows the point.
            (true, false) => text + ".",
            (false, _) => strip_zeros(&text),
        }
    } else {
        let text = format!("{a:.prec$e}", prec = p - 1);
        let (mantissa, exponent) = split_exponent(&text);
        let mantissa = match (alternate, mantissa.contains('.')) {
            (true, true) => mantissa.to_string(),
            (true, false) => format!("{mantissa}."),
            (false, _) => strip_zeros(mantissa),
        };
        format!("{mantissa}e{}", python_exponent(exponent))
    };
    if repr_like && !text.contains(['.', 'e']) {
        text.push_str(".0");
    }
    text
}

/// Python's `repr(float)`: the shortest digits that read back the same, fixed between 1e-4 and 1e16.
fn repr(a: f64) -> String {
    let shortest = format!("{a:e}");
    // Rust's shortest digits can end on the other side of an exact tie than Python's (which rounds half to
    // even, as Rust's fixed-precision formatting does): take the correctly rounded digits of that length when
    // they read back the same.
    let length = split_exponent(&shortest).0.chars().filter(char::is_ascii_digit).count();
    let rounded = format!("{a:.prec$e}", prec = length.saturating_sub(1));
    let chosen = if rounded.parse::<f64>() == Ok(a) { rounded } else { shortest };
    let (mantissa, exponent) = split_exponent(&chosen);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exponent) {
        let mut out = String::new();
        if exponent >= 0 {
            let int_len = exponent as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int, frac) = padded.split_at(int_len);
            let _ = write!(out, "{int}.{}", if frac.is_empty() { "0" } else { frac });
        } else {
            let zeros = "0".repeat((-exponent - 1) as usize);
            let _ = write!(out, "0.{zeros}{digits}");
        }
        out
    } else {
        format!("{mantissa}e{}", python_exponent(exponent))
    }
}

/// Splits Rust's `1.5e-5` into `("1.5", -5)`.
fn split_exponent(text: &str) -> (&str, i32) {
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    (mantissa, exponent.parse().unwrap_or(0))
}

/// Python writes exponents with a sign and at least two digits: `e-05`, `e+16`.
fn python_exponent(exponent: i32) -> String {
    format!("{}{:02}", if exponent < 0 { '-' } else { '+' }, exponent.unsigned_abs())
}

/// `1.2300` → `1.23`, `2.000` → `2`.
fn strip_zeros(text: &str) -> String {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text.to_string()
    }
}
