//! Validation rules the corpus cannot show (a GPU host, TensorRT-only
//! fields, several errors at once). Each case: config text (normalised on a
//! host with `gpus`) and every error expected, as displayed.

use crate::config::*;

const BACKENDS: &[&str] = &["onnxruntime", "pytorch", "llm", "identity", "tensorrt"];

#[track_caller]
fn check(text: &str, gpus: &[i32], expect: &[&str]) {
    let (mut cfg, sm) = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let mut nctx = NormalizeContext::new("m");
    nctx.gpus = gpus.to_vec();
    normalize(&mut cfg, &nctx).unwrap_or_else(|e| panic!("{e}"));
    let vctx = ValidateContext {
        model_name: "m",
        gpus,
        backends: BACKENDS,
        source_map: Some(&sm),
    };
    let got: Vec<String> = validate(&cfg, &vctx)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(got, expect, "config: {text}");
}

const IO: &str = r#"name: "m" input { name: "I" data_type: TYPE_FP32 dims: 4 } output { name: "O" data_type: TYPE_FP32 dims: 4 }"#;

#[test]
fn valid_configs() {
    check(&format!("{IO} backend: \"onnxruntime\""), &[], &[]);
    check(&format!("{IO} backend: \"onnxruntime\""), &[0], &[]);
    check(
        &format!("{IO} backend: \"llm\" instance_group {{ kind: KIND_GPU gpus: [ 1 ] }}"),
        &[0, 1],
        &[],
    );
    check(
        &format!("{IO} backend: \"identity\" instance_group {{ kind: KIND_MODEL }}"),
        &[],
        &[],
    );
    check(
        &format!(
            "{IO} platform: \"tensorrt_plan\" instance_group {{ kind: KIND_GPU profile: [ \"0\", \"3\" ] }}"
        ),
        &[0],
        &[],
    );
    check(
        r#"name: "m" backend: "identity" input { name: "I" data_type: TYPE_FP32 dims: [ 2, -1, 3 ] reshape { shape: [ 2, -1, 3 ] } }"#,
        &[],
        &[],
    );
    check(
        r#"name: "m" backend: "identity" max_batch_size: 1 input { name: "I" data_type: TYPE_FP32 dims: [ 1 ] reshape { } }"#,
        &[],
        &[],
    );
}

#[test]
fn gpus() {
    check(
        &format!("{IO} backend: \"llm\" instance_group {{ kind: KIND_GPU gpus: [ 0, 3 ] }}"),
        &[0, 1],
        &[
            "1:168: instance_group[0].gpus[1]: instance group m_0 of model m specifies invalid or unsupported gpu id 3. GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: 0, 1",
        ],
    );
    check(
        &format!("{IO} backend: \"llm\" instance_group {{ kind: KIND_GPU gpus: 0 }}"),
        &[],
        &[
            "1:163: instance_group[0].gpus[0]: instance group m_0 of model m specifies invalid or unsupported gpu id 0. GPUs with at least the minimum required CUDA compute compatibility of 6.000000 are: none (no GPUs are available)",
        ],
    );
    check(
        &format!("{IO} backend: \"llm\" instance_group {{ kind: KIND_GPU }}"),
        &[],
        &[
            "1:142: instance_group[0].kind: instance group m_0 of model m has kind KIND_GPU but no GPUs are available",
        ],
    );
    check(
        &format!("{IO} backend: \"llm\" instance_group {{ kind: KIND_CPU gpus: 0 }}"),
        &[0],
        &[
            "1:157: instance_group[0].gpus: instance group m_0 of model m has kind KIND_CPU but specifies one or more GPUs",
        ],
    );
}

#[test]
fn unnormalised_configs_are_checked_too() {
    let (cfg, _) = parse(r#"name: "m" backend: "llm" instance_group [ { name: "g" kind: KIND_GPU }, { name: "a" } ]"#).unwrap_or_else(|e| panic!("{e}"));
    let vctx = ValidateContext {
        model_name: "m",
        gpus: &[0],
        backends: BACKENDS,
        source_map: None,
    };
    let got: Vec<String> = validate(&cfg, &vctx)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        got,
        [
            "version_policy: must specify 'version policy' for m",
            "instance_group[0].gpus: instance group g of model m has kind KIND_GPU but specifies no GPUs",
            "instance_group[1].kind: instance group a of model m has unexpected kind KIND_AUTO",
        ]
    );
}

#[test]
fn backends_and_platforms() {
    check(
        &format!("{IO} backend: \"onnx\""),
        &[],
        &[
            "1:110: backend: unknown backend 'onnx' for m (known backends: identity, llm, onnxruntime, pytorch, tensorrt)",
        ],
    );
    check(
        &format!("{IO} backend: \"pytorh\""),
        &[],
        &[
            "1:110: backend: unknown backend 'pytorh' for m (known backends: identity, llm, onnxruntime, pytorch, tensorrt); did you mean `pytorch`?",
        ],
    );
    check(
        &format!("{IO} backend: \"pytorch\" platform: \"onnxruntime_onnx\""),
        &[],
        &[
            "1:129: platform: unexpected 'platform' and 'backend' pair, got:onnxruntime_onnx, pytorch",
        ],
    );
    check(
        &format!("{IO} backend: \"identity\" platform: \"anything\""),
        &[],
        &[],
    );
}

