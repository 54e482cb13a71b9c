//! The baseline for the serving benchmark (scripts/bench_onnx.sh): raw ONNX Runtime on a
//! model of `model_repository/` (`mlp` by default) with the settings despina uses for it
//! (intra-op 1, inter-op 1). Prints one JSON object: batch-1 latency percentiles of one
//! session, and the best batched throughput of `--threads` sessions (one per instance, as the
//! config's instance group) running back to back over batch sizes 1..`--max-batch`. Dynamic
//! dims after the batch dim get `--seq` (tokens, for a text model).
//!
//! `cargo bench --bench raw_ort -- [--model mlp] [--threads 2] [--seconds 2] [--max-batch 64] [--seq 32] [--gap-us 0]`

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use despina::backend::onnx::OnnxBackend;
use ort::session::Session;
use ort::session::SessionInputValue;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{TensorElementType, TensorRef, ValueType};

/// One input of the model, filled for `rows` rows: FP32 with a fixed pattern, INT64 with zeros
/// (as despina-perf's `--input-data zero`, valid token ids for a text model).
enum Feed {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

struct Input {
    name: String,
    /// The dims after the batch dim, dynamic ones given `--seq`.
    dims: Vec<usize>,
    /// Elements per row.
    row: usize,
    data: Feed,
}

fn inputs(s: &Session, seq: usize, max_rows: usize) -> Vec<Input> {
    s.inputs()
        .iter()
        .map(|o| {
            let ValueType::Tensor { ty, shape, .. } = o.dtype() else {
                panic!("input {} is not a tensor", o.name())
            };
            let dims: Vec<usize> = shape[1..]
                .iter()
                .map(|&d| if d < 0 { seq } else { d as usize })
                .collect();
            let row = dims.iter().product();
            let n = row * max_rows;
            let data = match ty {
                TensorElementType::Float32 => Feed::F32(
                    (0..n)
                        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
                        .collect(),
                ),
                TensorElementType::Int64 => Feed::I64(vec![0; n]),
                other => panic!("input {}: {other:?} is not supported here", o.name()),
            };
            Input {
                name: o.name().to_string(),
                dims,
                row,
                data,
            }
        })
        .collect()
}

fn session(backend: &OnnxBackend, path: &Path) -> Session {
    Session::builder(backend.environment())
        .expect("builder")
        .with_optimization_level(GraphOptimizationLevel::All)
        .expect("level")
        .with_inter_threads(1)
        .expect("inter")
        .with_intra_threads(1)
        .expect("intra")
        .commit_from_file(path)
        .expect("session")
}

fn run(s: &mut Session, inputs: &[Input], rows: usize) {
    let feeds: Vec<(Cow<str>, SessionInputValue)> = inputs
        .iter()
        .map(|i| {
            let dims: Vec<usize> = std::iter::once(rows)
                .chain(i.dims.iter().copied())
                .collect();
            let v: SessionInputValue = match &i.data {
                Feed::F32(d) => TensorRef::from_array_view((dims, &d[..rows * i.row]))
                    .expect("input")
                    .into(),
                Feed::I64(d) => TensorRef::from_array_view((dims, &d[..rows * i.row]))
                    .expect("input")
                    .into(),
            };
            (Cow::Borrowed(i.name.as_str()), v)
        })
        .collect();
    let out = s.run(feeds).expect("run");
    std::hint::black_box(&out[0]);
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e6
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let threads = arg("--threads", 2.0) as usize;
    let seconds = arg("--seconds", 2.0);
    let seq = arg("--seq", 32.0) as usize;
    let max_batch = arg("--max-batch", 64.0) as usize;
    let model = args
        .iter()
        .position(|a| a == "--model")
        .and_then(|i| args.get(i + 1))
        .map_or("mlp", String::as_str);
    let backend = OnnxBackend::new(None).expect("libonnxruntime (run scripts/setup.sh)");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("model_repository")
        .join(model)
        .join("1/model.onnx");

    // Batch-1 latency of one session, as one request at a time sees it.
    let mut s = session(&backend, &path);
    let data = Arc::new(inputs(&s, seq, max_batch));
    let warmup = Instant::now();
    while warmup.elapsed() < Duration::from_millis(300) {
        run(&mut s, &data, 1);
    }
    let mut lat = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < deadline && lat.len() < 200_000 {
        let t = Instant::now();
        run(&mut s, &data, 1);
        lat.push(t.elapsed());
    }
    lat.sort();

    // The same with the thread asleep between runs for as long as one served request takes
    // elsewhere (`--gap-us`, 0: skipped): what a run costs when it starts cold, as an
    // instance thread woken for each request at concurrency 1 does.
    let gap = Duration::from_micros(arg("--gap-us", 0.0) as u64);
    let mut cold = Vec::new();
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    while !gap.is_zero() && Instant::now() < deadline && cold.len() < 200_000 {
        std::thread::sleep(gap);
        let t = Instant::now();
        run(&mut s, &data, 1);
        cold.push(t.elapsed());
    }
    cold.sort();
    let cold_p50 = if cold.is_empty() {
        "null".to_string()
    } else {
        format!("{:.2}", percentile(&cold, 0.5))
    };

    // Best batched throughput: `threads` sessions, each running batch `b` back to back.
    let mut best = (0usize, 0.0f64);
    let mut per_batch = Vec::new();
    let sizes = [1usize, 8, 16, 32, 64, 128, 256];
    for b in sizes.into_iter().filter(|&b| b <= max_batch) {
        let rows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                let (rows, stop, data) = (rows.clone(), stop.clone(), data.clone());
                let mut s = session(&backend, &path);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        run(&mut s, &data, b);
                        rows.fetch_add(b as u64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (r0, t0) = (rows.load(Ordering::Relaxed), Instant::now());
        std::thread::sleep(Duration::from_secs_f64(seconds));
        let rate = (rows.load(Ordering::Relaxed) - r0) as f64 / t0.elapsed().as_secs_f64();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            let _ = w.join();
        }
        per_batch.push(format!("\"{b}\": {rate:.0}"));
        if rate > best.1 {
            best = (b, rate);
        }
    }
    println!(
        "{{\"model\": \"{model}\", \"threads\": {threads}, \"batch1_p50_us\": {:.2}, \"batch1_p99_us\": {:.2}, \"batch1_after_gap_p50_us\": {cold_p50}, \"gap_us\": {}, \"best_batch\": {}, \"best_infer_per_s\": {:.0}, \"infer_per_s_by_batch\": {{{}}}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        gap.as_micros(),
        best.0,
        best.1,
        per_batch.join(", ")
    );
}
