//! Generates the client from `openapi.json`, the server's OpenAPI document as
//! committed (a test keeps it equal to what the server serves): a Rust type for each
//! schema of the document's components, a method for each operation. A shape of schema
//! this generator does not know stops the build, naming it: the client never guesses.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

const DOCUMENT: &str = "openapi.json";

fn main() {
    println!("cargo::rerun-if-changed={DOCUMENT}");
    let text =
        std::fs::read_to_string(DOCUMENT).unwrap_or_else(|e| panic!("cannot read {DOCUMENT}: {e}"));
    let doc: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{DOCUMENT} is not JSON: {e}"));
    let code = Generator::new(&doc).generate();
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    std::fs::write(format!("{out}/generated.rs"), code).expect("the generated client is written");
}

struct Generator<'d> {
    schemas: &'d Map<String, Value>,
    paths: &'d Map<String, Value>,
}

/// `read-only` → `ReadOnly`, `Page_AuditEntry` → `PageAuditEntry`.
fn camel(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// `Idempotency-Key` → `idempotency_key`; a keyword is raw.
fn snake(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('_') {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    match out.as_str() {
        "type" | "match" | "ref" | "self" | "use" | "where" | "mod" | "move" | "loop" => {
            format!("r#{out}")
        }
        _ => out,
    }
}

/// Doc comment lines for `description`, indented by `indent`.
fn doc(description: Option<&Value>, indent: &str) -> String {
    let Some(text) = description.and_then(Value::as_str) else {
        return String::new();
    };
    text.lines()
        .map(|l| format!("{indent}/// {l}").trim_end().to_string() + "\n")
        .collect()
}

fn is_null(s: &Value) -> bool {
    s.get("type").and_then(Value::as_str) == Some("null")
}

impl<'d> Generator<'d> {
    fn new(doc: &'d Value) -> Self {
        Generator {
            schemas: doc["components"]["schemas"]
                .as_object()
                .expect("the document has component schemas"),
            paths: doc["paths"].as_object().expect("the document has paths"),
        }
    }

    fn generate(&self) -> String {
        let mut out = String::new();
        for (name, schema) in self.schemas {
            out.push_str(&self.component(name, schema));
        }
        for (path, item) in self.paths {
            for (method, op) in item.as_object().expect("a path item is an object") {
                if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                    out.push_str(&self.operation(path, method, op));
                }
            }
        }
        out
    }

    /// The Rust name of the component a `$ref` names.
    fn reference(&self, r: &Value) -> String {
        let r = r.as_str().expect("a $ref is a string");
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a $ref outside the components: {r}"));
        assert!(self.schemas.contains_key(name), "a $ref to no schema: {r}");
        camel(name)
    }

    /// A component that is exactly `schema` (the document repeats a generic's type
    /// inline in each instance, as in `Page_AuditEntry`).
    fn same_as(&self, schema: &Value) -> Option<String> {
        self.schemas
            .iter()
            .find(|(_, s)| *s == schema)
            .map(|(name, _)| camel(name))
    }

    /// The Rust type of `s`, used in place.
    fn ty(&self, s: &Value) -> String {
        if let Some(r) = s.get("$ref") {
            return self.reference(r);
        }
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let others: Vec<&Value> = one.iter().filter(|v| !is_null(v)).collect();
            if let [only] = others[..]
                && one.len() == 2
            {
                return format!("Option<{}>", self.ty(only));
            }
            return self
                .same_as(s)
                .unwrap_or_else(|| panic!("an inline oneOf this client cannot type: {s}"));
        }
        match s.get("type") {
            Some(Value::Array(types)) => {
                let others: Vec<&Value> = types.iter().filter(|t| *t != "null").collect();
                let [only] = others[..] else {
                    panic!("a schema of several types: {s}");
                };
                let mut inner = s.clone();
                inner["type"] = only.clone();
                format!("Option<{}>", self.ty(&inner))
            }
            Some(Value::String(t)) => match t.as_str() {
                "string" => match s.get("format").and_then(Value::as_str) {
                    Some("date-time") => "chrono::DateTime<chrono::Utc>".into(),
                    Some("binary") => "Vec<u8>".into(),
                    _ => "String".into(),
                },
                "integer" => {
                    if s.get("format").and_then(Value::as_str) == Some("int32") {
                        "i32".into()
                    } else if s
                        .get("minimum")
                        .and_then(Value::as_f64)
                        .is_some_and(|m| m >= 0.0)
                    {
                        "u64".into()
                    } else {
                        "i64".into()
                    }
                }
                "number" => "f64".into(),
                "boolean" => "bool".into(),
                "array" => format!("Vec<{}>", self.ty(&s["items"])),
                "object" => {
                    if s.get("properties").is_some() {
                        return self
                            .same_as(s)
                            .unwrap_or_else(|| "serde_json::Value".into());
                    }
                    match s.get("additionalProperties") {
                        Some(v @ Value::Object(_)) => {
                            format!("std::collections::BTreeMap<String, {}>", self.ty(v))
                        }
                        _ => "serde_json::Value".into(),
                    }
                }
                "null" => "()".into(),
                other => panic!("a schema of unknown type `{other}`: {s}"),
            },
            _ => "serde_json::Value".into(),
        }
    }

    /// The fields of an object schema, as struct fields indented by `indent`.
    fn fields(&self, s: &Value, indent: &str, public: bool) -> String {
        let required: BTreeSet<&str> = s
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let mut out = String::new();
        let empty = Map::new();
        let properties = s
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        for (name, p) in properties {
            let mut ty = self.ty(p);
            let optional = !required.contains(name.as_str());
            if optional && !ty.starts_with("Option<") {
                ty = format!("Option<{ty}>");
            }
            out.push_str(&doc(p.get("description"), indent));
            let field = snake(name);
            if field.trim_start_matches("r#") != name {
                let _ = writeln!(out, "{indent}#[serde(rename = \"{name}\")]");
            }
            if optional {
                let _ = writeln!(
                    out,
                    "{indent}#[serde(default, skip_serializing_if = \"Option::is_none\")]"
                );
            }
            let vis = if public { "pub " } else { "" };
            let _ = writeln!(out, "{indent}{vis}{field}: {ty},");
        }
        out
    }

    fn component(&self, name: &str, s: &Value) -> String {
        let rust = camel(name);
        let mut out = doc(s.get("description"), "");
        if let Some(values) = s.get("enum").and_then(Value::as_array) {
            out.push_str(
                "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]\n",
            );
            let _ = writeln!(out, "pub enum {rust} {{");
            for v in values {
                let v = v.as_str().expect("an enum of strings");
                let _ = writeln!(out, "    #[serde(rename = \"{v}\")]\n    {},", camel(v));
            }
            out.push_str("}\n\n");
            return out;
        }
        if let Some(variants) = s.get("oneOf").and_then(Value::as_array) {
            if let Some(tag) = self.tag_of(variants) {
                out.push_str("#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\n");
                let _ = writeln!(out, "#[serde(tag = \"{tag}\")]\npub enum {rust} {{");
                for v in variants {
                    let value = v["properties"][tag]["enum"][0]
                        .as_str()
                        .expect("a tag's value");
                    let mut rest = v.clone();
                    rest["properties"]
                        .as_object_mut()
                        .expect("properties")
                        .remove(tag);
                    out.push_str(&doc(v.get("description"), "    "));
                    let _ = writeln!(
                        out,
                        "    #[serde(rename = \"{value}\")]\n    {} {{\n{}    }},",
                        camel(value),
                        self.fields(&rest, "        ", false)
                    );
                }
                out.push_str("}\n\n");
                return out;
            }
            // Variants told apart by their fields: each a component of its own.
            if variants.iter().all(|v| v.get("$ref").is_some()) {
                out.push_str("#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]\n");
                let _ = writeln!(out, "#[serde(untagged)]\npub enum {rust} {{");
                for v in variants {
                    let name = self.reference(&v["$ref"]);
                    let _ = writeln!(out, "    {name}({name}),");
                }
                out.push_str("}\n\n");
                return out;
            }
            let _ = writeln!(out, "pub type {rust} = {};\n", self.ty(s));
            return out;
        }
        if s.get("type").and_then(Value::as_str) == Some("object") && s.get("properties").is_some()
        {
            // A struct whose every field has an empty value can be built from
            // `Default` (a request of optional fields, say).
            let fields = self.fields(s, "    ", true);
            let defaultable = fields
                .lines()
                .filter(|l| !l.trim_start().starts_with("#[") && !l.trim_start().starts_with("///"))
                .filter_map(|l| l.split_once(": ").map(|(_, ty)| ty.trim_end_matches(',')))
                .all(|ty| {
                    ["Option<", "Vec<", "std::collections::BTreeMap<"]
                        .iter()
                        .any(|p| ty.starts_with(p))
                        || ["String", "bool", "i64", "u64", "i32", "f64"].contains(&ty)
                });
            let default = if defaultable { "Default, " } else { "" };
            let _ = writeln!(
                out,
                "#[derive(Clone, Debug, {default}PartialEq, Serialize, Deserialize)]"
            );
            let _ = writeln!(out, "pub struct {rust} {{\n{fields}}}\n");
            return out;
        }
        let _ = writeln!(out, "pub type {rust} = {};\n", self.ty(s));
        out
    }

    /// The property every variant of a oneOf has with one value of its own: what
    /// tells them apart.
    fn tag_of<'v>(&self, variants: &'v [Value]) -> Option<&'v str> {
        let first = variants.first()?.get("properties")?.as_object()?;
        first.keys().map(String::as_str).find(|key| {
            variants.iter().all(|v| {
                v["properties"][*key]["enum"]
                    .as_array()
                    .is_some_and(|e| e.len() == 1)
            })
        })
    }

    fn operation(&self, path: &str, method: &str, op: &Value) -> String {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path} has no operationId"));
        let name = snake(id);
        let params: Vec<&Value> = op
            .get("parameters")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let mut out = String::new();

        // Path parameters are arguments; the others a struct of their own.
        let mut args = String::new();
        let mut segments = Vec::new();
        for segment in path.trim_start_matches('/').split('/') {
            match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => {
                    let p = params
                        .iter()
                        .find(|p| p["name"] == param && p["in"] == "path")
                        .unwrap_or_else(|| panic!("{path}: no parameter `{param}`"));
                    let arg = snake(param);
                    let ty = match self.ty(&p["schema"]).as_str() {
                        "String" => "&str".to_string(),
                        other => other.to_string(),
                    };
                    let _ = write!(args, ", {arg}: {ty}");
                    segments.push(format!("{arg}.to_string()"));
                }
                None => segments.push(format!("\"{segment}\".to_string()")),
            }
        }
        let others: Vec<&&Value> = params
            .iter()
            .filter(|p| p["in"] == "query" || p["in"] == "header")
            .collect();
        let params_type = format!("{}Params", camel(id));
        if !others.is_empty() {
            let _ = writeln!(
                out,
                "/// The query and header parameters of [`Client::{name}`].\n\
                 #[derive(Clone, Debug, Default, PartialEq)]\npub struct {params_type} {{"
            );
            let mut pairs = String::new();
            for p in &others {
                let field = snake(p["name"].as_str().expect("a parameter's name"));
                let mut ty = self.ty(&p["schema"]);
                let required = p.get("required").and_then(Value::as_bool) == Some(true);
                if !required && !ty.starts_with("Option<") {
                    ty = format!("Option<{ty}>");
                }
                out.push_str(&doc(p.get("description"), "    "));
                let _ = writeln!(out, "    pub {field}: {ty},");
                let place = if p["in"] == "query" {
                    "query"
                } else {
                    "headers"
                };
                let value = if ty.starts_with("Option<") {
                    format!("self.{field}.as_ref().map(crate::text)")
                } else {
                    format!("Some(crate::text(&self.{field}))")
                };
                let _ = writeln!(
                    pairs,
                    "        if let Some(v) = {value} {{ {place}.push((\"{}\", v)); }}",
                    p["name"].as_str().expect("a parameter's name")
                );
            }
            let binding = |place: &str| {
                let used = others
                    .iter()
                    .any(|p| p["in"] == if place == "query" { "query" } else { "header" });
                let m = if used { "mut " } else { "" };
                format!("        let {m}{place}: crate::Pairs = Vec::new();\n")
            };
            let _ = writeln!(
                out,
                "}}\n\nimpl {params_type} {{\n    fn split(&self) -> (crate::Pairs, crate::Pairs) {{\n{}{}{pairs}        (query, headers)\n    }}\n}}\n",
                binding("query"),
                binding("headers"),
            );
            let _ = write!(args, ", params: &{params_type}");
        }

        // The body, JSON or bytes.
        let mut body = "crate::Body::None".to_string();
        if let Some(content) = op
            .get("requestBody")
            .and_then(|b| b.get("content"))
            .and_then(Value::as_object)
        {
            if let Some(json) = content.get("application/json") {
                let _ = write!(args, ", body: &{}", self.ty(&json["schema"]));
                body = "crate::Body::Json(serde_json::to_value(body)?)".into();
            } else if let Some((kind, _)) = content.iter().next() {
                args.push_str(", body: Vec<u8>");
                body = format!("crate::Body::Bytes(\"{kind}\", body)");
            }
        }

        // What a success answers: one type, or one per status.
        let mut answers: Vec<(String, String)> = Vec::new();
        for (status, response) in op["responses"].as_object().expect("responses") {
            if !status.starts_with('2') {
                continue;
            }
            let content = response.get("content").and_then(Value::as_object);
            let ty = match content {
                None => "()".to_string(),
                Some(c) if c.is_empty() => "serde_json::Value".to_string(),
                Some(c) => match c.get("application/json") {
                    Some(json) => self.ty(&json["schema"]),
                    None => "String".to_string(),
                },
            };
            answers.push((status.clone(), ty));
        }
        let distinct: BTreeSet<&str> = answers.iter().map(|(_, t)| t.as_str()).collect();
        let (answer, decode) = if distinct.len() == 1 {
            let ty = answers[0].1.clone();
            let decode = format!("crate::decode::<{ty}>(&response)?");
            (ty, decode)
        } else {
            let ty = format!("{}Answer", camel(id));
            let _ = writeln!(
                out,
                "/// What [`Client::{name}`] answers, by status.\n\
                 #[derive(Clone, Debug, PartialEq)]\npub enum {ty} {{"
            );
            let mut arms = String::new();
            for (status, t) in &answers {
                let _ = writeln!(out, "    Status{status}({t}),");
                let _ = writeln!(
                    arms,
                    "            {status} => {ty}::Status{status}(crate::decode::<{t}>(&response)?),"
                );
            }
            out.push_str("}\n\n");
            let decode = format!(
                "match response.status {{\n{arms}            other => return Err(crate::Error::Unexpected(other)),\n        }}"
            );
            (ty, decode)
        };
        let split = if others.is_empty() {
            "(Vec::new(), Vec::new())".to_string()
        } else {
            "params.split()".to_string()
        };
        let summary = op.get("summary").or_else(|| op.get("description")).cloned();
        let _ = write!(
            out,
            "impl crate::Client {{\n{}    /// `{} {path}`\n    pub fn {name}(&self{args}) -> crate::Result<crate::Reply<{answer}>> {{\n        let (query, headers) = {split};\n        let response = self.call(\"{}\", &[{}], &query, &headers, {body})?;\n        Ok(crate::Reply {{\n            status: response.status,\n            etag: response.etag.clone(),\n            location: response.location.clone(),\n            body: {decode},\n        }})\n    }}\n}}\n\n",
            doc(summary.as_ref(), "    "),
            method.to_uppercase(),
            method.to_uppercase(),
            segments.join(", "),
        );
        out
    }
}
