//! `from_json` (the repository load API's config) and the parts of `to_json`
//! the corpus cannot reach with Triton 2.51.

use serde_json::{Value, json};

use crate::config::*;

#[track_caller]
fn check(input: &str, key: &str, expect: Value) {
    let cfg = from_json(input).unwrap_or_else(|e| panic!("{input} failed: {e}"));
    assert_eq!(to_json(&cfg).get(key), Some(&expect), "input: {input}");
}

#[track_caller]
fn check_err(input: &str, expect: &str) {
    match from_json(input) {
        Ok(_) => panic!("{input} parsed, expected {expect}"),
        Err(e) => assert_eq!(e.to_string(), expect, "input: {input}"),
    }
}

#[test]
fn from_json_accepts_what_protobuf_accepts() {
    check(r#"{"max_batch_size": 8}"#, "max_batch_size", json!(8));
    check(r#"{"maxBatchSize": 8}"#, "max_batch_size", json!(8));
    check(r#"{"max_batch_size": "8"}"#, "max_batch_size", json!(8));
    check(r#"{"max_batch_size": 8.0}"#, "max_batch_size", json!(8));
    check(r#"{"max_batch_size": null}"#, "max_batch_size", json!(0));
    check(
        r#"{"input": [{"data_type": "type_fp32", "dims": ["4", -1]}]}"#,
        "input",
        json!([{
        "name": "", "data_type": "TYPE_FP32", "format": "FORMAT_NONE", "dims": [4, -1], "is_shape_tensor": false,
        "allow_ragged_batch": false, "optional": false, "is_non_linear_format_io": false}]),
    );
    check(
        r#"{"output": [{"data_type": 12}]}"#,
        "output",
        json!([{
        "name": "", "data_type": "TYPE_FP64", "dims": [], "label_filename": "", "is_shape_tensor": false, "is_non_linear_format_io": false}]),
    );
    check(
        r#"{"version_policy": {"specific": {"versions": ["1", 2]}}}"#,
        "version_policy",
        json!({"specific": {"versions": [1, 2]}}),
    );
    check(
        r#"{"dynamic_batching": {"priority_queue_policy": {"2": {"timeout_action": "delay"}}}}"#,
        "dynamic_batching",
        json!({
        "preferred_batch_size": [], "max_queue_delay_microseconds": 0, "preserve_ordering": false, "priority_levels": 0,
        "default_priority_level": 0, "priority_queue_policy": {"2": {"timeout_action": "DELAY", "default_timeout_microseconds": 0,
        "allow_timeout_override": false, "max_queue_size": 0}}}),
    );
    check(
        r#"{"sequence_batching": {"direct": {"minimum_slot_utilization": "NaN"}}}"#,
        "sequence_batching",
        json!({
        "direct": {"max_queue_delay_microseconds": 0, "minimum_slot_utilization": "NaN"}, "max_sequence_idle_microseconds": 0,
        "control_input": [], "state": [], "iterative_sequence": false}),
    );
    check(
        r#"{"parameters": {"k": {"string_value": "v"}}}"#,
        "parameters",
        json!({"k": {"string_value": "v"}}),
    );
    check(
        r#"{"instance_group": [{"secondary_devices": [{"device_id": "7"}]}]}"#,
        "instance_group",
        json!([{
        "name": "", "kind": "KIND_AUTO", "count": 0, "gpus": [], "secondary_devices": [{"kind": "KIND_NVDLA", "device_id": "7"}],
        "profile": [], "passive": false, "host_policy": ""}]),
    );
}

#[test]
fn from_json_errors() {
    check_err(
        "{",
        "1:1: invalid JSON: EOF while parsing an object at line 1 column 1",
    );
    check_err("[1]", "expected an object (ModelConfig), found an array");
    check_err(
        r#"{"max_batch_sise": 1}"#,
        "unknown field `max_batch_sise` in ModelConfig; did you mean `max_batch_size`?",
    );
    check_err(
        r#"{"input": [{"nmae": "x"}]}"#,
        "input[0]: unknown field `nmae` in ModelInput; did you mean `name`?",
    );
    check_err(
        r#"{"input": [{"data_type": "TYPE_FP23"}]}"#,
        "input[0].data_type: unknown value `TYPE_FP23` for inference.DataType; did you mean `TYPE_FP32`?",
    );
    check_err(
        r#"{"input": {"name": "x"}}"#,
        "input: expected an array, found an object",
    );
    check_err(
        r#"{"max_batch_size": 3000000000}"#,
        "max_batch_size: value 3000000000 is out of range for int32 field `max_batch_size`",
    );
    check_err(
        r#"{"max_batch_size": 1.5}"#,
        "max_batch_size: expected an integer for field `max_batch_size`, found number 1.5",
    );
    check_err(
        r#"{"max_batch_size": true}"#,
        "max_batch_size: expected an integer for field `max_batch_size`, found true",
    );
    check_err(
        r#"{"dynamic_batching": {"max_queue_delay_microseconds": -1}}"#,
        "dynamic_batching.max_queue_delay_microseconds: value -1 is out of range for uint64 field `max_queue_delay_microseconds`",
    );
    check_err(
        r#"{"max_batch_size": 1, "maxBatchSize": 2}"#,
        "field `max_batch_size` is given twice (as `max_batch_size` and `maxBatchSize`)",
    );
    check_err(
        r#"{"dynamic_batching": {}, "sequence_batching": {}}"#,
        "field `sequence_batching` conflicts with `dynamic_batching`: both belong to oneof `scheduling_choice`",
    );
    check_err(
        r#"{"response_cache": {"enable": "true"}}"#,
        r#"response_cache.enable: expected true or false for field `enable`, found string "true""#,
    );
    check_err(
        r#"{"name": 5}"#,
        "name: expected a string for field `name`, found number 5",
    );
    check_err(
        r#"{"parameters": {"k": null}}"#,
        r#"parameters["k"]: a map value cannot be null"#,
    );
    check_err(
        r#"{"dynamic_batching": {"priority_queue_policy": {"x": {}}}}"#,
        r#"dynamic_batching.priority_queue_policy: invalid map key "x": expected an integer"#,
    );
    check_err(
        r#"{"sequence_batching": {"control_input": [{"control": [{"fp32_false_true": [1e39]}]}]}}"#,
        "sequence_batching.control_input[0].control[0].fp32_false_true[0]: value 1000000000000000000000000000000000000000 is out of range for float field `fp32_false_true`",
    );
    let deep = format!("{}{}", r#"{"version_policy":"#.repeat(200), "}".repeat(201));
    assert!(from_json(&deep).is_err());
}

#[test]
fn to_json_prints_what_triton_prints() {
    let (mut cfg, _) = parse(
        r#"
        name: "e" platform: "ensemble"
        ensemble_scheduling { step { model_name: "m" } }
    "#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let json = to_json(&cfg);
    // 2.51 has no max_inflight_requests: printed only when set.
    assert_eq!(
        json["ensemble_scheduling"],
        json!({"step": [{"model_name": "m", "model_version": 0, "input_map": {}, "output_map": {}, "model_namespace": ""}]})
    );
    if let Some(crate::proto::inference::model_config::SchedulingChoice::EnsembleScheduling(es)) =
        &mut cfg.scheduling_choice
    {
        es.max_inflight_requests = 8;
    }
    assert_eq!(
        to_json(&cfg)["ensemble_scheduling"]["max_inflight_requests"],
        json!(8)
    );

    let (cfg, _) = parse(r#"model_metrics { metric_control { metric_identifier { family: "f" } histogram_options { buckets: [ 0.1, 1, 2.5 ] } } }"#)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        to_json(&cfg)["model_metrics"],
        json!({"metric_control": [{"metric_identifier": {"family": "f"}, "histogram_options": {"buckets": [0.1, 1, 2.5]}}]})
    );

    // Keys in declaration order, scalar oneof members last, as protobuf prints.
    let (cfg, _) = parse(
        r#"sequence_batching { state { initial_state { zero_data: true name: "z" dims: 2 } } }"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let text =
        serde_json::to_string(&to_json(&cfg)["sequence_batching"]["state"][0]["initial_state"][0])
            .unwrap_or_default();
    assert_eq!(
        text,
        r#"{"data_type":"TYPE_INVALID","dims":["2"],"name":"z","zero_data":true}"#
    );
    let top: Vec<String> = to_json(&cfg)
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    assert_eq!(
        top[..6],
        [
            "name",
            "platform",
            "backend",
            "runtime",
            "max_batch_size",
            "input"
        ]
    );
}
