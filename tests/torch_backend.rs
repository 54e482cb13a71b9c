//! The TorchScript backend at its trait, without a server: goldens, batching, Triton's
//! naming rules and the load and execution errors.
//!
//! Models: `model_repository/simple_torch`, the TorchScript models of `tests/models_extra`
//! (see its manifest.json), and small modules written here as TorchScript source and packed
//! into archives at test time (libtorch compiles the source inside an archive when it loads
//! it), for the forward() signatures the committed models do not cover.
#![cfg(feature = "torch")]

mod goldens;

use std::path::{Path, PathBuf};

use despina::backend::torch::TorchBackend;
use despina::backend::{
    Backend, BackendError, DeviceKind, ExecTimer, Instance, InstanceSpec, ModelContext,
};
use despina::config::ModelConfig;
use despina::request::{InferRequest, InferResponse, NamedTensor, RequestedOutput};
use despina::status::{Code, Status};
use despina::tensor::Tensor;
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_config(dir: &Path) -> ModelConfig {
    parse_config(&std::fs::read_to_string(dir.join("config.pbtxt")).unwrap())
}

/// Parses with the config module. Its interim reader (until the nom parser lands) wants
/// `field: [ ... ]` where config files write `field [ ... ]`; both forms are valid for
/// Triton, so the colon is added when the text as written is refused.
fn parse_config(text: &str) -> ModelConfig {
    match despina::config::parse(text) {
        Ok((cfg, _)) => cfg,
        Err(e) => panic!("config does not parse: {e}\n{text}"),
    }
}

fn spec(name: &str, kind: DeviceKind, device: i32) -> InstanceSpec {
    InstanceSpec {
        name: format!("{name}_0"),
        kind,
        device,
    }
}

fn instantiate_as(
    dir: &Path,
    cfg: &ModelConfig,
    spec: &InstanceSpec,
) -> Result<Box<dyn Instance>, BackendError> {
    let version_dir = dir.join("1");
    let ctx = ModelContext {
        name: &cfg.name,
        version: 1,
        model_dir: dir,
        version_dir: &version_dir,
        config: cfg,
    };
    TorchBackend.instantiate(&ctx, spec)
}

fn instantiate(dir: &Path, cfg: &ModelConfig) -> Result<Box<dyn Instance>, BackendError> {
    instantiate_as(dir, cfg, &spec(&cfg.name, DeviceKind::Cpu, -1))
}

#[track_caller]
fn load(dir: &Path) -> (ModelConfig, Box<dyn Instance>) {
    let cfg = read_config(dir);
    match instantiate(dir, &cfg) {
        Ok(i) => (cfg, i),
        Err(e) => panic!("{} does not load: {e}", dir.display()),
    }
}

