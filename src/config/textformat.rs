//! A `nom` parser for the protobuf text format as `config.pbtxt` files use it.
//!
//! It knows nothing of the schema: it produces a tree of fields whose values
//! are messages, lists or scalar tokens, each with its position. `reflect`
//! gives the tree its types. Nesting is limited to [`MAX_DEPTH`] so that
//! hostile input cannot exhaust the stack.

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while, take_while1};
use nom::character::complete::{char, digit0, digit1, hex_digit1, one_of, satisfy};
use nom::combinator::{opt, recognize};
use nom::error::{ErrorKind as NomKind, ParseError};
use nom::multi::fold_many0;
use nom::{IResult, Parser};

use super::error::{ConfigError, ErrorKind, Pos};

/// The deepest nesting of messages accepted.
pub const MAX_DEPTH: usize = 100;

/// `name: value` (or `name { ... }`) with the position of the name.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub pos: Pos,
    pub value: Value,
}

/// A value with the position of its first character.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub pos: Pos,
    pub kind: ValueKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    Message(Vec<Field>),
    /// `[a, b]`: scalars, or messages.
    List(Vec<Value>),
    /// One or more adjacent string literals, unescaped and concatenated.
    Str(Vec<u8>),
    /// An integer literal (decimal, `0x` hex or `0` octal).
    Int {
        negative: bool,
        magnitude: u64,
    },
    /// A literal with a `.`, an exponent or an `f` suffix.
    Float(f64),
    /// An identifier (`TYPE_FP32`, `true`, `inf`), `-` allowed for `-inf`.
    Ident {
        negative: bool,
        name: String,
    },
}

impl ValueKind {
    /// How the value reads in an error message.
    pub fn describe(&self) -> String {
        match self {
            ValueKind::Message(_) => "a message".to_string(),
            ValueKind::List(_) => "a list".to_string(),
            ValueKind::Str(s) => {
                format!("string \"{}\"", String::from_utf8_lossy(s).escape_debug())
            }
            ValueKind::Int {
                negative,
                magnitude,
            } => {
                format!("integer {}{magnitude}", if *negative { "-" } else { "" })
            }
            ValueKind::Float(v) => format!("number {v}"),
            ValueKind::Ident { negative, name } => {
                format!("`{}{name}`", if *negative { "-" } else { "" })
            }
        }
    }
}

/// Parses a whole text-format message.
pub fn parse(text: &str) -> Result<Vec<Field>, ConfigError> {
    let ctx = Ctx::new(text);
    match top(text, &ctx) {
        Ok((_, fields)) => Ok(fields),
        Err(nom::Err::Error(e) | nom::Err::Failure(e)) => {
            let pos = ctx.pos(e.at);
            let kind = e
                .kind
                .unwrap_or_else(|| ErrorKind::Syntax(format!("unexpected {}", found(e.at))));
            Err(ConfigError::new(kind, "", Some(pos)))
        }
        Err(nom::Err::Incomplete(_)) => {
            Err(ConfigError::syntax(ctx.pos(""), "unexpected end of input"))
        }
    }
}

/// Offsets to positions.
struct Ctx<'a> {
    full: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Ctx<'a> {
    fn new(full: &'a str) -> Ctx<'a> {
        let mut line_starts = vec![0];
        line_starts.extend(full.match_indices('\n').map(|(i, _)| i + 1));
        Ctx { full, line_starts }
    }

    /// The position of `rest`, a suffix of the full text.
    fn pos(&self, rest: &str) -> Pos {
        let offset = self.full.len().saturating_sub(rest.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self
            .full
            .get(start..offset)
            .map_or(0, |s| s.chars().count());
        Pos::new(saturate(line), saturate(col + 1))
    }
}

fn saturate(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The error of the inner parsers: where, and (for hard errors) what.
#[derive(Debug)]
struct PErr<'a> {
    at: &'a str,
    kind: Option<ErrorKind>,
}

impl<'a> ParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _: NomKind) -> Self {
        PErr {
            at: input,
            kind: None,
        }
    }

    fn append(_: &'a str, _: NomKind, other: Self) -> Self {
        other
    }
}

type Res<'a, O> = IResult<&'a str, O, PErr<'a>>;

fn fail<'a, O>(at: &'a str, message: impl Into<String>) -> Res<'a, O> {
    Err(nom::Err::Failure(PErr {
        at,
        kind: Some(ErrorKind::Syntax(message.into())),
    }))
}

/// "`x`" for the token at the start of `rest`, or "end of input".
fn found(rest: &str) -> String {
    let word: String = rest
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .take(30)
        .collect();
    if !word.is_empty() {
        return format!("`{word}`");
    }
    match rest.chars().next() {
        Some(c) if c.is_control() => format!("`{}`", c.escape_debug()),
        Some(c) => format!("`{c}`"),
        None => "end of input".to_string(),
    }
}

fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Whitespace and `#` comments.
fn ws(i: &str) -> Res<'_, ()> {
    let comment = recognize((char('#'), take_while(|c| c != '\n')));
    fold_many0(alt((take_while1(is_space), comment)), || (), |_, _| ()).parse(i)
}

fn ident(i: &str) -> Res<'_, &str> {
    recognize((
        satisfy(|c| c.is_ascii_alphabetic() || c == '_'),
        take_while(|c: char| c.is_ascii_alphanumeric() || c == '_'),
    ))
    .parse(i)
}

fn top<'a>(i: &'a str, ctx: &Ctx<'a>) -> Res<'a, Vec<Field>> {
    let (mut i, ()) = ws(i)?;
    let mut fields = Vec::new();
    while let Some(c) = i.chars().next() {
        if matches!(c, '}' | '>') {
            return fail(i, format!("unexpected `{c}` with no open message"));
        }
        let (rest, f) = field(i, ctx, 0)?;
        fields.push(f);
        i = rest;
    }
    Ok((i, fields))
}

/// One field, with its optional trailing `,` or `;`.
fn field<'a>(i: &'a str, ctx: &Ctx<'a>, depth: usize) -> Res<'a, Field> {
    let pos = ctx.pos(i);
    if i.starts_with('[') {
        return fail(
            i,
            "extension and Any fields (`[type.name]`) are not supported in a model configuration",
        );
    }
    let Ok((i, name)) = ident(i) else {
        return fail(i, format!("expected a field name, found {}", found(i)));
    };
    let (i, ()) = ws(i)?;
    let (i, colon) = opt(char(':')).parse(i)?;
    let (i, ()) = ws(i)?;
    let (i, value) = match i.chars().next() {
        Some('{' | '<') => message(i, ctx, depth + 1)?,
        Some('[') => list(i, ctx, colon.is_some(), depth)?,
        _ if colon.is_some() => scalar(i, ctx)?,
        _ => {
            return fail(
                i,
                format!("expected `:` after field name `{name}`, found {}", found(i)),
            );
        }
    };
    let (i, ()) = ws(i)?;
    let (i, _) = opt(one_of(",;")).parse(i)?;
    let (i, ()) = ws(i)?;
    let field = Field {
        name: name.to_string(),
        pos,
        value,
    };
    Ok((i, field))
}

/// `{ fields }` or `< fields >`.
fn message<'a>(i: &'a str, ctx: &Ctx<'a>, depth: usize) -> Res<'a, Value> {
    let pos = ctx.pos(i);
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(PErr {
            at: i,
            kind: Some(ErrorKind::TooDeep(MAX_DEPTH)),
        }));
    }
    let (i, open) = one_of("{<").parse(i)?;
    let close = if open == '{' { '}' } else { '>' };
    let (mut i, ()) = ws(i)?;
    let mut fields = Vec::new();
    loop {
        match i.chars().next() {
            Some(c) if c == close => {
                let kind = ValueKind::Message(fields);
                return Ok((&i[c.len_utf8()..], Value { pos, kind }));
            }
            Some(c @ ('}' | '>')) => {
                return fail(
                    i,
                    format!("expected `{close}` to close `{open}` at {pos}, found `{c}`"),
                );
            }
            None => {
                return fail(
                    i,
                    format!("expected `{close}` to close `{open}` at {pos}, found end of input"),
                );
            }
            Some(c) if !(c.is_ascii_alphabetic() || c == '_' || c == '[') => {
                return fail(
                    i,
                    format!(
                        "expected a field name or `{close}` to close `{open}` at {pos}, found {}",
                        found(i)
                    ),
                );
            }
            Some(_) => {
                let (rest, f) = field(i, ctx, depth)?;
                fields.push(f);
                i = rest;
            }
        }
    }
}

/// `[ a, b ]`. Without a `:` before it, protobuf allows only messages.
fn list<'a>(i: &'a str, ctx: &Ctx<'a>, colon: bool, depth: usize) -> Res<'a, Value> {
    let pos = ctx.pos(i);
    let (i, _) = char('[').parse(i)?;
    let (mut i, ()) = ws(i)?;
    let mut items = Vec::new();
    if let Some(rest) = i.strip_prefix(']') {
        let kind = ValueKind::List(items);
        return Ok((rest, Value { pos, kind }));
    }
    loop {
        let (rest, item) = match i.chars().next() {
            Some('{' | '<') => message(i, ctx, depth + 1)?,
            _ if colon => scalar(i, ctx)?,
            _ => {
                return fail(
                    i,
                    format!(
                        "expected `{{` (a list without `:` holds messages), found {}",
                        found(i)
                    ),
                );
            }
        };
        items.push(item);
        let (rest, ()) = ws(rest)?;
        match rest.chars().next() {
            Some(',') => {
                let (rest, ()) = ws(&rest[1..])?;
                i = rest;
            }
            Some(']') => {
                let kind = ValueKind::List(items);
                return Ok((&rest[1..], Value { pos, kind }));
            }
            _ => {
                return fail(
                    rest,
                    format!(
                        "expected `,` or `]` in the list opened at {pos}, found {}",
                        found(rest)
                    ),
                );
            }
        }
    }
}

