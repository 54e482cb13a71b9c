//! The argument list of a TorchScript module's `forward()`.
//!
//! tch exposes no schema API, but libtorch prints the full `FunctionSchema` in the error
//! it raises when `forward()` gets more arguments than it declares (`... Declaration:
//! forward(__torch__.M self, Tensor x, Tensor y) -> Tensor`). That check runs before any
//! model code, so probing with too many arguments reads the schema without executing the
//! model. This module parses that declaration; it is pure and knows nothing of tch.

/// What an argument of `forward()` accepts, as far as binding inputs goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    Tensor,
    /// `Dict(str, Tensor)`: every input goes in one dictionary keyed by name.
    TensorDict,
    /// Anything else, as libtorch prints it (`int`, `Tensor[]`, `Tensor?`, ...).
    Other(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Argument {
    pub name: String,
    pub ty: ArgType,
}

/// The arguments of `forward()` after `self`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardSchema {
    pub args: Vec<Argument>,
}

/// More arguments than any `forward()` declares: libtorch refuses them before running it.
pub const PROBE_ARGS: usize = 1024;

const MARKER: &str = "Declaration: forward(";

/// Reads the schema from a libtorch error that quotes `forward()`'s declaration.
pub fn parse_declaration(message: &str) -> Option<ForwardSchema> {
    let start = message.find(MARKER)? + MARKER.len();
    let params = matching_paren(&message[start..])?;
    let mut args = Vec::new();
    for (i, piece) in split_top_level(params, ',').into_iter().enumerate() {
        let piece = piece.trim();
        if piece.is_empty() || piece == "*" {
            continue;
        }
        let decl = split_top_level(piece, '=')
            .into_iter()
            .next()
            .unwrap_or(piece)
            .trim();
        let (ty, name) = decl.rsplit_once(char::is_whitespace)?;
        let ty = ty.trim();
        // The module itself comes first, typed by its class (`__torch__.pkg.Class self`).
        if i == 0 && (ty.starts_with("__torch__.") || name == "self") {
            continue;
        }
        args.push(Argument {
            name: name.to_string(),
            ty: classify(ty),
        });
    }
    Some(ForwardSchema { args })
}

fn classify(ty: &str) -> ArgType {
    let compact: String = ty.chars().filter(|c| !c.is_whitespace()).collect();
    match compact.as_str() {
        "Tensor" => ArgType::Tensor,
        "Dict(str,Tensor)" => ArgType::TensorDict,
        _ => ArgType::Other(ty.to_string()),
    }
}

/// The text up to the parenthesis closing an already opened one.
fn matching_paren(s: &str) -> Option<&str> {
    let mut depth = 0usize;
    let mut quote = None;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{' | '<') => depth += 1,
            (None, ')') if depth == 0 => return Some(&s[..i]),
            (None, ')' | ']' | '}' | '>') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Splits on `sep` outside brackets and quotes.
fn split_top_level(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut quote = None;
    let mut from = 0;
    for (i, c) in s.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(' | '[' | '{' | '<') => depth += 1,
            (None, ')' | ']' | '}' | '>') => depth = depth.saturating_sub(1),
            (None, c) if c == sep && depth == 0 => {
                out.push(&s[from..i]);
                from = i + c.len_utf8();
            }
            _ => {}
        }
    }
    out.push(&s[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(name: &str, ty: ArgType) -> Argument {
        Argument {
            name: name.into(),
            ty,
        }
    }

    #[track_caller]
    fn check(message: &str, want: Option<Vec<Argument>>) {
        assert_eq!(
            parse_declaration(message),
            want.map(|args| ForwardSchema { args })
        );
    }

    #[test]
    fn declarations() {
        use ArgType::*;
        check(
            "Expected at most 3 argument(s) for operator 'forward', but received 1025 argument(s). \
             Declaration: forward(__torch__.despina_torch_defs.AddSub self, Tensor INPUT__0, Tensor INPUT__1) \
             -> ((Tensor, Tensor))\nException raised from checkAndNormalizeInputs at x.h:32",
            Some(vec![arg("INPUT__0", Tensor), arg("INPUT__1", Tensor)]),
        );
        check(
            "Declaration: forward(__torch__.M self) -> Tensor",
            Some(vec![]),
        );
        check(
            "Declaration: forward(__torch__.M self, Dict(str, Tensor) inputs) -> Tensor",
            Some(vec![arg("inputs", TensorDict)]),
        );
        check(
            "Declaration: forward(__torch__.M self, Tensor x, int k=3, str mode=\"a,b)\", Tensor? y=None, *, Tensor[] z) -> Tensor",
            Some(vec![
                arg("x", Tensor),
                arg("k", Other("int".into())),
                arg("mode", Other("str".into())),
                arg("y", Other("Tensor?".into())),
                arg("z", Other("Tensor[]".into())),
            ]),
        );
        check(
            "Declaration: forward(__torch__.M self, (Tensor, Tensor) pair, Dict(str, int) d) -> Tensor",
            Some(vec![
                arg("pair", Other("(Tensor, Tensor)".into())),
                arg("d", Other("Dict(str, int)".into())),
            ]),
        );
        check("forward() missing value for argument 'x'", None);
        check("Declaration: forward(__torch__.M self, Tensor x", None);
        check(
            "Declaration: forward(__torch__.M self, Tensor) -> Tensor",
            None,
        );
    }
}