#[track_caller]
fn load_error(dir: &Path, cfg: &ModelConfig) -> String {
    match instantiate(dir, cfg) {
        Ok(_) => panic!("{} loaded, expected an error", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// One request: its inputs and, if not all, the outputs it asks for.
struct Req {
    inputs: Vec<NamedTensor>,
    outputs: Vec<&'static str>,
}

impl Req {
    fn new(inputs: Vec<NamedTensor>) -> Req {
        Req {
            inputs,
            outputs: Vec::new(),
        }
    }
}

/// Executes all requests as one batch; the answers in request order.
fn infer(
    instance: &mut dyn Instance,
    batched: bool,
    reqs: Vec<Req>,
) -> Vec<Result<InferResponse, Status>> {
    let mut streams = Vec::new();
    let mut batch = Vec::new();
    for r in reqs {
        let rows = r.inputs.first().map_or(1, |t| t.tensor.shape[0]);
        let (mut req, stream) = InferRequest::new(String::new(), r.inputs);
        req.batch_size = if batched { rows as usize } else { 1 };
        req.outputs = r
            .outputs
            .iter()
            .map(|n| RequestedOutput {
                name: n.to_string(),
                class_count: 0,
            })
            .collect();
        batch.push(req);
        streams.push(stream);
    }
    let mut timer = ExecTimer::start();
    instance.execute(batch, &mut timer);
    streams
        .into_iter()
        .map(|mut s| {
            let item = s.blocking_next().expect("an answer");
            assert!(item.last);
            item.response.expect("a response or an error")
        })
        .collect()
}

fn infer_one(
    instance: &mut dyn Instance,
    batched: bool,
    inputs: Vec<NamedTensor>,
) -> InferResponse {
    match infer(instance, batched, vec![Req::new(inputs)])
        .pop()
        .unwrap()
    {
        Ok(r) => r,
        Err(e) => panic!("inference failed: {e}"),
    }
}

fn infer_err(instance: &mut dyn Instance, batched: bool, inputs: Vec<NamedTensor>) -> Status {
    match infer(instance, batched, vec![Req::new(inputs)])
        .pop()
        .unwrap()
    {
        Ok(r) => panic!("inference succeeded with {r:?}, expected an error"),
        Err(e) => e,
    }
}

// --- goldens (tests/goldens) ---

use goldens::{Golden, rows};

#[track_caller]
fn assert_close(what: &str, got: &Tensor, want: &Tensor, abs: f64, rel: f64) {
    if let Err(e) = goldens::compare(got, want, abs, rel) {
        panic!("{what}: {e}");
    }
}

fn named_rows(ts: &[NamedTensor], from: usize, to: usize) -> Vec<NamedTensor> {
    ts.iter()
        .map(|t| NamedTensor::new(t.name.clone(), rows(&t.tensor, from, to)))
        .collect()
}

#[track_caller]
fn check_response(what: &str, got: &InferResponse, want: &[NamedTensor], abs: f64, rel: f64) {
    if let Err(e) = goldens::check_response(got, want, abs, rel) {
        panic!("{what}: {e}");
    }
}

/// The TorchScript models with goldens: bundled and extra.
fn torch_models() -> Vec<PathBuf> {
    let mut dirs = vec![root().join("model_repository/simple_torch")];
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/models_extra/manifest.json")).unwrap(),
    )
    .unwrap();
    for (name, m) in manifest["models"].as_object().unwrap() {
        if m["loads"].as_bool() == Some(true) && m["file"].as_str().unwrap().ends_with(".pt") {
            dirs.push(root().join("tests/models_extra").join(name));
        }
    }
    dirs
}

fn goldens_of(model: &str) -> Vec<Golden> {
    goldens::of(model)
}

#[test]
fn goldens_match() {
    let models = torch_models();
    assert_eq!(
        models.len(),
        3,
        "simple_torch, torch_multi_dtype, torch_identity_fp32"
    );
    for dir in models {
        let (cfg, mut instance) = load(&dir);
        let batched = cfg.max_batch_size > 0;
        for g in goldens_of(&cfg.name) {
            assert_eq!(root().join(&g.repository).join(&g.model), dir);
            let what = g.file.display().to_string();
            let got = infer_one(instance.as_mut(), batched, g.inputs.clone());
            check_response(&what, &got, &g.outputs, g.abs, g.rel);
        }
    }
}

#[test]
fn batching_does_not_change_answers() {
    let mut checked = 0;
    for dir in torch_models() {
        let (cfg, mut instance) = load(&dir);
        if cfg.max_batch_size == 0 {
            continue;
        }
        let goldens = goldens_of(&cfg.name);
        for g in &goldens {
            let n = g.inputs[0].tensor.shape[0] as usize;
            let what = g.file.display().to_string();
            if n > 1 {
                // Each row its own request, all in one batch; then one row and the rest.
                let reqs = (0..n)
                    .map(|r| Req::new(named_rows(&g.inputs, r, r + 1)))
                    .collect();
                for (r, got) in infer(instance.as_mut(), true, reqs).into_iter().enumerate() {
                    let want = named_rows(&g.outputs, r, r + 1);
                    check_response(
                        &format!("{what} row {r}"),
                        &got.unwrap(),
                        &want,
                        g.abs,
                        g.rel,
                    );
                }
                let split = vec![
                    Req::new(named_rows(&g.inputs, 0, 1)),
                    Req::new(named_rows(&g.inputs, 1, n)),
                ];
                let got = infer(instance.as_mut(), true, split);
                check_response(
                    &what,
                    got[0].as_ref().unwrap(),
                    &named_rows(&g.outputs, 0, 1),
                    g.abs,
                    g.rel,
                );
                check_response(
                    &what,
                    got[1].as_ref().unwrap(),
                    &named_rows(&g.outputs, 1, n),
                    g.abs,
                    g.rel,
                );
                checked += 1;
            }
            if let Some((case, from, to)) = &g.same_as_row {
                let other = goldens
                    .iter()
                    .find(|o| o.file.file_stem().unwrap() == case.as_str())
                    .unwrap();
                for want in &g.outputs {
                    let big = other.outputs.iter().find(|o| o.name == want.name).unwrap();
                    assert_close(
                        &what,
                        &want.tensor,
                        &rows(&big.tensor, *from, *to),
                        g.abs,
                        g.rel,
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "only {checked} batching checks ran");
}

#[test]
fn requested_outputs_only() {
    let dir = root().join("model_repository/simple_torch");
    let (_, mut instance) = load(&dir);
    let g = goldens_of("simple_torch")
        .into_iter()
        .find(|g| g.inputs[0].tensor.shape[0] == 8)
        .unwrap();
    let mut only_diff = Req::new(named_rows(&g.inputs, 0, 2));
    only_diff.outputs = vec!["OUTPUT__1"];
    let all = Req::new(named_rows(&g.inputs, 2, 8));
    let got = infer(instance.as_mut(), true, vec![only_diff, all]);
    let first = got[0].as_ref().unwrap();
    assert_eq!(first.outputs.len(), 1);
    assert_close(
        "OUTPUT__1",
        first.output("OUTPUT__1").unwrap(),
        &rows(&g.outputs[1].tensor, 0, 2),
        0.0,
        0.0,
    );
    check_response(
        "rest",
        got[1].as_ref().unwrap(),
        &named_rows(&g.outputs, 2, 8),
        0.0,
        0.0,
    );
}

#[test]
fn broken_models_are_refused() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/models_extra/manifest.json")).unwrap(),
    )
    .unwrap();
    let mut refused = 0;
    for (name, m) in manifest["models"].as_object().unwrap() {
        if m["loads"].as_bool() != Some(false) || !m["file"].as_str().unwrap().ends_with(".pt") {
            continue;
        }
        let dir = root().join("tests/models_extra").join(name);
        let err = load_error(&dir, &read_config(&dir));
        for word in m["reason_mentions"].as_array().unwrap() {
            let word = word.as_str().unwrap();
            assert!(
                err.contains(word),
                "{name}: '{err}' does not mention '{word}'"
            );
        }
        assert!(
            err.contains(&format!("failed to load model '{name}'")),
            "{err}"
        );
        assert!(err.contains("not a TorchScript archive"), "{err}");
        assert!(!err.contains("frame #"), "backtrace left in '{err}'");
        refused += 1;
    }
    assert_eq!(refused, 2, "torch_onnx_file and torch_truncated");
}

// --- variants of simple_torch's config, in a scratch repository ---

/// A model folder holding `model.pt` and the given config.
fn scratch(model_pt: &Path, config: &str) -> (tempfile::TempDir, ModelConfig) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("1")).unwrap();
    std::fs::copy(model_pt, tmp.path().join("1/model.pt")).unwrap();
    std::fs::write(tmp.path().join("config.pbtxt"), config).unwrap();
    let cfg = parse_config(config);
    (tmp, cfg)
}

fn add_sub_pt() -> PathBuf {
    root().join("model_repository/simple_torch/1/model.pt")
}

const ADD_SUB_BODY: &str = r#"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }
]
output [
  { name: "OUTPUT__1" data_type: TYPE_FP32 dims: [ 4 ] },
  { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 4 ] }
]
"#;