/// A string, number or identifier.
fn scalar<'a>(i: &'a str, ctx: &Ctx<'a>) -> Res<'a, Value> {
    let pos = ctx.pos(i);
    let (i, kind) = match i.chars().next() {
        Some('"' | '\'') => strings(i)?,
        Some('-') => {
            let (rest, ()) = ws(&i[1..])?;
            if let Ok((rest, name)) = ident(rest) {
                let name = name.to_string();
                (
                    rest,
                    ValueKind::Ident {
                        negative: true,
                        name,
                    },
                )
            } else if rest.starts_with(|c: char| c.is_ascii_digit() || c == '.') {
                let (rest, kind) = number(rest)?;
                let kind = match kind {
                    ValueKind::Int { magnitude, .. } => ValueKind::Int {
                        negative: true,
                        magnitude,
                    },
                    ValueKind::Float(v) => ValueKind::Float(-v),
                    other => other,
                };
                (rest, kind)
            } else {
                return fail(
                    rest,
                    format!("expected a number after `-`, found {}", found(rest)),
                );
            }
        }
        Some(c)
            if c.is_ascii_digit()
                || (c == '.' && i[1..].starts_with(|c: char| c.is_ascii_digit())) =>
        {
            number(i)?
        }
        _ => match ident(i) {
            Ok((rest, name)) => {
                let name = name.to_string();
                (
                    rest,
                    ValueKind::Ident {
                        negative: false,
                        name,
                    },
                )
            }
            Err(_) => return fail(i, format!("expected a value, found {}", found(i))),
        },
    };
    Ok((i, Value { pos, kind }))
}

/// Adjacent string literals, concatenated as protobuf does.
fn strings(i: &str) -> Res<'_, ValueKind> {
    let (mut i, mut bytes) = string_lit(i)?;
    loop {
        let (rest, ()) = ws(i)?;
        if !rest.starts_with(['"', '\'']) {
            return Ok((i, ValueKind::Str(bytes)));
        }
        let (rest, more) = string_lit(rest)?;
        bytes.extend(more);
        i = rest;
    }
}

/// One quoted literal with C-style escapes.
fn string_lit(start: &str) -> Res<'_, Vec<u8>> {
    let (mut i, quote) = one_of("\"'").parse(start)?;
    let mut out = Vec::new();
    loop {
        let Some(c) = i.chars().next() else {
            return fail(start, "unterminated string literal");
        };
        match c {
            '\n' => {
                return fail(
                    start,
                    "unterminated string literal (strings cannot span lines)",
                );
            }
            '\\' => {
                let (rest, ()) = escape(i, &mut out)?;
                i = rest;
            }
            c if c == quote => return Ok((&i[1..], out)),
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i = &i[c.len_utf8()..];
            }
        }
    }
}

/// One escape sequence starting at the backslash; appends its bytes.
fn escape<'a>(i: &'a str, out: &mut Vec<u8>) -> Res<'a, ()> {
    let after = &i[1..];
    let Some(c) = after.chars().next() else {
        return fail(i, "unterminated string literal");
    };
    let rest = &after[c.len_utf8()..];
    let simple = match c {
        'a' => Some(0x07),
        'b' => Some(0x08),
        'f' => Some(0x0c),
        'n' => Some(b'\n'),
        'r' => Some(b'\r'),
        't' => Some(b'\t'),
        'v' => Some(0x0b),
        '\\' | '?' | '\'' | '"' => Some(c as u8),
        _ => None,
    };
    if let Some(b) = simple {
        out.push(b);
        return Ok((rest, ()));
    }
    match c {
        '0'..='7' => {
            let digits: String = after
                .chars()
                .take_while(|c| ('0'..='7').contains(c))
                .take(3)
                .collect();
            let code = u32::from_str_radix(&digits, 8).unwrap_or(0);
            // Protobuf keeps the low byte of `\777`-style escapes.
            out.push((code & 0xff) as u8);
            Ok((&after[digits.len()..], ()))
        }
        'x' | 'X' => {
            let digits: String = rest
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .take(2)
                .collect();
            if digits.is_empty() {
                return fail(i, "expected hex digits after `\\x`");
            }
            out.push(u8::from_str_radix(&digits, 16).unwrap_or(0));
            Ok((&rest[digits.len()..], ()))
        }
        'u' | 'U' => unicode_escape(i, c, rest, out),
        _ => fail(
            i,
            format!("invalid escape sequence `\\{}`", c.escape_debug()),
        ),
    }
}