#[test]
fn tensorrt_only_fields() {
    check(
        r#"name: "m" platform: "tensorrt_plan" input { name: "I" data_type: TYPE_FP32 dims: [ 4, 4 ] is_non_linear_format_io: true }"#,
        &[0],
        &["1:76: input[0].dims: Non-linear IO format input requires 3 dims for m"],
    );
    check(
        r#"name: "m" platform: "tensorrt_plan" input { name: "I" data_type: TYPE_INT32 dims: 2 is_shape_tensor: true }"#,
        &[0],
        &[],
    );
    check(
        r#"name: "m" platform: "tensorrt_plan" instance_group { kind: KIND_GPU profile: [ "-1", "x", "" ] }"#,
        &[0],
        &[
            "1:80: instance_group[0].profile[0]: instance group m_0 of model m and platform tensorrt_plan specifies invalid profile -1. The field should contain the string representation of a non-negative integer",
            "1:86: instance_group[0].profile[1]: instance group m_0 of model m and platform tensorrt_plan specifies invalid profile x. The field should contain the string representation of a non-negative integer",
            "1:91: instance_group[0].profile[2]: profile name must not be empty",
        ],
    );
}

#[test]
fn every_error_is_reported() {
    check(
        r#"name: "m" backend: "identity" max_batch_size: -1
input [ { name: "A" data_type: TYPE_FP32 dims: [ 0 ] }, { name: "A" data_type: TYPE_FP32 dims: 1 } ]
output { dims: 1 }
version_policy { specific { versions: [ 1, 0, -4 ] } }
"#,
        &[],
        &[
            "1:31: max_batch_size: 'max_batch_size' must be non-negative value for m",
            "4:44: version_policy.specific.versions[1]: model version must be a positive integer, got 0 for m",
            "4:47: version_policy.specific.versions[2]: model version must be a positive integer, got -4 for m",
            "2:50: input[0].dims[0]: model input 'A' dimension must be integer >= 1, or -1 to indicate a variable-size dimension for m",
            "2:59: input[1].name: model input 'A' is specified more than once for m",
            "3:8: output[0].name: model output must specify 'name' for m",
        ],
    );
}

#[test]
fn dynamic_batching_with_priorities() {
    check(
        r#"name: "m" backend: "identity" max_batch_size: 8
dynamic_batching {
  priority_levels: 2 default_priority_level: 1 preserve_ordering: true
  priority_queue_policy [ { key: 0 value { } }, { key: 2 value { timeout_action: DELAY default_timeout_microseconds: 5 } } ]
}"#,
        &[],
        &[
            "4:29: dynamic_batching.priority_queue_policy[0]: priority queue policy must have priority level in range [1, 2] for m",
            "3:3: dynamic_batching.priority_levels: Only one priority level is allowed when 'preserve_ordering' is true for m",
            "4:66: dynamic_batching.priority_queue_policy[2].timeout_action: Queue policy can not have DELAY as timeout action when 'preserve_ordering' is true for m",
        ],
    );
}

#[test]
fn sequence_controls() {
    check(
        r#"name: "m" backend: "identity" max_batch_size: 2
sequence_batching {
  control_input [
    { name: "S" control [ { kind: CONTROL_SEQUENCE_START bool_false_true: [ false, true ] }, { kind: CONTROL_SEQUENCE_END fp32_false_true: [ 0, 1 ] } ] },
    { name: "C" control [ { kind: CONTROL_SEQUENCE_CORRID data_type: TYPE_STRING } ] },
    { name: "X" control [ { kind: 9 } ] }
  ]
}"#,
        &[],
        &[
            "6:29: sequence_batching.control_input[2].control[0].kind: unknown sequence batching control kind 9 for m",
        ],
    );
    check(
        r#"name: "m" backend: "identity" max_batch_size: 2
sequence_batching { state { input_name: "I" data_type: TYPE_FP32 dims: [ 2 ] initial_state { data_type: TYPE_FP32 dims: [ 2 ] name: "z" } } }"#,
        &[],
        &[
            "2:92: sequence_batching.state[0].initial_state[0]: initial_state setting expects state'I' to have state_data set",
        ],
    );
    check(
        r#"name: "m" backend: "identity" max_batch_size: 2
sequence_batching { state { input_name: "I" data_type: TYPE_FP32 dims: [ -1 ] initial_state { data_type: TYPE_FP32 dims: [ -1 ] name: "z" zero_data: true } } }"#,
        &[],
        &[
            "2:116: sequence_batching.state[0].initial_state[0].dims: 'initial_state' field for state input name 'I' contains variable dimensions",
        ],
    );
}

#[test]
fn ensembles_report_every_unused_tensor() {
    check(
        r#"name: "m" platform: "ensemble" max_batch_size: 1
input { name: "A" data_type: TYPE_FP32 dims: 1 }
output { name: "Z" data_type: TYPE_FP32 dims: 1 }
ensemble_scheduling { step [
  { model_name: "x" input_map { key: "i" value: "A" } output_map [ { key: "o" value: "Z" }, { key: "p" value: "P" }, { key: "q" value: "Q" } ] }
] }"#,
        &[],
        &[
            r#"5:95: ensemble_scheduling.step[0].output_map["p"]: ensemble tensor 'P' is unused in ensemble 'm'"#,
            r#"5:120: ensemble_scheduling.step[0].output_map["q"]: ensemble tensor 'Q' is unused in ensemble 'm'"#,
        ],
    );
}