fn f32s(shape: Vec<i64>, v: &[f32]) -> Tensor {
    Tensor::from_values(shape, v)
}

#[test]
fn config_order_does_not_matter_with_index_names() {
    let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{ADD_SUB_BODY}"));
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        true,
        vec![
            NamedTensor::new("INPUT__0", f32s(vec![1, 4], &[1.0, 2.0, 3.0, 4.0])),
            NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[10.0, 20.0, 30.0, 40.0])),
        ],
    );
    assert_eq!(
        got.output("OUTPUT__0").unwrap().values::<f32>().unwrap(),
        vec![11.0, 22.0, 33.0, 44.0]
    );
    assert_eq!(
        got.output("OUTPUT__1").unwrap().values::<f32>().unwrap(),
        vec![-9.0, -18.0, -27.0, -36.0]
    );
}

#[test]
fn other_names_bind_in_config_order() {
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 8
input [
  { name: "A" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "B" data_type: TYPE_FP32 dims: [ 2 ] }
]
output [
  { name: "SUM" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "DIFF" data_type: TYPE_FP32 dims: [ 2 ] }
]
"#;
    let (tmp, cfg) = scratch(&add_sub_pt(), config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        true,
        vec![
            NamedTensor::new("B", f32s(vec![1, 2], &[1.0, 2.0])),
            NamedTensor::new("A", f32s(vec![1, 2], &[5.0, 7.0])),
        ],
    );
    assert_eq!(
        got.output("SUM").unwrap().values::<f32>().unwrap(),
        vec![6.0, 9.0]
    );
    assert_eq!(
        got.output("DIFF").unwrap().values::<f32>().unwrap(),
        vec![4.0, 5.0]
    );
}

