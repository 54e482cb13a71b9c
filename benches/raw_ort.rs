//! The baseline for the serving benchmark (scripts/bench_onnx.sh): raw ONNX Runtime on
//! `model_repository/mlp` with the settings despina uses for it (intra-op 1, inter-op 1).
//! Prints one JSON object: batch-1 latency percentiles of one session, and the best
//! batched throughput of `--threads` sessions (one per instance, as the config's instance
//! group) running back to back over batch sizes 1..64.
//!
//! `cargo bench --bench raw_ort -- [--threads 2] [--seconds 2]`

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use despina::backend::onnx::OnnxBackend;
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::TensorRef;

const FEATURES: usize = 64;

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
        .expect("mlp session")
}

fn run(s: &mut Session, data: &[f32], rows: usize) {
    let input =
        TensorRef::from_array_view(([rows, FEATURES], &data[..rows * FEATURES])).expect("input");
    let out = s.run(ort::inputs!["features" => input]).expect("run");
    let (_, logits) = out["logits"].try_extract_tensor::<f32>().expect("logits");
    std::hint::black_box(logits[0]);
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
    let backend = OnnxBackend::new(None).expect("libonnxruntime (run scripts/setup.sh)");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("model_repository/mlp/1/model.onnx");
    let data: Vec<f32> = (0..64 * FEATURES)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();

    // Batch-1 latency of one session, as one request at a time sees it.
    let mut s = session(&backend, &path);
    for _ in 0..2000 {
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

    // Best batched throughput: `threads` sessions, each running batch `b` back to back.
    let mut best = (0usize, 0.0f64);
    let mut per_batch = Vec::new();
    for b in [1usize, 8, 16, 32, 64] {
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
        "{{\"model\": \"mlp\", \"threads\": {threads}, \"batch1_p50_us\": {:.2}, \"batch1_p99_us\": {:.2}, \"best_batch\": {}, \"best_infer_per_s\": {:.0}, \"infer_per_s_by_batch\": {{{}}}}}",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        best.0,
        best.1,
        per_batch.join(", ")
    );
}
