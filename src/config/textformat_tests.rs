use super::*;

/// Renders a tree compactly: `a=1 b={c="x"} d=[1, 2]`, floats as `f1.5`.
fn render(fields: &[Field]) -> String {
    fields
        .iter()
        .map(|f| format!("{}={}", f.name, render_value(&f.value)))
        .collect::<Vec<_>>()
        .join(" ")
}

fn render_value(v: &Value) -> String {
    match &v.kind {
        ValueKind::Message(fields) => format!("{{{}}}", render(fields)),
        ValueKind::List(items) => {
            let items: Vec<String> = items.iter().map(render_value).collect();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Str(bytes) => {
            let mut s = String::from("\"");
            for chunk in bytes.utf8_chunks() {
                s.push_str(&chunk.valid().escape_debug().to_string());
                for b in chunk.invalid() {
                    s.push_str(&format!("\\x{b:02x}"));
                }
            }
            s.push('"');
            s
        }
        ValueKind::Int {
            negative,
            magnitude,
        } => {
            format!("{}{magnitude}", if *negative { "-" } else { "" })
        }
        ValueKind::Float(x) => format!("f{x}"),
        ValueKind::Ident { negative, name } => {
            format!("{}{name}", if *negative { "-" } else { "" })
        }
    }
}

/// `expect` is the rendered tree, or `error L:C: message`.
#[track_caller]
fn check(input: &str, expect: &str) {
    let got = match parse(input) {
        Ok(fields) => render(&fields),
        Err(e) => format!("error {e}"),
    };
    assert_eq!(got, expect, "input: {input:?}");
}

#[test]
fn fields_and_separators() {
    check("", "");
    check("   # only a comment\n", "");
    check("name: \"m\"", "name=\"m\"");
    check("a: 1 b: 2", "a=1 b=2");
    check("a: 1, b: 2; c: 3", "a=1 b=2 c=3");
    check("a:1;b:2,", "a=1 b=2");
    check("a: 1 # trailing comment\nb: 2", "a=1 b=2");
    check("a #c\n : #c\n 1", "a=1");
    check("_x9: 1", "_x9=1");
    check("a:\t\x0b\x0c\r\n1", "a=1");
}

#[test]
fn messages() {
    check("m { a: 1 }", "m={a=1}");
    check("m: { a: 1 }", "m={a=1}");
    check("m < a: 1 >", "m={a=1}");
    check("m: <a: 1>", "m={a=1}");
    check("m {}", "m={}");
    check("m <>", "m={}");
    check("m { n { o { p: 1 } } }", "m={n={o={p=1}}}");
    check("m { a: 1, b: 2; }, m { }", "m={a=1 b=2} m={}");
    check("m{a:1}n{b:2}", "m={a=1} n={b=2}");
}

#[test]
fn lists() {
    check("dims: [ 1, 2, 3 ]", "dims=[1, 2, 3]");
    check("dims: []", "dims=[]");
    check("dims: [ ]", "dims=[]");
    check("dims: [-1]", "dims=[-1]");
    check(
        "input [ { name: \"a\" }, { name: \"b\" } ]",
        "input=[{name=\"a\"}, {name=\"b\"}]",
    );
    check(
        "input: [ { name: \"a\" }, < name: \"b\" > ]",
        "input=[{name=\"a\"}, {name=\"b\"}]",
    );
    check("input []", "input=[]");
    check("s: [\"a\", 'b' \"c\"]", "s=[\"a\", \"bc\"]");
    check("k: [A, B]", "k=[A, B]");
    check("d: 1 d: 2", "d=1 d=2");
}

#[test]
fn strings() {
    check(r#"s: "plain""#, r#"s="plain""#);
    check(r#"s: 'single'"#, r#"s="single""#);
    check(r#"s: 'it"s'"#, r#"s="it\"s""#);
    check(r#"s: "it's""#, r#"s="it\'s""#);
    check(r#"s: "a\nb\tc\\d\'e\"f""#, r#"s="a\nb\tc\\d\'e\"f""#);
    check(r#"s: "\a\b\f\v\r\?""#, r#"s="\u{7}\u{8}\u{c}\u{b}\r?""#);
    check(r#"s: "\101\102\103""#, r#"s="ABC""#);
    check(r#"s: "\0""#, r#"s="\0""#);
    check(r#"s: "\1234""#, r#"s="S4""#);
    check(r#"s: "\x41\x4a\x4""#, r#"s="AJ\u{4}""#);
    check(r#"s: "\xff""#, r#"s="\xff""#);
    check(r#"s: "\u00e9\U0001F600""#, r#"s="é😀""#);
    check(r#"s: "\ud83d\ude00""#, r#"s="😀""#);
    check(r#"s: "héllo wörld""#, r#"s="héllo wörld""#);
    check(r#"s: "a" "b" 'c'"#, r#"s="abc""#);
    check("s: \"a\" # comment\n \"b\"", r#"s="ab""#);
    check(r#"s: """#, r#"s="""#);
}

#[test]
fn numbers() {
    check("n: 0", "n=0");
    check("n: 42", "n=42");
    check("n: -42", "n=-42");
    check("n: - 42", "n=-42");
    check("n: 0x1F", "n=31");
    check("n: 0X1f", "n=31");
    check("n: -0x10", "n=-16");
    check("n: 017", "n=15");
    check("n: 00", "n=0");
    check("n: 18446744073709551615", "n=18446744073709551615");
    check("n: 1.5", "n=f1.5");
    check("n: -1.5", "n=f-1.5");
    check("n: .5", "n=f0.5");
    check("n: 5.", "n=f5");
    check("n: 1e3", "n=f1000");
    check("n: 1E-3", "n=f0.001");
    check("n: 2.5e+2", "n=f250");
    check("n: 1.5f", "n=f1.5");
    check("n: 2F", "n=f2");
    check("n: 0.0", "n=f0");
    check("n: inf", "n=inf");
    check("n: -inf", "n=-inf");
    check("n: -Infinity", "n=-Infinity");
    check("n: nan", "n=nan");
    check(
        "b: true b: t b: True b: false b: f b: False",
        "b=true b=t b=True b=false b=f b=False",
    );
    check("e: TYPE_FP32", "e=TYPE_FP32");
}

#[test]
fn syntax_errors() {
    check(
        "a 1",
        "error 1:3: expected `:` after field name `a`, found `1`",
    );
    check("a: ", "error 1:4: expected a value, found end of input");
    check("a: }", "error 1:4: expected a value, found `}`");
    check("}", "error 1:1: unexpected `}` with no open message");
    check(
        "a: 1\n  >",
        "error 2:3: unexpected `>` with no open message",
    );
    check(
        "m {\n a: 1\n",
        "error 3:1: expected `}` to close `{` at 1:3, found end of input",
    );
    check(
        "m { a: 1 >",
        "error 1:10: expected `}` to close `{` at 1:3, found `>`",
    );
    check(
        "m < a: 1 }",
        "error 1:10: expected `>` to close `<` at 1:3, found `}`",
    );
    check("1: 2", "error 1:1: expected a field name, found `1`");
    check(
        "a: [1, 2",
        "error 1:9: expected `,` or `]` in the list opened at 1:4, found end of input",
    );
    check(
        "a: [1 2]",
        "error 1:7: expected `,` or `]` in the list opened at 1:4, found `2`",
    );
    check("a: [1,]", "error 1:7: expected a value, found `]`");
    check(
        "dims [1, 2]",
        "error 1:7: expected `{` (a list without `:` holds messages), found `1`",
    );
    check(
        "[ext.field]: 1",
        "error 1:1: extension and Any fields (`[type.name]`) are not supported in a model configuration",
    );
    check(
        "m { [type.googleapis.com/x] { } }",
        "error 1:5: extension and Any fields (`[type.name]`) are not supported in a model configuration",
    );
    check(
        "a: -",
        "error 1:5: expected a number after `-`, found end of input",
    );
    check(
        "a: -\"x\"",
        "error 1:5: expected a number after `-`, found `\"`",
    );
    check("a: @", "error 1:4: expected a value, found `@`");
    check(
        "héllo: 1",
        "error 1:2: expected `:` after field name `h`, found `éllo`",
    );
    check("a: 1 é: 2", "error 1:6: expected a field name, found `é`");
}

#[test]
fn number_errors() {
    check(
        "n: 08",
        "error 1:4: numbers starting with a leading zero must be octal",
    );
    check(
        "n: 12abc",
        "error 1:6: need space between number and identifier, found `abc`",
    );
    check(
        "n: 0x",
        "error 1:5: need space between number and identifier, found `x`",
    );
    check(
        "n: 0xfg",
        "error 1:7: need space between number and identifier, found `g`",
    );
    check("n: 1e", "error 1:6: expected digits after the exponent `e`");
    check(
        "n: 1e+",
        "error 1:7: expected digits after the exponent `e`",
    );
    check(
        "n: 18446744073709551616",
        "error 1:4: integer literal out of range",
    );
    check(
        "n: 0x10000000000000000",
        "error 1:4: integer literal out of range",
    );
    check("n: 1.5.5", "error 1:7: unexpected `.` after a number");
    check("n: 1..5", "error 1:6: unexpected `.` after a number");
}

#[test]
fn string_errors() {
    check("s: \"abc", "error 1:4: unterminated string literal");
    check("s: 'abc\"", "error 1:4: unterminated string literal");
    check(
        "s: \"ab\ncd\"",
        "error 1:4: unterminated string literal (strings cannot span lines)",
    );
    check(r#"s: "\q""#, r#"error 1:5: invalid escape sequence `\q`"#);
    check(r#"s: "\x""#, r#"error 1:5: expected hex digits after `\x`"#);
    check(
        r#"s: "\u12""#,
        r#"error 1:5: expected 4 hex digits after `\u`"#,
    );
    check(
        r#"s: "\ud800""#,
        "error 1:5: unpaired surrogate in unicode escape",
    );
    check(
        r#"s: "\U00110000""#,
        "error 1:5: invalid unicode escape (code point 0x110000)",
    );
    check("s: \"a\\", "error 1:6: unterminated string literal");
}

#[test]
fn positions_are_one_based_in_characters() {
    let err = parse("# c\nname: \"m\"\n\téé: 1")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("3:2: expected a field name, found `éé`")
    );
    let fields =
        parse("# c\nname: \"m\"\n  input [ { dims: [ 4, -1 ] } ]\n\tx: 1").unwrap_or_default();
    assert_eq!(fields[0].pos, Pos::new(2, 1));
    assert_eq!(fields[0].value.pos, Pos::new(2, 7));
    assert_eq!(fields[1].pos, Pos::new(3, 3));
    let ValueKind::List(items) = &fields[1].value.kind else {
        panic!("not a list")
    };
    assert_eq!(items[0].pos, Pos::new(3, 11));
    let ValueKind::Message(inner) = &items[0].kind else {
        panic!("not a message")
    };
    assert_eq!(inner[0].pos, Pos::new(3, 13));
    let ValueKind::List(dims) = &inner[0].value.kind else {
        panic!("not a list")
    };
    assert_eq!(dims[1].pos, Pos::new(3, 24));
    assert_eq!(fields[2].pos, Pos::new(4, 2));
    let fields = parse("s: \"ééé\" t: 1").unwrap_or_default();
    assert_eq!(fields[1].pos, Pos::new(1, 10));
}

#[test]
fn depth_limit() {
    let ok = format!("{}{}", "m { ".repeat(MAX_DEPTH), "} ".repeat(MAX_DEPTH));
    assert!(parse(&ok).is_ok());
    let deep = format!(
        "{}{}",
        "m { ".repeat(MAX_DEPTH + 1),
        "} ".repeat(MAX_DEPTH + 1)
    );
    check(
        &deep,
        &format!(
            "error 1:{}: nesting is deeper than 100 levels",
            4 * MAX_DEPTH + 3
        ),
    );
    let hostile = "m {".repeat(100_000);
    assert!(parse(&hostile).is_err());
    let hostile_list = format!("m: [{}", "{ a [".repeat(50_000));
    assert!(parse(&hostile_list).is_err());
}