#[test]
fn integer_inputs_flow_through() {
    let config = ADD_SUB_BODY.replace("TYPE_FP32", "TYPE_INT32");
    let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{config}"));
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        true,
        vec![
            NamedTensor::new(
                "INPUT__0",
                Tensor::from_values(vec![1, 4], &[i32::MAX, 2, 3, -4]),
            ),
            NamedTensor::new(
                "INPUT__1",
                Tensor::from_values(vec![1, 4], &[0i32, 20, -30, 40]),
            ),
        ],
    );
    assert_eq!(
        got.output("OUTPUT__0").unwrap().values::<i32>().unwrap(),
        vec![i32::MAX, 22, -27, 36]
    );
    assert_eq!(
        got.output("OUTPUT__1").unwrap().values::<i32>().unwrap(),
        vec![i32::MAX, -18, 33, -44]
    );
}

#[test]
fn reshaped_inputs_and_outputs() {
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 4
input [
  { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2, 2 ] reshape { shape: [ 4 ] } },
  { name: "INPUT__1" data_type: TYPE_FP32 dims: [ 4 ] }
]
output [
  { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 1, 4 ] reshape { shape: [ 4 ] } }
]
"#;
    let (tmp, cfg) = scratch(&add_sub_pt(), config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer(
        inst.as_mut(),
        true,
        vec![
            Req::new(vec![
                NamedTensor::new("INPUT__0", f32s(vec![1, 2, 2], &[1.0, 2.0, 3.0, 4.0])),
                NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[1.0, 1.0, 1.0, 1.0])),
            ]),
            Req::new(vec![
                NamedTensor::new("INPUT__0", f32s(vec![1, 2, 2], &[5.0, 6.0, 7.0, 8.0])),
                NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[2.0, 2.0, 2.0, 2.0])),
            ]),
        ],
    );
    for (got, want) in got
        .iter()
        .zip([[2.0, 3.0, 4.0, 5.0], [7.0, 8.0, 9.0, 10.0]])
    {
        let out = got.as_ref().unwrap();
        assert_eq!(out.outputs.len(), 1);
        let t = out.output("OUTPUT__0").unwrap();
        assert_eq!(t.shape, vec![1, 1, 4]);
        assert_eq!(t.values::<f32>().unwrap(), want.to_vec());
    }
}

#[test]
fn output_datatype_mismatch_fails_execution() {
    let config = ADD_SUB_BODY.replacen(
        "{ name: \"OUTPUT__1\" data_type: TYPE_FP32",
        "{ name: \"OUTPUT__1\" data_type: TYPE_FP64",
        1,
    );
    let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{config}"));
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let inputs = vec![
        NamedTensor::new("INPUT__0", f32s(vec![1, 4], &[1.0; 4])),
        NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[1.0; 4])),
    ];
    let err = infer_err(inst.as_mut(), true, inputs);
    assert_eq!(err.code, Code::InvalidArg);
    assert_eq!(
        err.message,
        "configuration expects datatype TYPE_FP64 for output 'OUTPUT__1', model provides TYPE_FP32"
    );
}

#[test]
fn output_index_beyond_results_fails_execution() {
    let config = ADD_SUB_BODY.replace("OUTPUT__1", "OUTPUT__2");
    let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{config}"));
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let inputs = vec![
        NamedTensor::new("INPUT__0", f32s(vec![1, 4], &[1.0; 4])),
        NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[1.0; 4])),
    ];
    let err = infer_err(inst.as_mut(), true, inputs);
    assert_eq!(err.code, Code::Internal);
    assert!(
        err.message
            .contains("output 'OUTPUT__2' reads result 2 of forward(), which returned 2 tensor(s)"),
        "{}",
        err.message
    );
}

#[test]
fn config_errors_at_load() {
    let cases: Vec<(String, &str)> = vec![
        (
            ADD_SUB_BODY.replace(
                "input [",
                "input [\n  { name: \"INPUT__2\" data_type: TYPE_FP32 dims: [ 4 ] },",
            ),
            "unable to load model 'm', configuration expects 3 inputs, model provides 2",
        ),
        (
            ADD_SUB_BODY.replacen("TYPE_FP32", "TYPE_STRING", 1),
            "input 'INPUT__1' of model 'm' has datatype TYPE_STRING",
        ),
        (
            ADD_SUB_BODY.replacen("TYPE_FP32", "TYPE_UINT32", 1),
            "unsupported datatype TYPE_UINT32 for input 'INPUT__1' for model 'm'",
        ),
        (
            format!(
                "{ADD_SUB_BODY}parameters {{ key: \"DISABLE_OPTIMIZED_EXECUTION\" value {{ string_value: \"maybe\" }} }}"
            ),
            "parameter 'DISABLE_OPTIMIZED_EXECUTION': failed to convert 'maybe' to boolean",
        ),
        (
            format!(
                "{ADD_SUB_BODY}parameters {{ key: \"INTRA_OP_THREAD_COUNT\" value {{ string_value: \"many\" }} }}"
            ),
            "parameter 'INTRA_OP_THREAD_COUNT': failed to convert 'many' to integral number",
        ),
    ];
    for (body, want) in cases {
        let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{body}"));
        let err = load_error(tmp.path(), &cfg);
        assert!(err.contains(want), "'{err}' does not contain '{want}'");
    }
}

