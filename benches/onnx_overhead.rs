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

    let mut cfg = mlp_config("1");
    let ctx = |cfg: &ModelConfig| {
        let mut c = cfg.clone();
        backend
            .auto_complete(
                &ModelContext {
                    name: "mlp",
                    version: 1,
                    model_dir: &dir,
                    version_dir: &version_dir,
                    config: cfg,
                },
                &mut c,
            )
            .expect("auto-complete");
        c
    };
    cfg = ctx(&cfg);
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
        for _ in 0..ROUNDS {
            let b = time(
                case.iters / ROUNDS,
                backend_call(&mut *inst, &tensors, case.rows),
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
    }

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
}
