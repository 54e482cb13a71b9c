//! The ONNX backend's own overhead: `Instance::execute` on `model_repository/mlp` against
//! plain `ort` `Session::run` on the same model with the same session settings, in the
//! same process, rounds interleaved so both see the same machine state.
//!
//! `cargo bench --bench onnx_overhead` (needs libonnxruntime, see scripts/setup.sh).
//! Timed: backend = `execute` of a batch of ready requests until every answer has been
//! received (input concatenation, session run, output copy and split, responses); raw =
//! making the input tensor over the same data, `run`, and viewing the output.

use std::path::Path;
use std::time::{Duration, Instant};

use despina::backend::onnx::{OnnxBackend, SessionSettings};
use despina::backend::{Backend, DeviceKind, ExecTimer, Instance, InstanceSpec, ModelContext};
use despina::config::ModelConfig;
use despina::proto::inference::ModelParameter;
use despina::request::{InferRequest, NamedTensor};
use despina::stats::ComputeTimes;
use despina::tensor::Tensor;
use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

const FEATURES: usize = 64;
const ROUNDS: usize = 7;

fn features(rows: usize, seed: u32) -> Vec<f32> {
    (0..rows * FEATURES)
        .map(|i| {
            ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) % 1000) as f32 / 500.0 - 1.0
        })
        .collect()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The times `f` reports over `iters` calls, after `iters / 10` warm-up calls.
fn time(iters: usize, mut f: impl FnMut() -> Duration) -> Vec<Duration> {
    for _ in 0..iters / 10 {
        f();
    }
    (0..iters).map(|_| f()).collect()
}

fn mlp_config(intra: &str) -> ModelConfig {
    let param = |v: &str| ModelParameter {
        string_value: v.to_string(),
    };
    ModelConfig {
        name: "mlp".into(),
        max_batch_size: 64,
        parameters: [
            ("intra_op_thread_count".to_string(), param(intra)),
            ("inter_op_thread_count".to_string(), param("1")),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

struct Case {
    label: &'static str,
    /// Rows per request, and requests per batch.
    rows: usize,
    requests: usize,
    iters: usize,
}

/// Times one backend batch: the requests are made before the clock starts (a frontend
/// makes them), the clock stops when every answer has been received.
fn backend_call<'a>(
    inst: &'a mut dyn Instance,
    data: &'a [Tensor],
    rows: usize,
    phases: &'a mut Vec<ComputeTimes>,
) -> impl FnMut() -> Duration + 'a {
    move || {
        let mut streams = Vec::with_capacity(data.len());
        let batch: Vec<InferRequest> = data
            .iter()
            .map(|t| {
                let (mut r, s) =
                    InferRequest::new(String::new(), vec![NamedTensor::new("features", t.clone())]);
                r.batch_size = rows;
                streams.push(s);
                r
            })
            .collect();
        let start = Instant::now();
        let mut timer = ExecTimer::start();
        inst.execute(batch, &mut timer);
        let answers: Vec<_> = streams
            .iter_mut()
            .map(|s| s.blocking_next().expect("an answer"))
            .collect();
        let took = start.elapsed();
        phases.push(timer.finish());
        for item in answers {
            std::hint::black_box(item.response.expect("final").expect("success"));
        }
        took
    }
}

fn raw_call<'a>(
    session: &'a mut Session,
    data: &'a [f32],
    rows: usize,
) -> impl FnMut() -> Duration + 'a {
    move || {
        let start = Instant::now();
        let input = TensorRef::from_array_view(([rows, FEATURES], data)).expect("input");
        let out = session.run(ort::inputs!["features" => input]).expect("run");
        let (shape, logits) = out["logits"].try_extract_tensor::<f32>().expect("logits");
        std::hint::black_box((shape[0], logits[0]));
        start.elapsed()
    }
}

fn raw_session(env: &Environment, path: &Path, intra: usize) -> Session {
    let mut b = Session::builder(env)
        .expect("builder")
        .with_optimization_level(GraphOptimizationLevel::All)
        .expect("level")
        .with_inter_threads(1)
        .expect("inter");
    if intra > 0 {
        b = b.with_intra_threads(intra).expect("intra");
    }
    b.commit_from_file(path).expect("session")
}

