//! A condition's configuration as form fields, generated from its plugin's JSON
//! Schema: a list of strings is a box with one value per line, an `enum` a choice, a
//! number a number field, a flag a yes/no choice, text a text field, and anything
//! else (an object, a schema this does not read) JSON in a box. Values go back into a
//! configuration the same way, and a value that cannot be read is reported at its
//! field.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::page::escape;

/// How one property of a configuration is edited.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Kind {
    Lines,
    Choice(Vec<String>),
    Integer,
    Number,
    Flag,
    Text,
    Json,
}

/// One property of a configuration, as the schema describes it.
#[derive(Clone, Debug)]
pub(super) struct Field {
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub required: bool,
    pub default: Option<Value>,
}

/// The fields of a plugin's configuration schema; `None` when the schema is not an
/// object of named properties, and the configuration is then edited as JSON whole.
pub(super) fn of_schema(schema: &str) -> Option<Vec<Field>> {
    let schema: Value = serde_json::from_str(schema).ok()?;
    let properties = schema.get("properties")?.as_object()?;
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    Some(
        properties
            .iter()
            .map(|(name, p)| Field {
                name: name.clone(),
                kind: kind(p),
                description: p
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                required: required.contains(&name.as_str()),
                default: p.get("default").cloned(),
            })
            .collect(),
    )
}

fn kind(p: &Value) -> Kind {
    if let Some(values) = p.get("enum").and_then(Value::as_array)
        && values.iter().all(Value::is_string)
    {
        return Kind::Choice(
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
        );
    }
    match p.get("type").and_then(Value::as_str) {
        Some("array") if p.pointer("/items/type").and_then(Value::as_str) == Some("string") => {
            Kind::Lines
        }
        Some("integer") => Kind::Integer,
        Some("number") => Kind::Number,
        Some("boolean") => Kind::Flag,
        Some("string") => Kind::Text,
        _ => Kind::Json,
    }
}

/// A configuration value as its field shows it.
pub(super) fn shown(kind: &Kind, value: &Value) -> String {
    match (kind, value) {
        (Kind::Lines, Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect::<Vec<_>>()
            .join("\n"),
        (_, Value::String(s)) => s.clone(),
        (Kind::Json, v) => serde_json::to_string_pretty(v).unwrap_or_default(),
        (_, v) => v.to_string(),
    }
}

/// The configuration the fields' texts make: an empty field is left out (the plugin's
/// default applies). Errors by field name.
pub(super) fn config(
    fields: &[Field],
    texts: &BTreeMap<String, String>,
) -> Result<Value, Vec<(String, String)>> {
    let mut out = Map::new();
    let mut problems = Vec::new();
    for f in fields {
        let text = texts.get(&f.name).map(|t| t.trim()).unwrap_or_default();
        if text.is_empty() {
            continue;
        }
        let value = match &f.kind {
            Kind::Lines => Ok(Value::Array(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(|l| Value::String(l.to_string()))
                    .collect(),
            )),
            Kind::Choice(_) | Kind::Text => Ok(Value::String(text.to_string())),
            Kind::Integer => text
                .parse::<i64>()
                .map(Value::from)
                .map_err(|_| format!("`{text}` is not a whole number")),
            Kind::Number => text
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("`{text}` is not a number")),
            Kind::Flag => match text {
                "true" => Ok(Value::Bool(true)),
                "false" => Ok(Value::Bool(false)),
                other => Err(format!("`{other}` is neither yes nor no")),
            },
            Kind::Json => serde_json::from_str(text).map_err(|e| format!("not JSON: {e}")),
        };
        match value {
            Ok(v) => drop(out.insert(f.name.clone(), v)),
            Err(problem) => problems.push((f.name.clone(), problem)),
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(out))
    } else {
        Err(problems)
    }
}