/// `\uXXXX` (with surrogate pairs) or `\UXXXXXXXX`, appended as UTF-8.
fn unicode_escape<'a>(i: &'a str, c: char, rest: &'a str, out: &mut Vec<u8>) -> Res<'a, ()> {
    let n = if c == 'u' { 4 } else { 8 };
    let hex = |s: &'a str| -> Option<(u32, &'a str)> {
        let d = s.get(..n)?;
        if !d.chars().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        Some((u32::from_str_radix(d, 16).ok()?, &s[n..]))
    };
    let Some((mut code, mut rest)) = hex(rest) else {
        return fail(i, format!("expected {n} hex digits after `\\{c}`"));
    };
    if (0xd800..0xdc00).contains(&code) {
        // A high surrogate must be followed by `\u` and a low one.
        let low = rest
            .strip_prefix("\\u")
            .and_then(hex)
            .filter(|(l, _)| (0xdc00..0xe000).contains(l));
        match low {
            Some((l, r)) => {
                code = 0x10000 + ((code - 0xd800) << 10) + (l - 0xdc00);
                rest = r;
            }
            None => return fail(i, "unpaired surrogate in unicode escape"),
        }
    }
    match char::from_u32(code) {
        Some(ch) => {
            let mut buf = [0u8; 4];
            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
            Ok((rest, ()))
        }
        None => fail(i, format!("invalid unicode escape (code point {code:#x})")),
    }
}

/// A numeric literal (without sign) as protobuf's tokenizer reads it.
fn number(i: &str) -> Res<'_, ValueKind> {
    let start = i;
    let hex: Res<'_, &str> = (alt((tag("0x"), tag("0X"))), hex_digit1)
        .map(|(_, d)| d)
        .parse(i);
    let (i, kind) = if let Ok((rest, digits)) = hex {
        match u64::from_str_radix(digits, 16) {
            Ok(magnitude) => (
                rest,
                ValueKind::Int {
                    negative: false,
                    magnitude,
                },
            ),
            Err(_) => return fail(start, "integer literal out of range"),
        }
    } else {
        let mut mantissa = alt((
            recognize((digit1, opt((char('.'), digit0)))),
            recognize((char('.'), digit1)),
        ));
        let (rest, mant) = mantissa.parse(i)?;
        let (rest, exp) = exponent(rest)?;
        let (rest, suffix) = opt(one_of("fF")).parse(rest)?;
        let is_float = mant.contains('.') || exp.is_some() || suffix.is_some();
        let literal = &start[..start.len() - rest.len() - usize::from(suffix.is_some())];
        if is_float {
            match literal.parse::<f64>() {
                Ok(v) => (rest, ValueKind::Float(v)),
                Err(_) => return fail(start, format!("invalid number `{literal}`")),
            }
        } else {
            (rest, int_literal(start, literal)?)
        }
    };
    if i.starts_with('.') {
        return fail(i, "unexpected `.` after a number");
    }
    if i.starts_with(|c: char| c.is_alphanumeric() || c == '_') {
        return fail(
            i,
            format!(
                "need space between number and identifier, found {}",
                found(i)
            ),
        );
    }
    Ok((i, kind))
}

/// `e5`, `E-3`: the exponent of a float, if any.
fn exponent(i: &str) -> Res<'_, Option<&str>> {
    let Ok((rest, _)) = one_of::<_, _, PErr<'_>>("eE").parse(i) else {
        return Ok((i, None));
    };
    let (rest, _) = opt(one_of("+-")).parse(rest)?;
    match digit1::<_, PErr<'_>>(rest) {
        Ok((rest, _)) => Ok((rest, Some(&i[..i.len() - rest.len()]))),
        Err(_) => fail(rest, "expected digits after the exponent `e`"),
    }
}

/// Decimal, or octal when it starts with `0`.
fn int_literal<'a>(start: &'a str, literal: &str) -> Result<ValueKind, nom::Err<PErr<'a>>> {
    let (digits, radix) = if literal.len() > 1 && literal.starts_with('0') {
        if !literal.chars().all(|c| ('0'..='7').contains(&c)) {
            return fail(start, "numbers starting with a leading zero must be octal")
                .map(|(_, v)| v);
        }
        (&literal[1..], 8)
    } else {
        (literal, 10)
    };
    match u64::from_str_radix(digits, radix) {
        Ok(magnitude) => Ok(ValueKind::Int {
            negative: false,
            magnitude,
        }),
        Err(_) => fail(start, "integer literal out of range").map(|(_, v)| v),
    }
}

#[cfg(test)]
#[path = "textformat_tests.rs"]
mod tests;