#[test]
fn parameters_are_applied() {
    let body = format!(
        "{ADD_SUB_BODY}parameters [
  {{ key: \"INTRA_OP_THREAD_COUNT\" value {{ string_value: \"2\" }} }},
  {{ key: \"DISABLE_OPTIMIZED_EXECUTION\" value {{ string_value: \"true\" }} }}
]"
    );
    let (tmp, cfg) = scratch(&add_sub_pt(), &format!("name: \"m\"{body}"));
    // Intra-op threads belong to the instance's thread: load on a thread of its own.
    let threads = std::thread::scope(|s| {
        s.spawn(|| {
            let mut inst = instantiate(tmp.path(), &cfg).unwrap();
            let got = infer_one(
                inst.as_mut(),
                true,
                vec![
                    NamedTensor::new("INPUT__0", f32s(vec![1, 4], &[1.0; 4])),
                    NamedTensor::new("INPUT__1", f32s(vec![1, 4], &[2.0; 4])),
                ],
            );
            assert_eq!(
                got.output("OUTPUT__0").unwrap().values::<f32>().unwrap(),
                vec![3.0; 4]
            );
            tch::get_num_threads()
        })
        .join()
        .unwrap()
    });
    assert_eq!(threads, 2);
    let default = std::thread::spawn(move || {
        let _inst = instantiate(
            tmp.path(),
            &parse_config(&format!("name: \"m\"{ADD_SUB_BODY}")),
        )
        .unwrap();
        tch::get_num_threads()
    })
    .join()
    .unwrap();
    assert_eq!(default, 1);
}

#[test]
fn missing_model_file() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("1")).unwrap();
    let cfg = parse_config(&format!("name: \"m\"{ADD_SUB_BODY}"));
    let err = load_error(tmp.path(), &cfg);
    let want = format!(
        "unable to find '{}' for model instance 'm_0'",
        tmp.path().join("1/model.pt").display()
    );
    assert_eq!(err, want);
}

#[test]
fn gpu_instances_need_cuda() {
    let dir = root().join("model_repository/simple_torch");
    let cfg = read_config(&dir);
    let gpu = spec(&cfg.name, DeviceKind::Gpu, 0);
    match instantiate_as(&dir, &cfg, &gpu) {
        Err(e) => {
            assert!(!tch::Cuda::is_available());
            let e = e.to_string();
            assert!(
                e.contains("unable to load model 'simple_torch' on GPU 0"),
                "{e}"
            );
            assert!(e.contains("CUDA"), "{e}");
        }
        Ok(mut inst) => {
            // Only where libtorch sees a GPU.
            assert!(tch::Cuda::is_available());
            let g = goldens_of("simple_torch").remove(0);
            let got = infer_one(inst.as_mut(), true, g.inputs.clone());
            check_response("gpu", &got, &g.outputs, 0.0, 0.0);
        }
    }
}

// --- TorchScript written here: forward() signatures the committed models lack ---

/// Packs TorchScript source for class `Net` into an archive `torch.jit.load` reads.
fn torchscript(dir: &Path, forward: &str) {
    let source = format!(
        "class Net(Module):\n  __parameters__ = []\n  __buffers__ = []\n  training : bool\n{forward}"
    );
    let pickle = b"\x80\x02c__torch__.despina_test\nNet\nq\x00)\x81}(X\x08\x00\x00\x00trainingq\x01\x89ubq\x02.";
    let entries: Vec<(&str, &[u8])> = vec![
        ("archive/data.pkl", pickle),
        ("archive/code/__torch__/despina_test.py", source.as_bytes()),
        ("archive/constants.pkl", b"\x80\x02)."),
        ("archive/version", b"3\n"),
        ("archive/byteorder", b"little"),
    ];
    std::fs::create_dir_all(dir.join("1")).unwrap();
    std::fs::write(dir.join("1/model.pt"), stored_zip(&entries)).unwrap();
}

/// A zip archive of uncompressed entries.
fn stored_zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let offset = out.len() as u32;
        let fixed = |buf: &mut Vec<u8>| {
            buf.extend_from_slice(&20u16.to_le_bytes()); // version needed
            buf.extend_from_slice(&[0; 6]); // flags, method (stored), time
            buf.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
            buf.extend_from_slice(&crc.sum().to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(&0u16.to_le_bytes()); // extra length
        };
        out.extend_from_slice(&0x04034b50u32.to_le_bytes());
        fixed(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x02014b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        fixed(&mut central);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attrs
        central.extend_from_slice(&0u32.to_le_bytes()); // external attrs
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let central_at = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x06054b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&central_at.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

fn scripted(forward: &str, config: &str) -> (tempfile::TempDir, ModelConfig) {
    let tmp = tempfile::tempdir().unwrap();
    torchscript(tmp.path(), forward);
    std::fs::write(tmp.path().join("config.pbtxt"), config).unwrap();
    let cfg = parse_config(config);
    (tmp, cfg)
}

const SWAPPED: &str = "  def forward(self: __torch__.despina_test.Net,
    b: Tensor,
    a: Tensor) -> Tuple[Tensor, Tensor]:
    return (torch.sub(a, b), torch.mul(b, 2))
";

#[test]
fn forward_argument_names_bind_inputs() {
    // Config lists a before b; forward() takes b first: names decide.
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 2
input [
  { name: "a" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "b" data_type: TYPE_FP32 dims: [ 2 ] }
]
output [
  { name: "DIFF__0" data_type: TYPE_FP32 dims: [ 2 ] },
  { name: "TWICE_B__1" data_type: TYPE_FP32 dims: [ 2 ] }
]
"#;
    let (tmp, cfg) = scripted(SWAPPED, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        true,
        vec![
            NamedTensor::new("a", f32s(vec![1, 2], &[10.0, 20.0])),
            NamedTensor::new("b", f32s(vec![1, 2], &[1.0, 2.0])),
        ],
    );
    assert_eq!(
        got.output("DIFF__0").unwrap().values::<f32>().unwrap(),
        vec![9.0, 18.0]
    );
    assert_eq!(
        got.output("TWICE_B__1").unwrap().values::<f32>().unwrap(),
        vec![2.0, 4.0]
    );

    // The same names absent from forward(): config order (a -> first argument, b).
    let renamed = config.replace("\"a\"", "\"x\"").replace("\"b\"", "\"y\"");
    let (tmp, cfg) = scripted(SWAPPED, &renamed);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        true,
        vec![
            NamedTensor::new("x", f32s(vec![1, 2], &[10.0, 20.0])),
            NamedTensor::new("y", f32s(vec![1, 2], &[1.0, 2.0])),
        ],
    );
    // x binds forward's b, y binds its a: a - b = y - x.
    assert_eq!(
        got.output("DIFF__0").unwrap().values::<f32>().unwrap(),
        vec![-9.0, -18.0]
    );
}

#[test]
fn dictionary_input_and_list_output() {
    let forward = "  def forward(self: __torch__.despina_test.Net,
    inputs: Dict[str, Tensor]) -> List[Tensor]:
    return [torch.sub(inputs[\"minuend\"], inputs[\"subtrahend\"]), torch.neg(inputs[\"minuend\"])]
";
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 0
input [
  { name: "subtrahend" data_type: TYPE_INT64 dims: [ 3 ] },
  { name: "minuend" data_type: TYPE_INT64 dims: [ 3 ] }
]
output [
  { name: "OUT__0" data_type: TYPE_INT64 dims: [ 3 ] },
  { name: "OUT__1" data_type: TYPE_INT64 dims: [ 3 ] }
]
"#;
    let (tmp, cfg) = scripted(forward, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let got = infer_one(
        inst.as_mut(),
        false,
        vec![
            NamedTensor::new("minuend", Tensor::from_values(vec![3], &[i64::MAX, 0, 5])),
            NamedTensor::new("subtrahend", Tensor::from_values(vec![3], &[1i64, 1, -5])),
        ],
    );
    assert_eq!(
        got.output("OUT__0").unwrap().values::<i64>().unwrap(),
        vec![i64::MAX - 1, -1, 10]
    );
    assert_eq!(
        got.output("OUT__1").unwrap().values::<i64>().unwrap(),
        vec![-i64::MAX, 0, -5]
    );
}

#[test]
fn model_errors_fail_only_their_batch() {
    let forward = "  def forward(self: __torch__.despina_test.Net,
    x: Tensor) -> Tensor:
    if bool(torch.any(torch.lt(x, 0))):
      ops.prim.RaiseException(\"negative input\", \"builtins.ValueError\")
    return torch.sqrt(x)
";
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "INPUT__0" data_type: TYPE_FP64 dims: [ 1 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP64 dims: [ 1 ] } ]
"#;
    let (tmp, cfg) = scripted(forward, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let bad = Tensor::from_values(vec![1, 1], &[-1.0f64]);
    let good = Tensor::from_values(vec![1, 1], &[16.0f64]);
    let err = infer_err(
        inst.as_mut(),
        true,
        vec![NamedTensor::new("INPUT__0", bad.clone())],
    );
    assert_eq!(err.code, Code::Internal);
    assert!(
        err.message.starts_with("PyTorch execute failure: "),
        "{}",
        err.message
    );
    assert!(err.message.contains("negative input"), "{}", err.message);
    assert!(!err.message.contains("frame #"), "{}", err.message);
    // A batch with the bad row fails as a whole; the instance keeps serving.
    let got = infer(
        inst.as_mut(),
        true,
        vec![
            Req::new(vec![NamedTensor::new("INPUT__0", good.clone())]),
            Req::new(vec![NamedTensor::new("INPUT__0", bad)]),
        ],
    );
    assert!(got.iter().all(|r| r.is_err()));
    let ok = infer_one(
        inst.as_mut(),
        true,
        vec![NamedTensor::new("INPUT__0", good)],
    );
    assert_eq!(
        ok.output("OUTPUT__0").unwrap().values::<f64>().unwrap(),
        vec![4.0]
    );
}

#[test]
fn unsupported_signatures_and_results() {
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 0
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ 2 ] } ]
"#;
    let int_arg = "  def forward(self: __torch__.despina_test.Net,
    k: int) -> Tensor:
    return torch.zeros([k])
";
    let (tmp, cfg) = scripted(int_arg, config);
    let err = load_error(tmp.path(), &cfg);
    assert!(
        err.contains("An input of type 'int' was detected in the model"),
        "{err}"
    );

    let scalar = "  def forward(self: __torch__.despina_test.Net,
    x: Tensor) -> Tensor:
    return torch.sum(x)
