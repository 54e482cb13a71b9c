//! Text format → ModelConfig: types, ranges, enums, maps, oneofs, and the
//! source map. Data-driven: `check(input, key, json)` looks at one
//! top-level key of the (not normalised) config's JSON; `check_err(input,
//! error)` asserts the whole error text.

use serde_json::Value;

use crate::config::*;

#[track_caller]
fn check(input: &str, key: &str, expect: &str) {
    let cfg = match parse(input) {
        Ok((cfg, _)) => cfg,
        Err(e) => panic!("{input:?} failed: {e}"),
    };
    let json = to_json(&cfg);
    let got = json.get(key).cloned().unwrap_or(Value::Null);
    let want: Value =
        serde_json::from_str(expect).unwrap_or_else(|e| panic!("bad expectation {expect}: {e}"));
    assert_eq!(got, want, "input: {input:?}");
}

#[track_caller]
fn check_err(input: &str, expect: &str) {
    match parse(input) {
        Ok(_) => panic!("{input:?} parsed, expected {expect}"),
        Err(e) => assert_eq!(e.to_string(), expect, "input: {input:?}"),
    }
}

#[test]
fn integers_and_ranges() {
    check("max_batch_size: 2147483647", "max_batch_size", "2147483647");
    check(
        "max_batch_size: -2147483648",
        "max_batch_size",
        "-2147483648",
    );
    check("max_batch_size: 0x10", "max_batch_size", "16");
    check("max_batch_size: 010", "max_batch_size", "8");
    check_err(
        "max_batch_size: 2147483648",
        "1:17: max_batch_size: value 2147483648 is out of range for int32 field `max_batch_size`",
    );
    check_err(
        "max_batch_size: -2147483649",
        "1:17: max_batch_size: value -2147483649 is out of range for int32 field `max_batch_size`",
    );
    check(
        "optimization { gather_kernel_buffer_threshold: 4294967295 }",
        "optimization",
        r#"{"priority":"PRIORITY_DEFAULT","gather_kernel_buffer_threshold":4294967295,"eager_batching":false}"#,
    );
    check_err(
        "optimization { gather_kernel_buffer_threshold: 4294967296 }",
        "1:48: optimization.gather_kernel_buffer_threshold: value 4294967296 is out of range for uint32 field `gather_kernel_buffer_threshold`",
    );
    check_err(
        "optimization { gather_kernel_buffer_threshold: -1 }",
        "1:48: optimization.gather_kernel_buffer_threshold: value -1 is out of range for uint32 field `gather_kernel_buffer_threshold`",
    );
    check(
        "version_policy { specific { versions: [ -9223372036854775808, 9223372036854775807 ] } }",
        "version_policy",
        r#"{"specific":{"versions":[-9223372036854775808,9223372036854775807]}}"#,
    );
    check_err(
        "version_policy { specific { versions: 9223372036854775808 } }",
        "1:39: version_policy.specific.versions[0]: value 9223372036854775808 is out of range for int64 field `versions`",
    );
    check(
        "dynamic_batching { max_queue_delay_microseconds: 18446744073709551615 }",
        "dynamic_batching",
        r#"{"preferred_batch_size":[],"max_queue_delay_microseconds":18446744073709551615,"preserve_ordering":false,"priority_levels":0,"default_priority_level":0,"priority_queue_policy":{}}"#,
    );
    check(
        "dynamic_batching { max_queue_delay_microseconds: -0 }",
        "dynamic_batching",
        r#"{"preferred_batch_size":[],"max_queue_delay_microseconds":0,"preserve_ordering":false,"priority_levels":0,"default_priority_level":0,"priority_queue_policy":{}}"#,
    );
    check_err(
        "max_batch_size: 1.0",
        "1:17: max_batch_size: expected an integer for field `max_batch_size`, found number 1",
    );
    check_err(
        "max_batch_size: \"1\"",
        "1:17: max_batch_size: expected an integer for field `max_batch_size`, found string \"1\"",
    );
    check_err(
        "max_batch_size: inf",
        "1:17: max_batch_size: expected an integer for field `max_batch_size`, found `inf`",
    );
    check_err(
        "max_batch_size { }",
        "1:16: max_batch_size: expected an integer for field `max_batch_size`, found a message",
    );
    check_err(
        "max_batch_size: [ 1 ]",
        "1:17: max_batch_size: field `max_batch_size` is not repeated, so it cannot take a list",
    );
}