/// A field's input, named `key`, holding `text`, with `problem` beside it if any.
pub(super) fn input(f: &Field, key: &str, text: &str, problem: Option<&str>) -> String {
    let id = key.replace('.', "-");
    let invalid = if problem.is_some() {
        format!(" aria-invalid=\"true\" aria-describedby=\"{id}-problem\"")
    } else {
        String::new()
    };
    let (key, text) = (escape(key), escape(text));
    let control = match &f.kind {
        Kind::Lines => {
            format!("<textarea id=\"{id}\" name=\"{key}\" rows=\"3\"{invalid}>{text}</textarea>")
        }
        Kind::Json => format!(
            "<textarea id=\"{id}\" name=\"{key}\" rows=\"3\" class=\"json\"{invalid}>{text}</textarea>"
        ),
        Kind::Choice(options) => choice(&id, &key, &invalid, &text, f, options),
        Kind::Flag => choice(
            &id,
            &key,
            &invalid,
            &text,
            f,
            &["true".to_string(), "false".to_string()],
        ),
        Kind::Integer | Kind::Number => format!(
            "<input id=\"{id}\" name=\"{key}\" type=\"number\" step=\"{}\" value=\"{text}\"{invalid}>",
            if f.kind == Kind::Integer { "1" } else { "any" }
        ),
        Kind::Text => format!("<input id=\"{id}\" name=\"{key}\" value=\"{text}\"{invalid}>"),
    };
    let hint = match &f.kind {
        Kind::Lines => " (one per line)",
        Kind::Json => " (JSON)",
        _ => "",
    };
    format!(
        "<div class=\"field\"><label for=\"{id}\">{name}{hint}{required}</label>{control}\
         <small>{description}</small>{problem}</div>",
        name = escape(&f.name),
        required = if f.required { " *" } else { "" },
        description = escape(&f.description),
        problem = problem
            .map(|p| format!(
                "<p class=\"field-problem\" id=\"{id}-problem\" role=\"alert\">{}</p>",
                escape(p)
            ))
            .unwrap_or_default(),
    )
}

fn choice(id: &str, key: &str, invalid: &str, text: &str, f: &Field, options: &[String]) -> String {
    let default = f
        .default
        .as_ref()
        .map(|d| format!("default: {}", shown(&f.kind, d)))
        .unwrap_or_else(|| "not set".to_string());
    let mut out = format!(
        "<select id=\"{id}\" name=\"{key}\"{invalid}><option value=\"\">({})</option>",
        escape(&default)
    );
    for o in options {
        let o = escape(o);
        let selected = if o == text { " selected" } else { "" };
        out.push_str(&format!("<option value=\"{o}\"{selected}>{o}</option>"));
    }
    out.push_str("</select>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCT: &str = r#"{"type":"object","properties":{
        "products":{"type":"array","items":{"type":"string"}},
        "status":{"enum":["active","any"],"default":"active"},
        "within_days":{"type":"integer"},
        "extra":{"type":"object"}},"required":["products"]}"#;

    #[test]
    fn a_schema_becomes_fields_and_their_texts_a_configuration() {
        let fields = of_schema(PRODUCT).expect("an object schema");
        let kinds: Vec<(&str, &Kind)> = fields.iter().map(|f| (f.name.as_str(), &f.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("extra", &Kind::Json),
                ("products", &Kind::Lines),
                ("status", &Kind::Choice(vec!["active".into(), "any".into()])),
                ("within_days", &Kind::Integer),
            ]
        );
        let texts: BTreeMap<String, String> = [
            ("products", "tower-host\n\n fiber-100 "),
            ("status", ""),
            ("within_days", "30"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(
            config(&fields, &texts),
            Ok(serde_json::json!({"products": ["tower-host", "fiber-100"], "within_days": 30}))
        );
        let bad: BTreeMap<String, String> = [("within_days", "thirty"), ("extra", "{")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let problems = config(&fields, &bad).expect_err("two bad fields");
        let named: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(named, ["extra", "within_days"]);
        assert!(of_schema("{\"type\":\"string\"}").is_none());
    }

    #[test]
    fn a_value_shows_as_its_field_edits_it() {
        let value = serde_json::json!(["DE", "FR"]);
        assert_eq!(shown(&Kind::Lines, &value), "DE\nFR");
        assert_eq!(shown(&Kind::Integer, &serde_json::json!(7)), "7");
        assert_eq!(
            shown(&Kind::Choice(vec![]), &serde_json::json!("any")),
            "any"
        );
    }
}