";
    let (tmp, cfg) = scripted(scalar, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let err = infer_err(
        inst.as_mut(),
        false,
        vec![NamedTensor::new("INPUT__0", f32s(vec![2], &[1.0, 2.0]))],
    );
    assert_eq!(
        err.message,
        "output 'OUTPUT__0' is a scalar which is not supported"
    );

    let number = "  def forward(self: __torch__.despina_test.Net,
    x: Tensor) -> float:
    return 1.5
";
    let (tmp, cfg) = scripted(number, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let err = infer_err(
        inst.as_mut(),
        false,
        vec![NamedTensor::new("INPUT__0", f32s(vec![2], &[1.0, 2.0]))],
    );
    assert!(
        err.message.contains(
            "output must be of type Tensor, or a tuple or list of Tensors, received float"
        ),
        "{}",
        err.message
    );
}

#[test]
fn sequence_control_inputs_bind_by_index() {
    // The sequence batcher adds the control tensors to each request; forward() gets them at
    // the positions their <name>__<index> names give.
    let forward = "  def forward(self: __torch__.despina_test.Net,
    start: Tensor,
    x: Tensor,
    ready: Tensor) -> Tensor:
    return torch.add(torch.mul(x, ready), torch.mul(start, 1000))
";
    let config = r#"
