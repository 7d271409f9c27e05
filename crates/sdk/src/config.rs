//! Configuration parsing whose errors point at the offending field.

use serde::de::DeserializeOwned;

use crate::ConfigError;

/// Parse a JSON configuration into `T`. A type error, a missing field or an unknown
/// key (with `#[serde(deny_unknown_fields)]`) comes back with the JSON Pointer of the
/// field it is about.
pub fn parse<T: DeserializeOwned>(json: &str) -> Result<T, Vec<ConfigError>> {
    let mut de = serde_json::Deserializer::from_str(json);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let pointer = pointer(e.path());
        vec![ConfigError::new(pointer, message(e.inner()))]
    })?;
    de.end()
        .map_err(|e| vec![ConfigError::new("", message(&e))])?;
    Ok(value)
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        out.push('/');
        match segment {
            Segment::Seq { index } => out.push_str(&index.to_string()),
            // RFC 6901 escaping: `~` first, then `/`.
            Segment::Map { key } | Segment::Enum { variant: key } => {
                out.push_str(&key.replace('~', "~0").replace('/', "~1"))
            }
            Segment::Unknown => out.push('?'),
        }
    }
    out
}

/// serde_json's message without its " at line L column C" suffix: the pointer says
/// where, and a configuration is rarely written with line breaks in mind.
fn message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rsplit_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}

/// Collects every problem of a configuration so that an operator sees them all at once.
#[derive(Debug, Default)]
pub struct Problems(Vec<ConfigError>);

impl Problems {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }

    /// Check that a list of names is not empty and holds no blank name.
    pub fn names(&mut self, path: &str, names: &[String]) {
        if names.is_empty() {
            self.push(path, "name at least one value");
        }
        for (i, name) in names.iter().enumerate() {
            if name.trim().is_empty() {
                self.push(format!("{path}/{i}"), "must not be blank");
            }
        }
    }

    /// Every problem pushed so far, for when there is no value to return. Push at least
    /// one first.
    pub fn fail<T>(self) -> Result<T, Vec<ConfigError>> {
        Err(self.0)
    }

    /// `value` if no problem was pushed, every problem otherwise.
    pub fn finish<T>(self, value: T) -> Result<T, Vec<ConfigError>> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "the test reads what parses, not every field")]
    struct Cfg {
        countries: Vec<String>,
        #[serde(default)]
        strict: bool,
    }

    #[test]
    fn type_error_points_into_the_list() {
        let err = parse::<Cfg>(r#"{"countries":["DE", 7]}"#).expect_err("bad type");
        assert_eq!(err[0].path, "/countries/1");
        assert!(
            err[0].message.starts_with("invalid type: integer `7`"),
            "{:?}",
            err[0]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse::<Cfg>(r#"{"countries":[],"contries":[]}"#).expect_err("unknown key");
        assert!(err[0].message.contains("`contries`"), "{:?}", err[0]);
    }

    #[test]
    fn missing_field_and_trailing_garbage() {
        let err = parse::<Cfg>("{}").expect_err("missing");
        assert!(err[0].message.contains("missing field `countries`"));
        let err = parse::<Cfg>(r#"{"countries":[]} x"#).expect_err("trailing");
        assert_eq!(err[0].path, "");
    }
}