#[test]
fn enums() {
    check(
        "input { data_type: TYPE_FP32 }",
        "input",
        r#"[{"name":"","data_type":"TYPE_FP32","format":"FORMAT_NONE","dims":[],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false}]"#,
    );
    check(
        "output { data_type: 11 }",
        "output",
        r#"[{"name":"","data_type":"TYPE_FP32","dims":[],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}]"#,
    );
    check(
        "output { data_type: 99 }",
        "output",
        r#"[{"name":"","data_type":99,"dims":[],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}]"#,
    );
    check(
        "output { data_type: -3 }",
        "output",
        r#"[{"name":"","data_type":-3,"dims":[],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}]"#,
    );
    check_err(
        "output { data_type: 2147483648 }",
        "1:21: output[0].data_type: value 2147483648 is out of range for enum field `data_type`",
    );
    check_err(
        "input { data_type: TYPE_FP23 }",
        "1:20: input[0].data_type: unknown value `TYPE_FP23` for inference.DataType; did you mean `TYPE_FP32`?",
    );
    check_err(
        "input { data_type: type_fp32 }",
        "1:20: input[0].data_type: unknown value `type_fp32` for inference.DataType; did you mean `TYPE_FP32`?",
    );
    check_err(
        "input { data_type: FLOAT }",
        "1:20: input[0].data_type: unknown value `FLOAT` for inference.DataType",
    );
    check_err(
        "input { data_type: \"TYPE_FP32\" }",
        "1:20: input[0].data_type: expected a value of inference.DataType for field `data_type`, found string \"TYPE_FP32\"",
    );
    check_err(
        "input { data_type: -TYPE_FP32 }",
        "1:20: input[0].data_type: expected a value of inference.DataType for field `data_type`, found `-TYPE_FP32`",
    );
    check_err(
        "instance_group { kind: KIND_GPUS }",
        "1:24: instance_group[0].kind: unknown value `KIND_GPUS` for inference.ModelInstanceGroup.Kind; did you mean `KIND_GPU`?",
    );
    check_err(
        "sequence_batching { control_input { control { kind: START } } }",
        "1:53: sequence_batching.control_input[0].control[0].kind: unknown value `START` for inference.ModelSequenceBatching.Control.Kind",
    );
}