name: "m"
platform: "pytorch_libtorch"
max_batch_size: 2
input [ { name: "INPUT__1" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  control_input [
    { name: "START__0" control [ { kind: CONTROL_SEQUENCE_START int32_false_true: [ 0, 1 ] } ] },
    { name: "READY__2" control [ { kind: CONTROL_SEQUENCE_READY int32_false_true: [ 0, 1 ] } ] }
  ]
}
"#;
    let (tmp, cfg) = scripted(forward, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let int = |v: i32| Tensor::from_values(vec![1, 1], &[v]);
    let got = infer(
        inst.as_mut(),
        true,
        vec![
            Req::new(vec![
                NamedTensor::new("INPUT__1", int(7)),
                NamedTensor::new("START__0", int(1)),
                NamedTensor::new("READY__2", int(1)),
            ]),
            Req::new(vec![
                NamedTensor::new("INPUT__1", int(9)),
                NamedTensor::new("START__0", int(0)),
                NamedTensor::new("READY__2", int(0)),
            ]),
        ],
    );
    let values: Vec<Vec<i32>> = got
        .into_iter()
        .map(|r| {
            r.unwrap()
                .output("OUTPUT__0")
                .unwrap()
                .values::<i32>()
                .unwrap()
        })
        .collect();
    assert_eq!(values, vec![vec![1007], vec![0]]);
}

#[test]
fn kind_model_instances_run_where_the_module_was_saved() {
    let dir = root().join("model_repository/simple_torch");
    let cfg = read_config(&dir);
    let mut inst = instantiate_as(&dir, &cfg, &spec(&cfg.name, DeviceKind::Model, -1)).unwrap();
    for g in goldens_of("simple_torch") {
        let got = infer_one(inst.as_mut(), true, g.inputs.clone());
        check_response("KIND_MODEL", &got, &g.outputs, g.abs, g.rel);
    }
}

const RAGGED: &str = "  def forward(self: __torch__.despina_test.Net,
    INPUT__0: Tensor,
    INDEX__1: Tensor,
    SIZES__2: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    return (torch.mul(INPUT__0, 2), torch.reshape(INDEX__1, [-1, 1]), torch.reshape(SIZES__2, [-1, 1]))
";

#[test]
fn a_ragged_batch_is_concatenated_described_and_scattered_back() {
    let config = r#"
name: "ragged"
platform: "pytorch_libtorch"
max_batch_size: 8
input [ { name: "INPUT__0" data_type: TYPE_FP32 dims: [ -1 ] allow_ragged_batch: true } ]
output [
  { name: "OUTPUT__0" data_type: TYPE_FP32 dims: [ -1 ] },
  { name: "END__1" data_type: TYPE_FP32 dims: [ 1 ] },
  { name: "SIZE__2" data_type: TYPE_INT32 dims: [ 1 ] }
]
batch_input [
  { kind: BATCH_ACCUMULATED_ELEMENT_COUNT target_name: "INDEX__1" data_type: TYPE_FP32 source_input: "INPUT__0" },
  { kind: BATCH_ELEMENT_COUNT target_name: "SIZES__2" data_type: TYPE_INT32 source_input: "INPUT__0" }
]
batch_output [ { target_name: "OUTPUT__0" kind: BATCH_SCATTER_WITH_INPUT_SHAPE source_input: "INPUT__0" } ]
"#;
    let (tmp, cfg) = scripted(RAGGED, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let lens = [3usize, 4, 5];
    let inputs: Vec<Tensor> = lens
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            let v: Vec<f32> = (0..n).map(|i| (10 * r + i) as f32).collect();
            f32s(vec![1, n as i64], &v)
        })
        .collect();
    let reqs = inputs
        .iter()
        .map(|t| Req::new(vec![NamedTensor::new("INPUT__0", t.clone())]))
        .collect();
    let got = infer(inst.as_mut(), true, reqs);
    let mut end = 0f32;
    for ((got, input), &n) in got.iter().zip(&inputs).zip(&lens) {
        let r = got.as_ref().unwrap();
        let doubled: Vec<f32> = input
            .values::<f32>()
            .unwrap()
            .iter()
            .map(|x| 2.0 * x)
            .collect();
        assert_eq!(
            r.output("OUTPUT__0").unwrap(),
            &f32s(vec![1, n as i64], &doubled)
        );
        end += n as f32;
        assert_eq!(r.output("END__1").unwrap(), &f32s(vec![1, 1], &[end]));
        assert_eq!(
            r.output("SIZE__2").unwrap(),
            &Tensor::from_values(vec![1, 1], &[n as i32])
        );
    }
}

