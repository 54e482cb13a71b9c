//! Round trips: Triton's JSON → ModelConfig → JSON, and text → ModelConfig
//! → JSON → ModelConfig, over the whole corpus.

use serde_json::Value;

use super::corpus::{canonical, cases, load};
use crate::config::*;

#[test]
fn triton_json_round_trips() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in cases() {
        let Ok(text) = std::fs::read_to_string(case.dir.join("triton.json")) else {
            continue;
        };
        let Ok(want) = serde_json::from_str::<Value>(&text) else {
            failures.push(format!("{}: unreadable triton.json", case.name));
            continue;
        };
        match from_json(&text) {
            Ok(cfg) => {
                if canonical(&to_json(&cfg)) != canonical(&want) {
                    failures.push(format!("{}: JSON → config → JSON differs", case.name));
                }
            }
            Err(e) => failures.push(format!(
                "{}: from_json refused Triton's JSON: {e}",
                case.name
            )),
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 60, "only {checked} cases");
}

/// NaN is not equal to itself, so configs holding it compare by JSON only.
fn has_nan(v: &Value) -> bool {
    match v {
        Value::String(s) => s == "NaN",
        Value::Array(a) => a.iter().any(has_nan),
        Value::Object(o) => o.values().any(has_nan),
        _ => false,
    }
}

#[test]
fn text_to_config_to_json_to_config() {
    let all = cases();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in &all {
        // Both the parsed config as written and the normalised one.
        let raw = parse(&case.text).ok().map(|(c, _)| c);
        let normalized = load(case, &all).ok();
        for cfg in raw.into_iter().chain(normalized) {
            let json = to_json(&cfg);
            let text = serde_json::to_string(&json).unwrap_or_default();
            match from_json(&text) {
                Ok(back) => {
                    if canonical(&to_json(&back)) != canonical(&json)
                        || (!has_nan(&json) && back != cfg)
                    {
                        failures.push(format!(
                            "{}: text → config → JSON → config differs",
                            case.name
                        ));
                    }
                }
                Err(e) => failures.push(format!(
                    "{}: from_json refused to_json's output: {e}",
                    case.name
                )),
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked > 150, "only {checked} configs");
}
