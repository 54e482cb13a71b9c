//! Normalisation rules, one case each: the config text, the context, and
//! the fields expected afterwards (as JSON).

use serde_json::{Value, json};

use crate::config::*;

fn ctx(name: &str, files: &[&str], gpus: &[i32]) -> NormalizeContext {
    let mut c = NormalizeContext::new(name);
    c.version_entries = Some(
        files
            .iter()
            .map(|f| DirEntry {
                name: f.trim_end_matches('/').to_string(),
                is_dir: f.ends_with('/'),
            })
            .collect(),
    );
    c.gpus = gpus.to_vec();
    c
}

#[track_caller]
fn check(text: &str, ctx: &NormalizeContext, expect: Value) {
    let (mut cfg, _) = parse(text).unwrap_or_else(|e| panic!("{e}"));
    normalize(&mut cfg, ctx).unwrap_or_else(|e| panic!("{text}: {e}"));
    let got = to_json(&cfg);
    let Value::Object(want) = expect else {
        panic!("expectation must be an object")
    };
    for (key, value) in want {
        assert_eq!(got.get(&key), Some(&value), "{key} of {text:?}");
    }
}

#[test]
fn backend_platform_and_file_name() {
    let none = ctx("m", &[], &[]);
    check(
        "",
        &ctx("m", &["model.py"], &[]),
        json!({"name": "m", "backend": "python", "platform": "", "default_model_filename": "model.py"}),
    );
    check(
        "name: \"x\" backend: \"python\"",
        &none,
        json!({"name": "x"}),
    );
    check(
        "platform: \"onnxruntime_onnx\"",
        &none,
        json!({"backend": "onnxruntime", "default_model_filename": "model.onnx"}),
    );
    check(
        "backend: \"onnxruntime\"",
        &none,
        json!({"platform": "onnxruntime_onnx", "default_model_filename": "model.onnx"}),
    );
    check(
        "",
        &ctx("m", &["model.onnx/"], &[]),
        json!({"backend": "onnxruntime", "platform": "onnxruntime_onnx"}),
    );
    check(
        "default_model_filename: \"model.onnx\"",
        &none,
        json!({"backend": "onnxruntime"}),
    );
    check(
        "backend: \"onnxruntime\" default_model_filename: \"big.onnx\"",
        &none,
        json!({"default_model_filename": "big.onnx"}),
    );
    check(
        "backend: \"pytorch\"",
        &none,
        json!({"platform": "pytorch_libtorch", "default_model_filename": "model.pt"}),
    );
    check(
        "platform: \"pytorch_libtorch\"",
        &none,
        json!({"backend": "pytorch", "default_model_filename": "model.pt"}),
    );
    check(
        "backend: \"pytorch\" runtime: \"model.py\"",
        &none,
        json!({"platform": "pytorch_libtorch", "default_model_filename": ""}),
    );
    // A folder named model.pt is not a TorchScript file.
    let (mut cfg, _) = parse("").unwrap_or_else(|e| panic!("{e}"));
    assert!(normalize(&mut cfg, &ctx("m", &["model.pt/"], &[])).is_err());
    check(
        "",
        &ctx("m", &["model.savedmodel/"], &[]),
        json!({"platform": "tensorflow_savedmodel", "backend": "tensorflow", "default_model_filename": "model.savedmodel"}),
    );
    check(
        "",
        &ctx("m", &["model.graphdef"], &[]),
        json!({"platform": "tensorflow_graphdef", "backend": "tensorflow", "default_model_filename": "model.graphdef"}),
    );
    check(
        "backend: \"tensorflow\"",
        &none,
        json!({"platform": "", "default_model_filename": ""}),
    );
    check(
        "",
        &ctx("m", &["model.plan"], &[]),
        json!({"platform": "tensorrt_plan", "backend": "tensorrt", "default_model_filename": "model.plan"}),
    );
    check(
        "backend: \"openvino\"",
        &none,
        json!({"platform": "", "default_model_filename": "model.xml"}),
    );
    check(
        "backend: \"llm\"",
        &none,
        json!({"platform": "", "default_model_filename": "model.gguf"}),
    );
    check(
        "",
        &ctx("m", &["model.gguf"], &[]),
        json!({"backend": "llm", "default_model_filename": "model.gguf"}),
    );
    check(
        "backend: \"identity\"",
        &none,
        json!({"platform": "", "default_model_filename": ""}),
    );
    check(
        "platform: \"ensemble\" ensemble_scheduling { }",
        &none,
        json!({"backend": "", "default_model_filename": ""}),
    );
    check(
        "",
        &ctx("model.square", &["weights"], &[]),
        json!({"backend": "square", "default_model_filename": "model.square"}),
    );
    // The first match wins: ONNX before Python.
    check(
        "",
        &ctx("m", &["model.py", "model.onnx"], &[]),
        json!({"backend": "onnxruntime"}),
    );
}

#[test]
fn custom_backend_needs_a_name_or_a_model_called_model_backend() {
    let (mut cfg, _) = parse("").unwrap_or_else(|e| panic!("{e}"));
    let err = normalize(&mut cfg, &ctx("plain", &["weights"], &[]))
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some(
            "backend: Invalid model name: Could not determine backend for model 'plain' with no backend in model configuration. Expected model name of the form 'model.<backend_name>'"
        )
    );
}

