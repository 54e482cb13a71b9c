//! The ONNX Runtime backend at its trait, without a server: models from
//! `model_repository/` and `tests/models_extra/`, configs parsed from their
//! `config.pbtxt`, instances created on the test thread, requests from
//! `InferRequest::new` and answers read from their `ResponseStream`.
//!
//! Needs libonnxruntime (scripts/setup.sh puts it in .venv). Without it the tests print
//! a loud notice and pass, unless DESPINA_REQUIRE_ONNXRUNTIME is set (scripts/test.sh).

mod goldens;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use bytes::Bytes;
use serde_json::Value;

use despina::backend::onnx::OnnxBackend;
use despina::backend::{
    Backend, BackendError, DeviceKind, ExecTimer, Instance, InstanceSpec, ModelContext,
};
use despina::config::{ConfigExt, ModelConfig};
use despina::proto::inference::DataType as ConfigType;
use despina::request::{InferRequest, InferResponse, NamedTensor, RequestedOutput};
use despina::status::Status;
use despina::tensor::{DataType, Tensor};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn backend() -> Option<&'static OnnxBackend> {
    static B: OnceLock<Option<OnnxBackend>> = OnceLock::new();
    B.get_or_init(|| match OnnxBackend::new(None) {
        Ok(b) => Some(b),
        Err(e) => {
            if std::env::var_os("DESPINA_REQUIRE_ONNXRUNTIME").is_some() {
                panic!("DESPINA_REQUIRE_ONNXRUNTIME is set but ONNX Runtime cannot be loaded: {e}");
            }
            eprintln!(
                "\n************************************************************\n\
                 SKIPPING the ONNX Runtime backend tests: {e}\n\
                 ************************************************************\n"
            );
            None
        }
    })
    .as_ref()
}

macro_rules! backend_or_skip {
    () => {
        match backend() {
            Some(b) => b,
            None => {
                eprintln!("SKIPPED: no ONNX Runtime library");
                return;
            }
        }
    };
}

/// Parses a config.pbtxt with the server's own parser.
fn parse_config(text: &str) -> ModelConfig {
    despina::config::parse(text)
        .unwrap_or_else(|e| panic!("config does not parse: {e}"))
        .0
}

/// A model folder with its config (the config as written, or an empty one named after
/// the folder when it has no config.pbtxt).
struct Model {
    name: String,
    dir: PathBuf,
    version_dir: PathBuf,
    config: ModelConfig,
}

impl Model {
    fn open(repository: &str, name: &str) -> Model {
        let dir = root().join(repository).join(name);
        let config = match std::fs::read_to_string(dir.join("config.pbtxt")) {
            Ok(text) => parse_config(&text),
            Err(_) => ModelConfig {
                name: name.to_string(),
                ..Default::default()
            },
        };
        Model {
            name: name.to_string(),
            version_dir: dir.join("1"),
            dir,
            config,
        }
    }

    fn ctx(&self) -> ModelContext<'_> {
        ModelContext {
            name: &self.name,
            version: 1,
            model_dir: &self.dir,
            version_dir: &self.version_dir,
            config: &self.config,
        }
    }

    fn is_onnx(&self) -> bool {
        self.config.platform == "onnxruntime_onnx"
            || self.config.backend == "onnxruntime"
            || (self.config.platform.is_empty()
                && self.config.backend.is_empty()
                && self.version_dir.join("model.onnx").is_file())
    }

    /// Auto-completes the config (as the server does) and creates an instance.
    fn load(&mut self, b: &OnnxBackend) -> Result<Box<dyn Instance>, BackendError> {
        let mut cfg = self.config.clone();
        b.auto_complete(&self.ctx(), &mut cfg)?;
        self.config = cfg;
        self.instantiate(b, DeviceKind::Cpu)
    }

    fn instantiate(
        &self,
        b: &OnnxBackend,
        kind: DeviceKind,
    ) -> Result<Box<dyn Instance>, BackendError> {
        let spec = InstanceSpec {
            name: format!("{}_0", self.name),
            kind,
            device: if kind == DeviceKind::Gpu { 0 } else { -1 },
        };
        b.instantiate(&self.ctx(), &spec)
    }

    fn batching(&self) -> bool {
        self.config.max_batch_size > 0
    }
}