const ACCUMULATE: &str = "  def forward(self: __torch__.despina_test.Net,
    INPUT__0: Tensor,
    STATE__1: Tensor) -> Tuple[Tensor, Tensor]:
    total = torch.add(INPUT__0, STATE__1)
    return (total, total)
";

#[test]
fn implicit_state_binds_and_is_always_returned() {
    // The sequence batcher feeds STATE__1 and takes NEXT_STATE__1 back out of the answer
    // (tested through the server with an ONNX model); here: the binding and that the
    // instance returns the state output even to a request that did not ask for it.
    let config = r#"
name: "acc"
platform: "pytorch_libtorch"
max_batch_size: 4
input [ { name: "INPUT__0" data_type: TYPE_INT32 dims: [ 1 ] } ]
output [ { name: "OUTPUT__0" data_type: TYPE_INT32 dims: [ 1 ] } ]
sequence_batching {
  state [ { input_name: "STATE__1" output_name: "NEXT_STATE__1" data_type: TYPE_INT32 dims: [ 1 ] } ]
}
"#;
    let (tmp, cfg) = scripted(ACCUMULATE, config);
    let mut inst = instantiate(tmp.path(), &cfg).unwrap();
    let i32s = |v: &[i32]| Tensor::from_values(vec![v.len() as i64, 1], v);
    let mut req = Req::new(vec![
        NamedTensor::new("INPUT__0", i32s(&[5])),
        NamedTensor::new("STATE__1", i32s(&[100])),
    ]);
    req.outputs = vec!["OUTPUT__0"];
    let got = infer(inst.as_mut(), true, vec![req])
        .pop()
        .unwrap()
        .unwrap();
    assert_eq!(got.output("OUTPUT__0").unwrap(), &i32s(&[105]));
    assert_eq!(got.output("NEXT_STATE__1").unwrap(), &i32s(&[105]));
}