#[test]
fn defaults() {
    let c = ctx("m", &["model.py"], &[]);
    check(
        "backend: \"python\"",
        &c,
        json!({
            "version_policy": {"latest": {"num_versions": 1}},
            "optimization": {"priority": "PRIORITY_DEFAULT", "input_pinned_memory": {"enable": true}, "output_pinned_memory": {"enable": true}, "gather_kernel_buffer_threshold": 0, "eager_batching": false},
            "instance_group": [{"name": "m", "kind": "KIND_CPU", "count": 1, "gpus": [], "secondary_devices": [], "profile": [], "passive": false, "host_policy": ""}],
        }),
    );
    check(
        "version_policy { all { } }",
        &c,
        json!({"version_policy": {"all": {}}}),
    );
    check(
        "optimization { input_pinned_memory { } }",
        &c,
        json!({"optimization": {"priority": "PRIORITY_DEFAULT", "input_pinned_memory": {"enable": false}, "output_pinned_memory": {"enable": true}, "gather_kernel_buffer_threshold": 0, "eager_batching": false}}),
    );
    check(
        "max_batch_size: 8 dynamic_batching { }",
        &c,
        json!({"dynamic_batching": {"preferred_batch_size": [8], "max_queue_delay_microseconds": 0, "preserve_ordering": false, "priority_levels": 0, "default_priority_level": 0, "priority_queue_policy": {}}}),
    );
    check(
        "max_batch_size: 0 dynamic_batching { }",
        &c,
        json!({"dynamic_batching": {"preferred_batch_size": [], "max_queue_delay_microseconds": 0, "preserve_ordering": false, "priority_levels": 0, "default_priority_level": 0, "priority_queue_policy": {}}}),
    );
    check(
        "max_batch_size: 8 dynamic_batching { preferred_batch_size: 2 }",
        &c,
        json!({"max_batch_size": 8}),
    );
    check(
        "max_batch_size: 4 sequence_batching { oldest { } }",
        &c,
        json!({"sequence_batching": {"oldest": {"max_candidate_sequences": 0, "preferred_batch_size": [4], "max_queue_delay_microseconds": 0, "preserve_ordering": false}, "max_sequence_idle_microseconds": 1000000, "control_input": [], "state": [], "iterative_sequence": false}}),
    );
    check(
        "sequence_batching { max_sequence_idle_microseconds: 5 }",
        &c,
        json!({"sequence_batching": {"max_sequence_idle_microseconds": 5, "control_input": [], "state": [], "iterative_sequence": false}}),
    );
}

#[test]
fn ensembles() {
    let mut c = ctx("e", &[], &[0]);
    let text = "platform: \"ensemble\" ensemble_scheduling { }";
    check(
        text,
        &c,
        json!({"instance_group": [], "model_transaction_policy": {"decoupled": false}, "version_policy": {"latest": {"num_versions": 1}}}),
    );
    c.ensemble_decoupled = true;
    check(
        text,
        &c,
        json!({"model_transaction_policy": {"decoupled": true}}),
    );
    // The composing models decide, whatever the ensemble's config says.
    c.ensemble_decoupled = false;
    check(
        &format!("{text} model_transaction_policy {{ decoupled: true }}"),
        &c,
        json!({"model_transaction_policy": {"decoupled": false}}),
    );
    let (mut cfg, _) = parse(text).unwrap_or_else(|e| panic!("{e}"));
    normalize(&mut cfg, &c).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.optimization.is_none());
}

#[test]
fn instance_groups() {
    let cpu = ctx("m", &["model.py"], &[]);
    let gpu = ctx("m", &["model.py"], &[1, 0]);
    let group = |name: &str, kind: &str, count: i32, gpus: Value| json!({"name": name, "kind": kind, "count": count, "gpus": gpus, "secondary_devices": [], "profile": [], "passive": false, "host_policy": ""});
    check(
        "backend: \"python\"",
        &gpu,
        json!({"instance_group": [group("m", "KIND_GPU", 1, json!([0, 1]))]}),
    );
    check(
        "backend: \"onnxruntime\"",
        &cpu,
        json!({"instance_group": [group("m", "KIND_CPU", 2, json!([]))]}),
    );
    check(
        "backend: \"onnxruntime\"",
        &gpu,
        json!({"instance_group": [group("m", "KIND_GPU", 1, json!([0, 1]))]}),
    );
    check(
        "backend: \"tensorflow\" instance_group { kind: KIND_CPU }",
        &gpu,
        json!({"instance_group": [group("m_0", "KIND_CPU", 2, json!([]))]}),
    );
    check(
        "backend: \"pytorch\" instance_group { kind: KIND_CPU count: 0 }",
        &cpu,
        json!({"instance_group": [group("m_0", "KIND_CPU", 1, json!([]))]}),
    );
    check(
        "instance_group [ { }, { name: \"n\" count: -2 }, { count: 3 kind: KIND_MODEL } ]",
        &cpu,
        json!({"instance_group": [
        group("m_0", "KIND_CPU", 1, json!([])), group("n", "KIND_CPU", 1, json!([])), group("m_2", "KIND_MODEL", 3, json!([]))]}),
    );
    check(
        "instance_group { gpus: [ 1 ] }",
        &gpu,
        json!({"instance_group": [group("m_0", "KIND_GPU", 1, json!([1]))]}),
    );
    // A listed GPU that is not present makes KIND_AUTO fall back to CPU (validation then refuses the GPU list).
    check(
        "instance_group { gpus: [ 1, 5 ] }",
        &gpu,
        json!({"instance_group": [group("m_0", "KIND_CPU", 1, json!([1, 5]))]}),
    );
    check(
        "instance_group { kind: KIND_GPU }",
        &gpu,
        json!({"instance_group": [group("m_0", "KIND_GPU", 1, json!([0, 1]))]}),
    );
    check(
        "instance_group { kind: KIND_GPU }",
        &cpu,
        json!({"instance_group": [group("m_0", "KIND_GPU", 1, json!([]))]}),
    );
}