#[test]
fn bools_floats_strings() {
    for (text, want) in [
        ("t", "true"),
        ("true", "true"),
        ("True", "true"),
        ("1", "true"),
        ("f", "false"),
        ("false", "false"),
        ("False", "false"),
        ("0", "false"),
    ] {
        check(
            &format!("response_cache {{ enable: {text} }}"),
            "response_cache",
            &format!(r#"{{"enable":{want}}}"#),
        );
    }
    check_err(
        "response_cache { enable: 2 }",
        "1:26: response_cache.enable: expected true or false for field `enable`, found integer 2",
    );
    check_err(
        "response_cache { enable: TRUE }",
        "1:26: response_cache.enable: expected true or false for field `enable`, found `TRUE`",
    );
    check_err(
        "response_cache { enable: yes }",
        "1:26: response_cache.enable: expected true or false for field `enable`, found `yes`",
    );
    let seq =
        |v: &str| format!("sequence_batching {{ direct {{ minimum_slot_utilization: {v} }} }}");
    let direct = |v: &str| {
        format!(
            r#"{{"direct":{{"max_queue_delay_microseconds":0,"minimum_slot_utilization":{v}}},"max_sequence_idle_microseconds":0,"control_input":[],"state":[],"iterative_sequence":false}}"#
        )
    };
    check(&seq("0.5"), "sequence_batching", &direct("0.5"));
    check(&seq("0x1"), "sequence_batching", &direct("1"));
    check(&seq("-2"), "sequence_batching", &direct("-2"));
    check(&seq("1e-3"), "sequence_batching", &direct("0.001"));
    check(&seq(".25f"), "sequence_batching", &direct("0.25"));
    check(&seq("INF"), "sequence_batching", &direct(r#""Infinity""#));
    check(
        &seq("-infinity"),
        "sequence_batching",
        &direct(r#""-Infinity""#),
    );
    check(&seq("NaN"), "sequence_batching", &direct(r#""NaN""#));
    check(&seq("1e39"), "sequence_batching", &direct(r#""Infinity""#));
    check_err(
        &seq("infinite"),
        "1:56: sequence_batching.direct.minimum_slot_utilization: expected a number for field `minimum_slot_utilization`, found `infinite`",
    );
    check_err(
        &seq("\"0.5\""),
        "1:56: sequence_batching.direct.minimum_slot_utilization: expected a number for field `minimum_slot_utilization`, found string \"0.5\"",
    );
    check(r#"name: "a\tb" 'c'"#, "name", r#""a\tbc""#);
    check(r#"name: "\303\251""#, "name", r#""é""#);
    check_err(
        r#"name: "\xff""#,
        "1:7: name: string for field `name` is not valid UTF-8",
    );
    check_err(
        "name: m",
        "1:7: name: expected a string for field `name`, found `m`",
    );
    check_err(
        "name: 5",
        "1:7: name: expected a string for field `name`, found integer 5",
    );
}

#[test]
fn messages_lists_oneofs() {
    check(
        "input [ { name: \"a\" }, { name: \"b\" } ] input { name: \"c\" }",
        "input",
        r#"[
        {"name":"a","data_type":"TYPE_INVALID","format":"FORMAT_NONE","dims":[],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false},
        {"name":"b","data_type":"TYPE_INVALID","format":"FORMAT_NONE","dims":[],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false},
        {"name":"c","data_type":"TYPE_INVALID","format":"FORMAT_NONE","dims":[],"is_shape_tensor":false,"allow_ragged_batch":false,"optional":false,"is_non_linear_format_io":false}]"#,
    );
    check(
        "output { dims: 1 dims: [ 2, 3 ] dims: 4 }",
        "output",
        r#"[{"name":"","data_type":"TYPE_INVALID","dims":[1,2,3,4],"label_filename":"","is_shape_tensor":false,"is_non_linear_format_io":false}]"#,
    );
    check(
        "version_policy: { all: { } }",
        "version_policy",
        r#"{"all":{}}"#,
    );
    check(
        "version_policy < latest < > >",
        "version_policy",
        r#"{"latest":{"num_versions":0}}"#,
    );
    check_err(
        "version_policy: 5",
        "1:17: version_policy: expected a message (ModelVersionPolicy) for field `version_policy`, found integer 5",
    );
    check_err(
        "version_policy { latest { } all { } }",
        "1:29: version_policy: field `all` conflicts with `latest` (set at 1:18): both belong to oneof `policy_choice`",
    );
    check_err(
        "dynamic_batching { }\nensemble_scheduling { }",
        "2:1: field `ensemble_scheduling` conflicts with `dynamic_batching` (set at 1:1): both belong to oneof `scheduling_choice`",
    );
    check_err(
        "optimization { } optimization { }",
        "1:18: field `optimization` is set more than once (first at 1:1)",
    );
    check_err(
        "name: \"a\"\nname: \"b\"",
        "2:1: field `name` is set more than once (first at 1:1)",
    );
    check_err(
        "input { nmae: \"x\" }",
        "1:9: input[0]: unknown field `nmae` in ModelInput; did you mean `name`?",
    );
    check_err(
        "sequence_batching { control_input { control { knd: CONTROL_SEQUENCE_START } } }",
        "1:47: sequence_batching.control_input[0].control[0]: unknown field `knd` in ModelSequenceBatching.Control; did you mean `kind`?",
    );
    check_err(
        "completely_unknown: 1",
        "1:1: unknown field `completely_unknown` in ModelConfig",
    );
}

#[test]
fn maps() {
    check(
        r#"parameters { key: "a" value { string_value: "1" } } parameters [ { key: "b" value: { string_value: "2" } } ]"#,
        "parameters",
        r#"{"a":{"string_value":"1"},"b":{"string_value":"2"}}"#,
    );
    // A later entry with the same key wins, as in protobuf.
    check(
        r#"metric_tags { key: "k" value: "old" } metric_tags { key: "k" value: "new" }"#,
        "metric_tags",
        r#"{"k":"new"}"#,
    );
    check(
        r#"metric_tags { value: "no key" }"#,
        "metric_tags",
        r#"{"":"no key"}"#,
    );
    check(
        r#"parameters { key: "empty" }"#,
        "parameters",
        r#"{"empty":{"string_value":""}}"#,
    );
    check(
        r#"metric_tags { value: "v" key: "k" }"#,
        "metric_tags",
        r#"{"k":"v"}"#,
    );
    check(
        "dynamic_batching { priority_queue_policy { key: 2 value { max_queue_size: 4 } } }",
        "dynamic_batching",
        r#"{"preferred_batch_size":[],"max_queue_delay_microseconds":0,"preserve_ordering":false,"priority_levels":0,"default_priority_level":0,"priority_queue_policy":{"2":{"timeout_action":"REJECT","default_timeout_microseconds":0,"allow_timeout_override":false,"max_queue_size":4}}}"#,
    );
    check_err(
        "dynamic_batching { priority_queue_policy { key: -2 } }",
        "1:49: dynamic_batching.priority_queue_policy.key: value -2 is out of range for uint64 field `key`",
    );
    check_err(
        r#"parameters { key: "a" val { string_value: "1" } }"#,
        "1:23: parameters: unknown field `val` in ModelConfig.ParametersEntry; did you mean `value`?",
    );
    check_err(
        r#"parameters { key: "a" key: "b" }"#,
        "1:23: parameters: field `key` is set more than once (first at 1:14)",
    );
    check_err(
        r#"parameters: "x""#,
        "1:13: parameters: field `parameters` is a map: expected `{ key: ... value: ... }`, found string \"x\"",
    );
    check_err(
        r#"parameters { key: "a" value { string_value: 1 } }"#,
        r#"1:45: parameters["a"].string_value: expected a string for field `string_value`, found integer 1"#,
    );
    check_err(
        r#"metric_tags { key: "a" value: [ "x" ] }"#,
        r#"1:31: metric_tags["a"]: a map value cannot be a list"#,
    );
}

#[test]
fn source_map_paths() {
    let text = r#"name: "m"
input [
  { name: "a" dims: [ 1 ] },
  { name: "b"
    dims: [ 4, -1 ] }
]
parameters { key: "k" value { string_value: "v" } }
parameters { key: "we\"ird" value { string_value: "w" } }
dynamic_batching {
  priority_queue_policy { key: 2 value { timeout_action: DELAY } }
}
"#;
    let (_, sm) = parse(text).unwrap_or_else(|e| panic!("{e}"));
    let at = |p: &str| sm.position(p).map(|p| p.to_string()).unwrap_or_default();
    assert_eq!(at("name"), "1:1");
    assert_eq!(at("input"), "2:1");
    assert_eq!(at("input[0]"), "3:3");
    assert_eq!(at("input[1]"), "4:3");
    assert_eq!(at("input[1].name"), "4:5");
    assert_eq!(at("input[1].dims"), "5:5");
    assert_eq!(at("input[1].dims[1]"), "5:16");
    assert_eq!(at("input[1].data_type"), "4:3");
    assert_eq!(at(r#"parameters["k"]"#), "7:14");
    assert_eq!(at(r#"parameters["k"].string_value"#), "7:31");
    assert_eq!(at(r#"parameters["we\"ird"].string_value"#), "8:37");
    assert_eq!(
        at("dynamic_batching.priority_queue_policy[2].timeout_action"),
        "10:42"
    );
    assert_eq!(
        at("dynamic_batching.priority_queue_policy[3].timeout_action"),
        "10:3"
    );
    assert_eq!(at("output[0].dims"), "");
    assert_eq!(sm.exact("input[1].data_type"), None);
    assert!(sm.len() > 15);
}
