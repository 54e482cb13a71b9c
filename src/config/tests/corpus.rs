//! Every case of `tests/data/config` (see its README): parse, normalise and
//! validate the `config.pbtxt`, then compare with what the real Triton did.

use std::fs;
use std::path::{Path, PathBuf};

use prost_reflect::{Kind, MessageDescriptor};
use serde_json::Value;

use crate::config::reflect::model_config_descriptor;
use crate::config::*;

/// Backend names the recorder served with Python-based stand-ins.
const STAND_INS: &[&str] = &[
    "onnxruntime",
    "pytorch",
    "tensorflow",
    "tensorrt",
    "openvino",
    "llm",
    "identity",
    "square",
    "add_sub",
    "sequence",
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/config")
}

pub(crate) struct Case {
    pub(crate) dir: PathBuf,
    pub(crate) name: String,
    pub(crate) text: String,
}

impl Case {
    fn read(&self, file: &str) -> Option<String> {
        fs::read_to_string(self.dir.join(file)).ok()
    }

    fn label(&self) -> String {
        self.dir
            .strip_prefix(corpus_dir())
            .unwrap_or(&self.dir)
            .display()
            .to_string()
    }
}

pub(crate) fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut stack = vec![corpus_dir()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
        if let Ok(text) = fs::read_to_string(dir.join("config.pbtxt")) {
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.push(Case { dir, name, text });
        }
    }
    out.sort_by(|a, b| a.dir.cmp(&b.dir));
    out
}

/// The version folder entries the recorder created.
fn version_entries(case: &Case) -> Vec<DirEntry> {
    let list = case
        .read("version_files")
        .unwrap_or_else(|| "model.py\n".to_string());
    list.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| DirEntry {
            name: l.trim_end_matches('/').to_string(),
            is_dir: l.ends_with('/'),
        })
        .collect()
}

/// Whether a step of this ensemble runs a decoupled model of the corpus.
fn ensemble_decoupled(cfg: &ModelConfig, all: &[Case]) -> bool {
    let Some(crate::proto::inference::model_config::SchedulingChoice::EnsembleScheduling(es)) =
        &cfg.scheduling_choice
    else {
        return false;
    };
    es.step.iter().any(|step| {
        all.iter()
            .filter(|c| c.name == step.model_name)
            .filter_map(|c| parse(&c.text).ok())
            .any(|(m, _)| m.model_transaction_policy.is_some_and(|p| p.decoupled))
    })
}

/// Parse, normalise and validate as the repository would; the first error.
pub(crate) fn load(case: &Case, all: &[Case]) -> Result<ModelConfig, ConfigError> {
    let (mut cfg, sm) = parse(&case.text)?;
    let mut nctx = NormalizeContext::new(case.name.clone());
    nctx.version_entries = Some(version_entries(case));
    nctx.ensemble_decoupled = ensemble_decoupled(&cfg, all);
    normalize(&mut cfg, &nctx).map_err(|e| e.locate(&sm))?;
    let mut backends = STAND_INS.to_vec();
    backends.push("python");
    let vctx = ValidateContext {
        model_name: &case.name,
        gpus: &[],
        backends: &backends,
        source_map: Some(&sm),
    };
    match validate(&cfg, &vctx).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(cfg),
    }
}

/// Triton's answer with the documented differences applied (see the README).
fn expected_json(case: &Case, cfg: &ModelConfig) -> Option<Value> {
    let mut v: Value = serde_json::from_str(&case.read("triton.json")?).ok()?;
    let obj = v.as_object_mut()?;
    let backend = obj
        .get("backend")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // The recorder's Python-based stand-in backends report runtime "model.py".
    if STAND_INS.contains(&backend.as_str()) && cfg.runtime.is_empty() {
        obj.insert("runtime".into(), Value::String(String::new()));
    }
    // despina gives its llm backend a default file name; to Triton it is a custom backend.
    if backend == "llm" && obj.get("default_model_filename") == Some(&Value::String(String::new()))
    {
        obj.insert(
            "default_model_filename".into(),
            Value::String("model.gguf".into()),
        );
    }
    Some(v)
}

/// Sorts the keys of protobuf map objects (Triton prints them in hash
/// order) so that the rest can be compared in order.
pub(crate) fn sort_maps(v: &mut Value, desc: &MessageDescriptor) {
    let Value::Object(obj) = v else { return };
    for (key, child) in obj.iter_mut() {
        let Some(fd) = desc.get_field_by_name(key) else {
            continue;
        };
        let Kind::Message(md) = fd.kind() else {
            continue;
        };
        if fd.is_map() {
            let value_desc = match md.map_entry_value_field().kind() {
                Kind::Message(vd) => Some(vd),
                _ => None,
            };
            if let Value::Object(m) = child {
                let mut entries: Vec<(String, Value)> = std::mem::take(m).into_iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                for (k, mut val) in entries {
                    if let Some(vd) = &value_desc {
                        sort_maps(&mut val, vd);
                    }
                    m.insert(k, val);
                }
            }
        } else if let Value::Array(items) = child {
            items.iter_mut().for_each(|i| sort_maps(i, &md));
        } else {
            sort_maps(child, &md);
        }
    }
}

pub(crate) fn canonical(v: &Value) -> String {
    let mut v = v.clone();
    if let Ok(desc) = model_config_descriptor() {
        sort_maps(&mut v, &desc);
    }
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[test]
fn corpus_matches_triton() {
    let all = cases();
    assert!(
        all.len() > 100,
        "corpus not found under {}",
        corpus_dir().display()
    );
    let mut failures = Vec::new();
    let mut checked_json = 0;
    for case in &all {
        let result = load(case, &all);
        let label = case.label();
        let ours = match &result {
            Ok(_) => "accepted".to_string(),
            Err(e) => e.to_string(),
        };
        if let Some(expect) = case.read("despina_error.txt") {
            if ours != expect.trim_end() {
                failures.push(format!(
                    "{label}: expected error\n  {}\ngot\n  {ours}",
                    expect.trim_end()
                ));
            }
            continue;
        }
        match (&result, case.read("triton.json"), case.read("note.txt")) {
            (Ok(cfg), Some(_), _) => {
                let Some(expect) = expected_json(case, cfg) else {
                    failures.push(format!("{label}: unreadable triton.json"));
                    continue;
                };
                let (got, want) = (canonical(&to_json(cfg)), canonical(&expect));
                if got != want {
                    failures.push(format!(
                        "{label}: JSON differs\n--- despina\n{got}\n--- triton\n{want}"
                    ));
                }
                checked_json += 1;
            }
            (Ok(_), None, Some(_)) => {}
            (Ok(_), None, None) => failures.push(format!(
                "{label}: Triton refused it ({}) but despina accepts it and no note.txt says why",
                case.read("triton_error.txt").unwrap_or_default().trim_end()
            )),
            (Err(_), Some(_), _) => failures.push(format!(
                "{label}: Triton accepted it but despina refuses: {ours}"
            )),
            (Err(_), None, _) => failures.push(format!(
                "{label}: refused with no despina_error.txt: {ours}\n  triton: {}",
                case.read("triton_error.txt").unwrap_or_default().trim_end()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        all.len(),
        failures.join("\n\n")
    );
    assert!(
        checked_json > 60,
        "only {checked_json} JSON comparisons ran"
    );
}