/// A request: its inputs and, optionally, the outputs it asks for.
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

/// Executes `reqs` as one batch and returns each request's single answer.
fn execute(
    inst: &mut dyn Instance,
    batching: bool,
    reqs: Vec<Req>,
) -> Vec<Result<InferResponse, Status>> {
    let mut streams = Vec::new();
    let mut batch = Vec::new();
    for r in reqs {
        let rows = r.inputs.first().map_or(1, |t| t.tensor.shape[0] as usize);
        let (mut req, stream) = InferRequest::new(String::new(), r.inputs);
        req.batch_size = if batching { rows } else { 1 };
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
    inst.execute(batch, &mut timer);
    streams
        .into_iter()
        .map(|mut s| {
            let item = s.blocking_next().expect("an answer");
            assert!(item.last, "one final answer per request");
            item.response.expect("a response or an error")
        })
        .collect()
}

// ---- goldens (tests/goldens) -----------------------------------------------------------

use goldens::{compare, rows as rows_of};

fn check_outputs(
    what: &str,
    got: &Result<InferResponse, Status>,
    want: &[NamedTensor],
    abs: f64,
    rel: f64,
    failures: &mut Vec<String>,
) {
    let resp = match got {
        Ok(r) => r,
        Err(e) => {
            failures.push(format!("{what}: failed: {e}"));
            return;
        }
    };
    if resp.outputs.len() != want.len() {
        failures.push(format!(
            "{what}: {} outputs, want {}",
            resp.outputs.len(),
            want.len()
        ));
    }
    for w in want {
        match resp.output(&w.name) {
            None => failures.push(format!("{what}: output '{}' missing", w.name)),
            Some(g) => {
                if let Err(e) = compare(g, &w.tensor, abs, rel) {
                    failures.push(format!("{what}: output '{}': {e}", w.name));
                }
            }
        }
    }
}

#[test]
fn goldens_reproduce_alone_and_batched() {
    let b = backend_or_skip!();
    let all = goldens::all();
    let mut failures = Vec::new();
    let mut checked = 0;
    let mut models_seen = std::collections::BTreeSet::new();
    for g in &all {
        let mut model = Model::open(&g.repository, &g.model);
        if !model.is_onnx() {
            continue;
        }
        let file = OnnxBackend::model_path(&model.version_dir, &model.config);
        if !file.is_file() {
            eprintln!(
                "\n*** SKIPPING golden {}: {} is missing; run `.venv/bin/python scripts/gen_models.py` ***\n",
                g.file.display(),
                file.display()
            );
            continue;
        }
        let mut inst = match model.load(b) {
            Ok(i) => i,
            Err(e) => {
                failures.push(format!("{}: load failed: {e}", g.model));
                continue;
            }
        };
        models_seen.insert(g.model.clone());
        let what = format!("{}/{}", g.model, g.case);
        let batching = model.batching();

        // The case as one request.
        let got = execute(&mut *inst, batching, vec![Req::new(g.inputs.clone())]);
        check_outputs(&what, &got[0], &g.outputs, g.abs, g.rel, &mut failures);

        // Its rows as separate requests of one batch: batching must not change answers.
        let rows = g.inputs[0].tensor.shape[0] as usize;
        if batching && rows > 1 {
            let split = |ts: &[NamedTensor], r: usize| -> Vec<NamedTensor> {
                ts.iter()
                    .map(|t| NamedTensor::new(t.name.clone(), rows_of(&t.tensor, r, r + 1)))
                    .collect()
            };
            let reqs = (0..rows).map(|r| Req::new(split(&g.inputs, r))).collect();
            let got = execute(&mut *inst, true, reqs);
            for (r, got) in got.iter().enumerate() {
                let want = split(&g.outputs, r);
                let what = format!("{what} row {r} of a batch of {rows} requests");
                check_outputs(&what, got, &want, g.abs, g.rel, &mut failures);
            }
        }

        // Rows of another case: the same answers as there.
        if let Some((case, from, to)) = &g.same_as_row {
            let other = all
                .iter()
                .find(|o| o.model == g.model && &o.case == case)
                .unwrap();
            let want: Vec<NamedTensor> = other
                .outputs
                .iter()
                .map(|t| NamedTensor::new(t.name.clone(), rows_of(&t.tensor, *from, *to)))
                .collect();
            let what = format!("{what} against rows {from}..{to} of {case}");
            check_outputs(&what, &got[0], &want, g.abs, g.rel, &mut failures);
        }
        checked += 1;
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every ONNX model with goldens was exercised (MiniLM only when generated).
    for m in [
        "mlp",
        "simple",
        "onnx_variable_seq",
        "onnx_autocomplete",
        "onnx_autocomplete_nobatch",
        "onnx_identity_fp32_nobatch",
        "onnx_identity_bytes",
    ] {
        assert!(models_seen.contains(m), "no golden ran for {m}");
    }
    assert!(checked >= 40, "only {checked} golden cases ran");
}

#[test]
fn minilm_batch_of_differently_padded_requests() {
    // batch1 is row 1 of batch6 without padding; a batch needs equal shapes, so pad it
    // like batch6 and run it with batch6's other rows: answers equal the goldens.
    let b = backend_or_skip!();
    let mut model = Model::open("model_repository", "all_minilm_l6_v2");
    if !model.version_dir.join("model.onnx").is_file() {
        eprintln!(
            "\n*** SKIPPING: all_minilm_l6_v2 is not generated; run `.venv/bin/python scripts/gen_models.py` ***\n"
        );
        return;
    }
    let mut inst = model.load(b).unwrap();
    let dir = root().join("tests/data/goldens/all_minilm_l6_v2");
    let g6 = goldens::load(&dir.join("batch6.json")).unwrap();
    let reqs = (0..6)
        .map(|r| {
            Req::new(
                g6.inputs
                    .iter()
                    .map(|t| NamedTensor::new(t.name.clone(), rows_of(&t.tensor, r, r + 1)))
                    .collect(),
            )
        })
        .collect();
    let got = execute(&mut *inst, true, reqs);
    let mut failures = Vec::new();
    for (r, got) in got.iter().enumerate() {
        let want: Vec<NamedTensor> = g6
            .outputs
            .iter()
            .map(|t| NamedTensor::new(t.name.clone(), rows_of(&t.tensor, r, r + 1)))
            .collect();
        check_outputs(
            &format!("row {r}"),
            got,
            &want,
            g6.abs,
            g6.rel,
            &mut failures,
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---- datatypes -----------------------------------------------------------------------

/// Deterministic pseudo-random bytes (xorshift), so every bit pattern can turn up.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A [rows, cols] tensor of `dt` holding arbitrary values: any bit pattern for numbers
/// (NaN payloads, subnormals, infinities included), 0/1 for BOOL, arbitrary bytes (NUL,
/// invalid UTF-8, empty) for BYTES.
fn arbitrary(dt: DataType, rows: i64, cols: i64, seed: u64) -> Tensor {
    let n = (rows * cols) as usize;
    match dt.size() {
        Some(size) => {
            let mut data = noise(seed, n * size);
            if dt == DataType::Bool {
                data.iter_mut().for_each(|b| *b &= 1);
            }
            Tensor::new(dt, vec![rows, cols], Bytes::from(data))
        }
        None => {
            let raw = noise(seed, n * 8);
            let items: Vec<Vec<u8>> = (0..n)
                .map(|i| {
                    let len = (raw[i] % 9) as usize;
                    let mut s = raw[i..i + len].to_vec();
                    if i % 3 == 0 {
                        s.push(0);
                        s.push(0xff);
                    }
                    s
                })
                .collect();
            Tensor::from_strings(vec![rows, cols], &items)
        }
    }
}

#[test]
fn every_datatype_round_trips_exactly() {
    let b = backend_or_skip!();
    for dt in DataType::ALL {
        let name = format!("onnx_identity_{}", dt.wire_name().to_lowercase());
        let mut model = Model::open("tests/models_extra", &name);
        assert_eq!(
            despina::tensor::DataType::from_config(model.config.input[0].data_type),
            Some(dt)
        );
        let mut inst = model.load(b).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ins = [
            arbitrary(dt, 1, 5, 11),
            arbitrary(dt, 2, 5, 23),
            arbitrary(dt, 1, 5, 37),
        ];
        // Alone, then the three as one batch.
        for (i, t) in ins.iter().enumerate() {
            let got = execute(
                &mut *inst,
                true,
                vec![Req::new(vec![NamedTensor::new("INPUT0", t.clone())])],
            );
            let out = got[0].as_ref().unwrap().output("OUTPUT0").unwrap().clone();
            assert_eq!(&out, t, "{name}: request {i} alone");
        }
        let reqs = ins
            .iter()
            .map(|t| Req::new(vec![NamedTensor::new("INPUT0", t.clone())]))
            .collect();
        let got = execute(&mut *inst, true, reqs);
        for (i, (g, t)) in got.iter().zip(&ins).enumerate() {
            let out = g.as_ref().unwrap().output("OUTPUT0").unwrap();
            assert_eq!(out, t, "{name}: request {i} of a batch");
        }
        // Empty rows.
        let empty = arbitrary(dt, 1, 0, 5);
        let got = execute(
            &mut *inst,
            true,
            vec![Req::new(vec![NamedTensor::new("INPUT0", empty.clone())])],
        );
        assert_eq!(
            got[0].as_ref().unwrap().output("OUTPUT0").unwrap(),
            &empty,
            "{name}: empty tensor"
        );
    }
}

#[test]
fn unaligned_input_bytes_are_copied_not_misread() {
    let b = backend_or_skip!();
    let mut model = Model::open("tests/models_extra", "onnx_identity_fp64");
    let mut inst = model.load(b).unwrap();
    let values = [1.5f64, -2.25, f64::MAX, f64::MIN_POSITIVE];
    let t = Tensor::from_values(vec![1, 4], &values);
    let mut buf = vec![0u8; 1];
    buf.extend_from_slice(&t.data);
    let shifted = Bytes::from(buf).slice(1..);
    assert_ne!(
        shifted.as_ptr() as usize % 8,
        0,
        "the test needs unaligned data"
    );
    let unaligned = Tensor::new(DataType::Fp64, vec![1, 4], shifted);
    let got = execute(
        &mut *inst,
        true,
        vec![Req::new(vec![NamedTensor::new("INPUT0", unaligned)])],
    );
    let out = got[0].as_ref().unwrap().output("OUTPUT0").unwrap();
    assert_eq!(out.values::<f64>().unwrap(), values);
}

// ---- requests ------------------------------------------------------------------------

fn simple_inputs(rows: i64, base: i32) -> Vec<NamedTensor> {
    let n = (rows * 16) as usize;
    let a: Vec<i32> = (0..n as i32).map(|i| base + i).collect();
    let b: Vec<i32> = (0..n as i32).map(|i| 3 * i - base).collect();
    vec![
        NamedTensor::new("INPUT0", Tensor::from_values(vec![rows, 16], &a)),
        NamedTensor::new("INPUT1", Tensor::from_values(vec![rows, 16], &b)),
    ]
}

#[test]
fn requested_outputs_only() {
    let b = backend_or_skip!();
    let mut model = Model::open("model_repository", "simple");
    let mut inst = model.load(b).unwrap();
    let reqs = vec![
        Req {
            inputs: simple_inputs(1, 7),
            outputs: vec!["OUTPUT1"],
        },
        Req::new(simple_inputs(2, 100)),
    ];
    let got = execute(&mut *inst, true, reqs);
    let first = got[0].as_ref().unwrap();
    assert_eq!(first.outputs.len(), 1);
    let diff = first.output("OUTPUT1").unwrap().values::<i32>().unwrap();
    let want: Vec<i32> = (0..16).map(|i| (7 + i) - (3 * i - 7)).collect();
    assert_eq!(diff, want);
    let second = got[1].as_ref().unwrap();
    assert_eq!(second.outputs.len(), 2);
    assert_eq!(second.outputs[0].name, "OUTPUT0");
    let sum = second.output("OUTPUT0").unwrap();
    assert_eq!(sum.shape, vec![2, 16]);
    let want: Vec<i32> = (0..32).map(|i| (100 + i) + (3 * i - 100)).collect();
    assert_eq!(sum.values::<i32>().unwrap(), want);

    // Only OUTPUT0 across the whole batch.
    let got = execute(
        &mut *inst,
        true,
        vec![Req {
            inputs: simple_inputs(1, 0),
            outputs: vec!["OUTPUT0"],
        }],
    );
    let r = got[0].as_ref().unwrap();
    assert_eq!(r.outputs.len(), 1);
    assert!(r.output("OUTPUT0").is_some());
}

#[test]
fn a_failed_batch_fails_every_request_and_the_instance_keeps_serving() {
    let b = backend_or_skip!();
    let mut model = Model::open("model_repository", "mlp");
    let mut inst = model.load(b).unwrap();
    let bad = |cols: i64| {
        let v = vec![0.5f32; cols as usize];
        Req::new(vec![NamedTensor::new(
            "features",
            Tensor::from_values(vec![1, cols], &v),
        )])
    };
    // Shapes the model cannot take (the server's validation would refuse them earlier).
    let got = execute(&mut *inst, true, vec![bad(63), bad(63)]);
    for g in &got {
        let e = g.as_ref().unwrap_err();
        assert_eq!(e.code, despina::status::Code::Internal);
        assert!(e.message.starts_with("onnx runtime error 2:"), "{e}");
        assert!(e.message.contains("features"), "{e}");
    }
    // A request whose bytes do not fill its shape.
    let short = Tensor::new(DataType::Fp32, vec![1, 64], Bytes::from(vec![0u8; 12]));
    let got = execute(
        &mut *inst,
        true,
        vec![Req::new(vec![NamedTensor::new("features", short)])],
    );
    let e = got[0].as_ref().unwrap_err();
    assert!(e.message.contains("needs 256 bytes"), "{e}");
    // A wrong datatype.
    let ints = Tensor::from_values(vec![1, 64], &[1i32; 64]);
    let got = execute(
        &mut *inst,
        true,
        vec![Req::new(vec![NamedTensor::new("features", ints)])],
    );
    let e = got[0].as_ref().unwrap_err();
    assert!(e.message.contains("expects 'FP32'"), "{e}");

    let g = goldens::load(&root().join("tests/data/goldens/mlp/batch5.json")).unwrap();
    let got = execute(&mut *inst, true, vec![Req::new(g.inputs.clone())]);
    let mut failures = Vec::new();
    check_outputs(
        "after errors",
        &got[0],
        &g.outputs,
        g.abs,
        g.rel,
        &mut failures,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_model_without_batching_runs_each_request_on_its_own() {
    let b = backend_or_skip!();
    let mut model = Model::open("tests/models_extra", "onnx_identity_fp32_nobatch");
    let mut inst = model.load(b).unwrap();
    let t1 = Tensor::from_values(vec![2, 3], &[1f32, 2., 3., 4., 5., 6.]);
    let t2 = Tensor::from_values(vec![1, 4], &[7f32, 8., 9., 10.]);
    let got = execute(
        &mut *inst,
        false,
        vec![
            Req::new(vec![NamedTensor::new("INPUT0", t1.clone())]),
            Req::new(vec![NamedTensor::new("INPUT0", t2.clone())]),
        ],
    );
    assert_eq!(got[0].as_ref().unwrap().output("OUTPUT0").unwrap(), &t1);
    assert_eq!(got[1].as_ref().unwrap().output("OUTPUT0").unwrap(), &t2);
}

#[test]
fn a_ragged_batch_is_concatenated_described_and_scattered_back() {
    let b = backend_or_skip!();
    let mut model = Model::open("tests/models_extra", "onnx_ragged");
    let mut inst = model.load(b).unwrap();
    let lens = [3usize, 4, 5];
    let inputs: Vec<Tensor> = lens
        .iter()
        .enumerate()
        .map(|(r, &n)| {
            let v: Vec<f32> = (0..n).map(|i| (10 * r + i) as f32).collect();
            Tensor::from_values(vec![1, n as i64], &v)
        })
        .collect();
    let reqs = inputs
        .iter()
        .map(|t| Req::new(vec![NamedTensor::new("INPUT0", t.clone())]))
        .collect();
    let got = execute(&mut *inst, true, reqs);
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
            r.output("OUTPUT0").unwrap(),
            &Tensor::from_values(vec![1, n as i64], &doubled)
        );
        end += n as f32;
        assert_eq!(
            r.output("END").unwrap(),
            &Tensor::from_values(vec![1, 1], &[end])
        );
        assert_eq!(
            r.output("SIZE").unwrap(),
            &Tensor::from_values(vec![1, 1], &[n as i32])
        );
    }
    // One request alone gets the same treatment.
    let alone = execute(
        &mut *inst,
        true,
        vec![Req::new(vec![NamedTensor::new(
            "INPUT0",
            inputs[1].clone(),
        )])],
    );
    let r = alone[0].as_ref().unwrap();
    assert_eq!(r.output("OUTPUT0").unwrap().shape, vec![1, 4]);
    assert_eq!(
        r.output("END").unwrap(),
        &Tensor::from_values(vec![1, 1], &[4f32])
    );
}

// ---- loading -------------------------------------------------------------------------

fn manifest() -> Value {
    let text = std::fs::read_to_string(root().join("tests/models_extra/manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn broken_models_fail_to_load_with_the_reason() {
    let b = backend_or_skip!();
    let m = manifest();
    let mut seen = 0;
    for (name, entry) in m["models"].as_object().unwrap() {
        if !name.starts_with("onnx_") || entry["loads"].as_bool() != Some(false) {
            continue;
        }
        let mut model = Model::open("tests/models_extra", name);
        let err = match model.load(b) {
            Ok(_) => panic!("{name} loaded but must not"),
            Err(e) => e.to_string(),
        };
        for word in entry["reason_mentions"].as_array().unwrap() {
            let word = word.as_str().unwrap();
            assert!(err.contains(word), "{name}: {err:?} lacks {word:?}");
        }
        if let Some(t) = entry.get("triton_reason") {
            assert_eq!(err, t.as_str().unwrap(), "{name}: Triton's wording");
        }
        seen += 1;
    }
    assert_eq!(seen, 5, "onnx models that must not load");
}

#[test]
fn corrupt_files_say_why() {
    let b = backend_or_skip!();
    let mut model = Model::open("tests/models_extra", "onnx_truncated");
    let e = model.load(b).err().unwrap().to_string();
    assert!(e.starts_with("onnx runtime error 7: "), "{e}");
    assert!(
        e.contains("not an ONNX model, or it is truncated or corrupt"),
        "{e}"
    );
    assert!(e.contains("onnx_truncated/1/model.onnx"), "{e}");
}

#[test]
fn missing_model_file() {
    let b = backend_or_skip!();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("1")).unwrap();
    let mut model = Model::open("model_repository", "mlp");
    model.dir = tmp.path().to_path_buf();
    model.version_dir = tmp.path().join("1");
    let e = model.load(b).err().unwrap().to_string();
    assert!(e.starts_with("unable to find '"), "{e}");
    assert!(e.ends_with("1/model.onnx' for model instance 'mlp'"), "{e}");
}

#[test]
fn gpu_instances_need_a_cuda_build() {
    let b = backend_or_skip!();
    if b.cuda_available() {
        eprintln!("this ONNX Runtime has CUDA; the CPU-only refusal is not tested here");
        return;
    }
    let model = Model::open("model_repository", "mlp");
    let e = model
        .instantiate(b, DeviceKind::Gpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("KIND_GPU"), "{e}");
    assert!(e.contains("onnxruntime-gpu"), "{e}");
    // The same model on the CPU loads.
    assert!(model.instantiate(b, DeviceKind::Cpu).is_ok());
}

#[test]
fn session_parameters_are_applied_or_refused() {
    let b = backend_or_skip!();
    let base = std::fs::read_to_string(root().join("model_repository/mlp/config.pbtxt")).unwrap();
    let param = |k: &str, v: &str| {
        format!("parameters {{ key: \"{k}\" value: {{ string_value: \"{v}\" }} }}\n")
    };
    let variants = [
        format!(
            "optimization {{ graph {{ level: 2 }} }}\n{}{}{}",
            param("execution_mode", "1"),
            param("enable_mem_arena", "0"),
            param("enable_mem_pattern", "false")
        ),
        format!(
            "optimization {{ graph {{ level: -1 }} }}\n{}{}",
            param("enable_mem_arena", "1"),
            param("memory.enable_memory_arena_shrinkage", "cpu:0")
        ),
    ];
    let g = goldens::load(&root().join("tests/data/goldens/mlp/batch5.json")).unwrap();
    for extra in &variants {
        let mut model = Model::open("model_repository", "mlp");
        model.config = parse_config(&format!("{base}\n{extra}"));
        let mut inst = model.load(b).unwrap_or_else(|e| panic!("{extra}: {e}"));
        for _ in 0..2 {
            let got = execute(&mut *inst, true, vec![Req::new(g.inputs.clone())]);
            let mut failures = Vec::new();
            check_outputs(extra, &got[0], &g.outputs, g.abs, g.rel, &mut failures);
            assert!(failures.is_empty(), "{}", failures.join("\n"));
        }
    }

    let mut bad = Model::open("model_repository", "mlp");
    bad.config.parameters.insert(
        "execution_mode".into(),
        despina::proto::inference::ModelParameter {
            string_value: "3".into(),
        },
    );
    let e = bad.load(b).err().unwrap().to_string();
    assert!(e.contains("execution_mode are 0 or 1 but got 3"), "{e}");
}

#[test]
fn auto_complete_matches_the_manifest() {
    let b = backend_or_skip!();
    let m = manifest();
    let mut seen = 0;
    for (name, entry) in m["models"].as_object().unwrap() {
        let Some(want) = entry.get("autocomplete") else {
            continue;
        };
        let model = Model::open("tests/models_extra", name);
        assert!(model.config.input.is_empty(), "{name} has no config.pbtxt");
        let mut cfg = model.config.clone();
        b.auto_complete(&model.ctx(), &mut cfg).unwrap();
        assert_eq!(cfg.name, *name);
        assert_eq!(cfg.platform, want["platform"].as_str().unwrap(), "{name}");
        assert_eq!(cfg.backend, "onnxruntime");
        assert_eq!(
            cfg.max_batch_size as i64,
            want["max_batch_size"].as_i64().unwrap(),
            "{name}"
        );
        assert_eq!(
            cfg.dynamic_batching().is_some(),
            want["dynamic_batching"].as_bool().unwrap(),
            "{name}"
        );
        let io = |got: Vec<(String, i32, Vec<i64>)>, want: &Value| {
            let want: Vec<(String, i32, Vec<i64>)> = want
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap().to_string(),
                        ConfigType::from_str_name(t["data_type"].as_str().unwrap()).unwrap() as i32,
                        t["dims"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|d| d.as_i64().unwrap())
                            .collect(),
                    )
                })
                .collect();
            assert_eq!(got, want, "{name}");
        };
        io(
            cfg.input
                .iter()
                .map(|i| (i.name.clone(), i.data_type, i.dims.clone()))
                .collect(),
            &want["input"],
        );
        io(
            cfg.output
                .iter()
                .map(|o| (o.name.clone(), o.data_type, o.dims.clone()))
                .collect(),
            &want["output"],
        );
        // The completed config loads.
        let completed = Model {
            config: cfg,
            ..Model::open("tests/models_extra", name)
        };
        completed
            .instantiate(b, DeviceKind::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        seen += 1;
    }
    assert_eq!(seen, 2);
}

#[test]
fn auto_complete_keeps_a_complete_config() {
    let b = backend_or_skip!();
    let model = Model::open("model_repository", "simple");
    let mut cfg = model.config.clone();
    b.auto_complete(&model.ctx(), &mut cfg).unwrap();
    let mut want = model.config.clone();
    want.backend = "onnxruntime".into();
    want.default_model_filename = "model.onnx".into();
    assert_eq!(cfg, want);
}

// ---- on instance threads -------------------------------------------------------------

#[test]
fn instances_on_their_own_threads_answer_concurrent_batches() {
    use despina::scheduler::instance::{BatchSource, ModelFiles, start};
    use despina::stats::ModelStats;
    use std::sync::{Arc, Mutex, mpsc};

    struct Queue(Mutex<mpsc::Receiver<Vec<InferRequest>>>);
    impl BatchSource for Queue {
        fn next_batch(&self, _index: usize) -> Option<Vec<InferRequest>> {
            self.0.lock().unwrap().recv().ok()
        }
        fn instance_lost(&self, index: usize, reason: &str) {
            panic!("instance {index} lost: {reason}");
        }
    }

    backend_or_skip!();
    // The same process-wide runtime, owned as the server owns it.
    let backend: Arc<dyn Backend> = Arc::new(OnnxBackend::new(None).unwrap());
    let model = Model::open("model_repository", "mlp");
    assert_eq!(model.config.instance_group[0].count, 2);
    let files = ModelFiles {
        name: model.name.clone(),
        version: 1,
        model_dir: model.dir.clone(),
        version_dir: model.version_dir.clone(),
        config: Arc::new(model.config.clone()),
    };
    let specs = (0..2)
        .map(|i| {
            let spec = InstanceSpec {
                name: format!("mlp_{i}"),
                kind: DeviceKind::Cpu,
                device: -1,
            };
            (spec, None)
        })
        .collect();
    let (tx, rx) = mpsc::channel();
    let stats = Arc::new(ModelStats::default());
    let (handles, ready) = start(
        backend,
        &files,
        specs,
        Arc::new(Queue(Mutex::new(rx))),
        stats.clone(),
    );
    ready.unwrap();

    let g = goldens::load(&root().join("tests/data/goldens/mlp/batch64.json")).unwrap();
    let mut pending = Vec::new();
    let mut executions = 0;
    for round in 0..30usize {
        // 64 rows cut into requests of 1..=5 rows, in batches of up to 4 requests.
        let mut batch = Vec::new();
        let mut from = 0;
        while from < 64 {
            let to = (from + 1 + (round + from) % 5).min(64);
            let input = NamedTensor::new("features", rows_of(&g.inputs[0].tensor, from, to));
            let (mut req, stream) = InferRequest::new(String::new(), vec![input]);
            req.batch_size = to - from;
            batch.push(req);
            pending.push((stream, from, to));
            if batch.len() == 4 {
                tx.send(std::mem::take(&mut batch)).unwrap();
                executions += 1;
            }
            from = to;
        }
        if !batch.is_empty() {
            tx.send(batch).unwrap();
            executions += 1;
        }
    }
    let mut failures = Vec::new();
    for (mut stream, from, to) in pending {
        let got = stream.blocking_next().unwrap().response.unwrap();
        let want = vec![NamedTensor::new(
            "logits",
            rows_of(&g.outputs[0].tensor, from, to),
        )];
        let what = format!("rows {from}..{to}");
        check_outputs(&what, &got, &want, g.abs, g.rel, &mut failures);
    }
    drop(tx);
    for h in handles {
        h.join().unwrap();
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(stats.execution_count.load(Relaxed), executions);
    assert_eq!(stats.inference_count.load(Relaxed), 30 * 64);
    assert!(stats.compute_infer.ns() > 0 && stats.compute_input.ns() > 0);
}