fn main() {
    let backend = match OnnxBackend::new(None) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("onnx_overhead: {e}");
            std::process::exit(1);
        }
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("model_repository/mlp");
    let version_dir = dir.join("1");
    let path = version_dir.join("model.onnx");

    // The config as the server would hold it: mlp's thread settings, auto-completed I/O.
    let bare = mlp_config("1");
    let mut cfg = bare.clone();
    backend
        .auto_complete(
            &ModelContext {
                name: "mlp",
                version: 1,
                model_dir: &dir,
                version_dir: &version_dir,
                config: &bare,
            },
            &mut cfg,
        )
        .expect("auto-complete");
    let settings = SessionSettings::from_config("mlp", &cfg).expect("settings");
    println!(
        "ONNX Runtime {}; mlp ({}), intra_op_threads {}, inter_op_threads {:?}, {} rounds",
        backend.library().display(),
        path.display(),
        settings.intra_op_threads,
        settings.inter_op_threads,
        ROUNDS
    );
    let spec = InstanceSpec {
        name: "mlp_0".into(),
        kind: DeviceKind::Cpu,
        device: -1,
    };
    let mut inst = backend
        .instantiate(
            &ModelContext {
                name: "mlp",
                version: 1,
                model_dir: &dir,
                version_dir: &version_dir,
                config: &cfg,
            },
            &spec,
        )
        .expect("instance");
    let mut raw = raw_session(backend.environment(), &path, 1);

    let cases = [
        Case {
            label: "batch 1 (1 request of 1 row)",
            rows: 1,
            requests: 1,
            iters: 20_000,
        },
        Case {
            label: "batch 32 (1 request of 32 rows)",
            rows: 32,
            requests: 1,
            iters: 4_000,
        },
        Case {
            label: "batch 32 (32 requests of 1 row)",
            rows: 1,
            requests: 32,
            iters: 4_000,
        },
    ];
    println!(
        "{:<34} {:>12} {:>12} {:>8}   (median of round medians; p99 of all calls)",
        "case", "backend", "raw ort", "ratio"
    );
    for case in &cases {
        let total = case.rows * case.requests;
        let flat = features(total, 7);
        let tensors: Vec<Tensor> = flat
            .chunks(case.rows * FEATURES)
            .map(|c| Tensor::from_values(vec![case.rows as i64, FEATURES as i64], c))
            .collect();
        let (mut b_meds, mut r_meds, mut b_all, mut r_all) = (vec![], vec![], vec![], vec![]);
        let mut phases = Vec::new();
        for _ in 0..ROUNDS {
            let b = time(
                case.iters / ROUNDS,
                backend_call(&mut *inst, &tensors, case.rows, &mut phases),
            );
            let r = time(case.iters / ROUNDS, raw_call(&mut raw, &flat, total));
            b_meds.push(median(b.clone()));
            r_meds.push(median(r.clone()));
            b_all.extend(b);
            r_all.extend(r);
        }
        let (bm, rm) = (median(b_meds), median(r_meds));
        let p99 = |mut v: Vec<Duration>| {
            v.sort();
            v[v.len() * 99 / 100]
        };
        println!(
            "{:<34} {:>10.2}us {:>10.2}us {:>7.3}x   p99 {:.2}us / {:.2}us",
            case.label,
            bm.as_secs_f64() * 1e6,
            rm.as_secs_f64() * 1e6,
            bm.as_secs_f64() / rm.as_secs_f64(),
            p99(b_all).as_secs_f64() * 1e6,
            p99(r_all).as_secs_f64() * 1e6,
        );
        let phase = |f: fn(&ComputeTimes) -> Duration| {
            median(phases.iter().map(f).collect()).as_secs_f64() * 1e6
        };
        println!(
            "{:<34} compute_input {:.2}us, compute_infer {:.2}us, compute_output {:.2}us",
            "  backend phases (medians)",
            phase(|p| p.input),
            phase(|p| p.infer),
            phase(|p| p.output),
        );
    }

    // What answering costs by itself (no model): one response through the request's
    // channel, received by the caller; part of every backend call above, not of raw ort.
    let logits = Tensor::from_values(vec![1, 16], &[0.25f32; 16]);
    let deliver = || {
        let (mut req, mut stream) = InferRequest::new(String::new(), Vec::new());
        let start = Instant::now();
        req.responder
            .respond(despina::request::InferResponse::new(vec![
                NamedTensor::new("logits", logits.clone()),
            ]));
        let item = stream.blocking_next().expect("an answer");
        let took = start.elapsed();
        std::hint::black_box(item);
        took
    };
    println!(
        "one response, sent and received (no model): {:.2}us",
        median(time(20_000, deliver)).as_secs_f64() * 1e6
    );

    // The intra-op default (1 thread per instance) against ONNX Runtime's (one per core).
    println!("raw ort by intra_op_threads (0 = ONNX Runtime's default, one per core):");
    for rows in [1usize, 32] {
        let flat = features(rows, 3);
        let mut line = format!("  batch {rows:<3}");
        for intra in [1usize, 2, 0] {
            let mut s = raw_session(backend.environment(), &path, intra);
            let mut meds = vec![];
            for _ in 0..ROUNDS {
                meds.push(median(time(2_000 / ROUNDS, raw_call(&mut s, &flat, rows))));
            }
            line.push_str(&format!(
                "  intra {intra}: {:>8.2}us",
                median(meds).as_secs_f64() * 1e6
            ));
        }
        println!("{line}");
    }

    // The same for a heavier model, when it has been generated: all_minilm_l6_v2, one
    // sentence of 128 tokens and a batch of 8.
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("model_repository/all_minilm_l6_v2/1/model.onnx");
    if !minilm.is_file() {
        println!("(all_minilm_l6_v2 not generated; run scripts/gen_models.py to time it too)");
        return;
    }
    println!("all_minilm_l6_v2, raw ort by intra_op_threads:");
    for rows in [1usize, 8] {
        let tokens = 128;
        let ids: Vec<i64> = (0..rows * tokens)
            .map(|i| 1000 + (i as i64 * 7919) % 20000)
            .collect();
        let mask = vec![1i64; rows * tokens];
        let types = vec![0i64; rows * tokens];
        let mut line = format!("  batch {rows:<3}");
        for intra in [1usize, 2, 0] {
            let mut s = raw_session(backend.environment(), &minilm, intra);
            let mut call = || {
                let start = Instant::now();
                let shape = [rows, tokens];
                let out = s
                    .run(ort::inputs![
                        "input_ids" => TensorRef::from_array_view((shape, &ids[..])).expect("ids"),
                        "attention_mask" => TensorRef::from_array_view((shape, &mask[..])).expect("mask"),
                        "token_type_ids" => TensorRef::from_array_view((shape, &types[..])).expect("types"),
                    ])
                    .expect("run");
                std::hint::black_box(&out["embeddings"]);
                start.elapsed()
            };
            let iters = if rows == 1 { 200 } else { 40 };
            line.push_str(&format!(
                "  intra {intra}: {:>8.2}ms",
                median(time(iters, &mut call)).as_secs_f64() * 1e3
            ));
        }
        println!("{line}");
    }
}
