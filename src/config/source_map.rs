//! Field paths (`input[1].dims`, `parameters["k"].string_value`) to the
//! position where the field was written, so that validation errors found
//! later can point at a line and column.

use std::collections::HashMap;
use std::fmt::Write;

use super::error::Pos;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    positions: HashMap<String, Pos>,
}

impl SourceMap {
    /// The position of `path`, or of its nearest recorded ancestor
    /// (`input[1].dims[7]` falls back to `input[1].dims`, then `input[1]`...).
    pub fn position(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            p = parent(p)?;
        }
    }

    /// The position of exactly `path`, if it was written.
    pub fn exact(&self, path: &str) -> Option<Pos> {
        self.positions.get(path).copied()
    }

    pub fn len(&self) -> usize {
        self.positions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Every recorded path and position, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Pos)> {
        self.positions.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Records the first position written for `path`.
    pub(crate) fn insert(&mut self, path: &str, pos: Pos) {
        self.positions.entry(path.to_string()).or_insert(pos);
    }
}

/// `parent.name`, or `name` at the top.
pub fn field_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `parent[index]`.
pub fn index_path(parent: &str, index: usize) -> String {
    format!("{parent}[{index}]")
}

/// `parent["key"]` with `"` and `\` escaped.
pub fn string_key_path(parent: &str, key: &str) -> String {
    let mut s = String::with_capacity(parent.len() + key.len() + 4);
    s.push_str(parent);
    s.push_str("[\"");
    for c in key.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s.push_str("\"]");
    s
}

/// `parent[key]` for integer and bool keys.
pub fn scalar_key_path(parent: &str, key: impl std::fmt::Display) -> String {
    let mut s = String::from(parent);
    let _ = write!(s, "[{key}]");
    s
}

/// The path without its last segment (`.name`, `[i]` or `["key"]`).
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    // Find where the last segment starts, skipping over quoted keys.
    let mut last = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in path.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '.' | '[' => last = i,
            _ => {}
        }
    }
    Some(&path[..last])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents() {
        assert_eq!(parent("input[1].dims"), Some("input[1]"));
        assert_eq!(parent("input[1]"), Some("input"));
        assert_eq!(parent("input"), Some(""));
        assert_eq!(parent(""), None);
        assert_eq!(
            parent(r#"parameters["a.b[c]"].string_value"#),
            Some(r#"parameters["a.b[c]"]"#)
        );
        assert_eq!(parent(r#"parameters["a.b[c]"]"#), Some("parameters"));
        assert_eq!(parent(r#"parameters["q\"].x"]"#), Some("parameters"));
    }

    #[test]
    fn nearest_ancestor() {
        let mut sm = SourceMap::default();
        sm.insert("input", Pos::new(2, 1));
        sm.insert("input[1]", Pos::new(3, 3));
        sm.insert("input[1].dims", Pos::new(4, 5));
        sm.insert("input[1].dims", Pos::new(9, 9));
        assert_eq!(sm.position("input[1].dims[0]"), Some(Pos::new(4, 5)));
        assert_eq!(sm.position("input[1].name"), Some(Pos::new(3, 3)));
        assert_eq!(sm.position("input[7].name"), Some(Pos::new(2, 1)));
        assert_eq!(sm.position("output[0]"), None);
        assert_eq!(sm.exact("input[1].name"), None);
    }

    #[test]
    fn paths() {
        assert_eq!(field_path("", "input"), "input");
        assert_eq!(field_path("input[0]", "dims"), "input[0].dims");
        assert_eq!(index_path("input", 3), "input[3]");
        assert_eq!(string_key_path("parameters", "k"), r#"parameters["k"]"#);
        assert_eq!(string_key_path("p", "a\"b\\"), r#"p["a\"b\\"]"#);
        assert_eq!(
            scalar_key_path("priority_queue_policy", 2u64),
            "priority_queue_policy[2]"
        );
    }
}
