//! Errors of the config module: every one carries the field path it is
//! about and, where known, the line and column in the source text.

use std::fmt;

/// A position in the source text: 1-based line and 1-based column counted
/// in characters (a tab counts as one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(line: u32, col: u32) -> Pos {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// "; did you mean `x`?" when a close enough candidate exists, else nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suggestion(pub Option<String>);

impl fmt::Display for Suggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(s) => write!(f, "; did you mean `{s}`?"),
            None => Ok(()),
        }
    }
}

/// What went wrong, without where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    /// The text is not valid protobuf text format (or not valid JSON).
    #[error("{0}")]
    Syntax(String),
    #[error("nesting is deeper than {0} levels")]
    TooDeep(usize),
    #[error("unknown field `{name}` in {message}{suggestion}")]
    UnknownField {
        name: String,
        message: String,
        suggestion: Suggestion,
    },
    #[error("unknown value `{value}` for {enum_name}{suggestion}")]
    UnknownEnumValue {
        value: String,
        enum_name: String,
        suggestion: Suggestion,
    },
    #[error("field `{name}` is set more than once (first at {first})")]
    DuplicateField { name: String, first: Pos },
    #[error(
        "field `{name}` conflicts with `{other}` (set at {other_pos}): both belong to oneof `{oneof}`"
    )]
    OneofConflict {
        name: String,
        other: String,
        other_pos: Pos,
        oneof: String,
    },
    /// A value of the wrong shape or type for its field.
    #[error("{0}")]
    BadValue(String),
    /// A config that parses but breaks one of Triton's rules.
    #[error("{0}")]
    Invalid(String),
    /// A bug: the embedded descriptors could not be used.
    #[error("internal error: {0}")]
    Internal(String),
}

/// An error about a model configuration.
///
/// Display is `[file:][line:col: ][path: ]message`, e.g.
/// `models/m/config.pbtxt:3:1: unknown field \`max_batch_sise\` in ModelConfig; did you mean \`max_batch_size\`?`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    kind: Box<ErrorKind>,
    path: String,
    pos: Option<Pos>,
    file: Option<String>,
}

impl ConfigError {
    pub fn new(kind: ErrorKind, path: impl Into<String>, pos: Option<Pos>) -> ConfigError {
        ConfigError {
            kind: Box::new(kind),
            path: path.into(),
            pos,
            file: None,
        }
    }

    /// A rule violation about `path` (no position yet).
    pub fn invalid(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::new(ErrorKind::Invalid(message.into()), path, None)
    }

    pub(crate) fn syntax(pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::new(ErrorKind::Syntax(message.into()), "", Some(pos))
    }

    pub(crate) fn bad_value(path: &str, pos: Pos, message: impl Into<String>) -> ConfigError {
        ConfigError::new(ErrorKind::BadValue(message.into()), path, Some(pos))
    }

    /// Names the file the text came from, for Display.
    pub fn with_file(mut self, file: impl Into<String>) -> ConfigError {
        self.file = Some(file.into());
        self
    }

    /// Sets the position when it is not known yet.
    pub fn with_pos(mut self, pos: Option<Pos>) -> ConfigError {
        if self.pos.is_none() {
            self.pos = pos;
        }
        self
    }

    /// Gives the error the position of its path (or nearest ancestor) in
    /// `sm`, when it has none yet.
    pub fn locate(self, sm: &super::SourceMap) -> ConfigError {
        let pos = sm.position(&self.path);
        self.with_pos(pos)
    }

    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// The field path the error is about (`input[1].dims`), empty for the
    /// whole config.
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn pos(&self) -> Option<Pos> {
        self.pos
    }

    pub fn file(&self) -> Option<&str> {
        self.file.as_deref()
    }

    /// The message without file, position or path.
    pub fn message(&self) -> String {
        self.kind.to_string()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}:")?;
        }
        if let Some(pos) = self.pos {
            write!(f, "{pos}: ")?;
        } else if self.file.is_some() {
            write!(f, " ")?;
        }
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for ConfigError {}

/// The candidate nearest to `wanted` (case-insensitive optimal string
/// alignment distance), if it is close enough to be a plausible typo.
pub fn nearest<'a, I>(wanted: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let wanted_lc = wanted.to_lowercase();
    let limit = (wanted.chars().count() / 3).max(2);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = osa_distance(&wanted_lc, &c.to_lowercase());
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c.to_string())
}

/// Edit distance with insertions, deletions, substitutions and adjacent
/// transpositions (optimal string alignment).
fn osa_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        d[i * w] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(w) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_nearest(wanted: &str, candidates: &[&str], expect: Option<&str>) {
        assert_eq!(
            nearest(wanted, candidates.iter().copied()).as_deref(),
            expect
        );
    }

    #[test]
    fn suggestions() {
        let fields = ["name", "max_batch_size", "input", "output", "platform"];
        check_nearest("max_batch_sise", &fields, Some("max_batch_size"));
        check_nearest("maxbatchsize", &fields, Some("max_batch_size"));
        check_nearest("inptu", &fields, Some("input"));
        check_nearest("NAME", &fields, Some("name"));
        check_nearest("zzzzzz", &fields, None);
        check_nearest(
            "TYPE_FP23",
            &["TYPE_FP16", "TYPE_FP32", "TYPE_INT8"],
            Some("TYPE_FP32"),
        );
    }

    #[test]
    fn osa() {
        assert_eq!(osa_distance("", ""), 0);
        assert_eq!(osa_distance("abc", ""), 3);
        assert_eq!(osa_distance("ab", "ba"), 1);
        assert_eq!(osa_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn display() {
        let e = ConfigError::new(
            ErrorKind::UnknownField {
                name: "max_batch_sise".into(),
                message: "ModelConfig".into(),
                suggestion: Suggestion(Some("max_batch_size".into())),
            },
            "",
            Some(Pos::new(3, 1)),
        )
        .with_file("m/config.pbtxt");
        assert_eq!(
            e.to_string(),
            "m/config.pbtxt:3:1: unknown field `max_batch_sise` in ModelConfig; did you mean `max_batch_size`?"
        );
        let e = ConfigError::invalid("input[0].dims", "must specify 'dims'");
        assert_eq!(e.to_string(), "input[0].dims: must specify 'dims'");
        let e = e.with_file("c.pbtxt");
        assert_eq!(e.to_string(), "c.pbtxt: input[0].dims: must specify 'dims'");
    }
}
