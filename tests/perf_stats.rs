//! despina-perf statistics: percentiles, windows, ranges, rate schedules and the
//! server-side split.

use std::time::{Duration, Instant};

use despina::perf::range::{
    ConcurrencyRange, MAX_OPEN_LEVELS, RateRange, parse_concurrency_range, parse_rate_range,
};
use despina::perf::schedule::{Distribution, Rng, Schedule};
use despina::perf::server_stats::{Duration as StatDuration, ServerSplit, StatsSnapshot};
use despina::perf::stats::{LatencySummary, Record, median, percentile, window};
use serde_json::json;

#[track_caller]
fn check_percentile(values: &[u64], p: f64, want: Option<u64>) {
    let mut v = values.to_vec();
    v.sort_unstable();
    assert_eq!(percentile(&v, p), want, "p{p} of {values:?}");
}

#[test]
fn percentiles_follow_perf_analyzer_rounding() {
    // index = round(p/100 * (n-1))
    check_percentile(&[], 50.0, None);
    check_percentile(&[7], 99.0, Some(7));
    check_percentile(&[1, 2], 50.0, Some(2)); // 0.5 rounds up
    check_percentile(&[1, 2, 3], 50.0, Some(2));
    check_percentile(&[4, 3, 2, 1], 50.0, Some(3)); // 1.5 -> 2
    let hundred: Vec<u64> = (1..=100).collect();
    check_percentile(&hundred, 50.0, Some(51)); // 49.5 -> 50
    check_percentile(&hundred, 90.0, Some(90)); // 89.1 -> 89
    check_percentile(&hundred, 95.0, Some(95)); // 94.05 -> 94
    check_percentile(&hundred, 99.0, Some(99)); // 98.01 -> 98
    check_percentile(&hundred, 100.0, Some(100));
    check_percentile(&hundred, 0.0, Some(1));
}

#[track_caller]
fn check_median(values: &[f64], want: Option<f64>) {
    assert_eq!(median(values), want, "median of {values:?}");
}

#[test]
fn median_of_odd_even_and_empty() {
    check_median(&[], None);
    check_median(&[3.0], Some(3.0));
    check_median(&[5.0, 1.0, 3.0], Some(3.0));
    check_median(&[4.0, 1.0, 3.0, 2.0], Some(2.5));
    check_median(&[f64::NAN, 2.0], Some(2.0));
}

#[test]
fn latency_summary_in_microseconds() {
    let ns: Vec<u64> = (1..=10).map(|i| i * 1000).collect();
    let s = LatencySummary::from_ns(&ns);
    assert_eq!(s.count, 10);
    assert_eq!(s.avg_us, 5.5);
    assert_eq!(s.min_us, 1.0);
    assert_eq!(s.max_us, 10.0);
    assert_eq!(s.p50_us, 6.0); // index round(4.5) = 5
    assert_eq!(s.p90_us, 9.0); // round(8.1) = 8
    assert_eq!(s.p99_us, 10.0); // round(8.91) = 9
    assert!((s.std_us - 2.8722813).abs() < 1e-6, "{}", s.std_us);
    assert_eq!(LatencySummary::from_ns(&[]), LatencySummary::default());
}

#[test]
fn window_keeps_requests_that_start_and_end_inside() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let rec = |s: u64, e: u64, ok: bool| Record {
        start: at(s),
        end: at(e),
        ok,
    };
    let records = [
        rec(0, 15, true),   // starts before the window
        rec(10, 12, true),  // inside
        rec(12, 20, true),  // inside, ends on the edge
        rec(14, 16, false), // inside, failed
        rec(18, 25, true),  // ends after
    ];
    let w = window(&records, at(10), at(20));
    assert_eq!(w.ok, 2);
    assert_eq!(w.failed, 1);
    assert_eq!(w.latency.count, 2);
    assert_eq!(w.latency.avg_us, 5000.0);
    assert_eq!(w.latency.min_us, 2000.0);
    assert_eq!(w.latency.max_us, 8000.0);
}

#[track_caller]
fn check_conc(text: &str, want: Result<(u64, u64, u64), &str>) {
    match (parse_concurrency_range(text), want) {
        (Ok(r), Ok((start, end, step))) => {
            assert_eq!(r, ConcurrencyRange { start, end, step }, "{text}")
        }
        (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{text}: {e}"),
        (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn concurrency_ranges() {
    check_conc("4", Ok((4, 4, 1)));
    check_conc("1:8", Ok((1, 8, 1)));
    check_conc("1:8:2", Ok((1, 8, 2)));
    check_conc(" 2 : 6 : 2 ", Ok((2, 6, 2)));
    check_conc("1:0:4", Ok((1, 0, 4)));
    check_conc("0:4", Err("start must be at least 1"));
    check_conc("1:4:0", Err("step must be at least 1"));
    check_conc("8:4", Err("end is below start"));
    check_conc("1:2:3:4", Err("expected start[:end[:step]]"));
    check_conc("1::2", Err("expected start[:end[:step]]"));
    check_conc("a:4", Err("'a' is not a non-negative integer"));
    check_conc("-1", Err("'-1' is not a non-negative integer"));
}

#[test]
fn concurrency_levels_add_the_step_and_include_the_end() {
    let levels = |t: &str| parse_concurrency_range(t).unwrap().levels();
    assert_eq!(levels("1:8:2"), vec![1, 3, 5, 7]);
    assert_eq!(levels("1:7:2"), vec![1, 3, 5, 7]);
    assert_eq!(levels("1:32:8"), vec![1, 9, 17, 25]);
    assert_eq!(levels("4"), vec![4]);
    let open = levels("1:0:4");
    assert_eq!(open.len(), MAX_OPEN_LEVELS);
    assert_eq!(&open[..3], &[1, 5, 9]);
    assert!(parse_concurrency_range("1:0").unwrap().is_open());
}

#[test]
fn rate_ranges_and_levels() {
    assert_eq!(
        parse_rate_range("100").unwrap(),
        RateRange {
            start: 100.0,
            end: 100.0,
            step: 1.0
        }
    );
    assert_eq!(
        parse_rate_range("0.5:2:0.5").unwrap().levels(),
        vec![0.5, 1.0, 1.5, 2.0]
    );
    // 0.1 steps do not accumulate rounding error and keep the end.
    let l = parse_rate_range("0.1:1.0:0.1").unwrap().levels();
    assert_eq!(l.len(), 10);
    assert!((l[9] - 1.0).abs() < 1e-12);
    assert_eq!(
        parse_rate_range("10:0:5").unwrap().levels().len(),
        MAX_OPEN_LEVELS
    );
    for (text, msg) in [
        ("0", "start must be above 0"),
        ("1:2:0", "step must be above 0"),
        ("5:1", "end is below start"),
        ("x", "'x' is not a non-negative number"),
        ("inf", "'inf' is not a non-negative number"),
    ] {
        let e = parse_rate_range(text).unwrap_err().to_string();
        assert!(e.contains(msg), "{text}: {e}");
    }
}

#[test]
fn constant_schedule_is_evenly_spaced() {
    let offsets: Vec<Duration> = Schedule::new(Distribution::Constant, 4.0, 1)
        .take(5)
        .collect();
    let ms: Vec<u128> = offsets.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, vec![0, 250, 500, 750, 1000]);
    // The millionth request of a 3/s schedule is still exact.
    let last = Schedule::new(Distribution::Constant, 3.0, 1)
        .nth(999_999)
        .unwrap();
    assert!((last.as_secs_f64() - 999_999.0 / 3.0).abs() < 1e-6);
}

#[test]
fn poisson_schedule_has_the_right_mean_and_spread() {
    let rate = 200.0;
    let n = 50_000;
    let offsets: Vec<f64> = Schedule::new(Distribution::Poisson, rate, 7)
        .take(n + 1)
        .map(|d| d.as_secs_f64())
        .collect();
    assert_eq!(offsets[0], 0.0);
    let gaps: Vec<f64> = offsets.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(gaps.iter().all(|g| *g >= 0.0));
    let mean = gaps.iter().sum::<f64>() / n as f64;
    let var = gaps.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / n as f64;
    // Exponential gaps: mean = std = 1/rate (5 ms). 50k samples put both within 2%.
    assert!((mean * rate - 1.0).abs() < 0.02, "mean gap {mean}");
    assert!(
        (var.sqrt() * rate - 1.0).abs() < 0.02,
        "std of gaps {}",
        var.sqrt()
    );
    // Same seed, same schedule; another seed, another one.
    let again: Vec<Duration> = Schedule::new(Distribution::Poisson, rate, 7)
        .take(10)
        .collect();
    let other: Vec<Duration> = Schedule::new(Distribution::Poisson, rate, 8)
        .take(10)
        .collect();
    assert_eq!(
        again,
        Schedule::new(Distribution::Poisson, rate, 7)
            .take(10)
            .collect::<Vec<_>>()
    );
    assert_ne!(again, other);
}

#[test]
fn rng_is_uniform_enough() {
    let mut r = Rng::new(42);
    let mut buckets = [0u32; 10];
    for _ in 0..100_000 {
        let x = r.next_f64();
        assert!((0.0..1.0).contains(&x));
        buckets[(x * 10.0) as usize] += 1;
    }
    assert!(
        buckets.iter().all(|b| (9_500..10_500).contains(b)),
        "{buckets:?}"
    );
    assert!((0..1000).all(|_| r.below(3) < 3));
}

fn snap(inf: u64, exec: u64, queue: (u64, u64), infer: (u64, u64)) -> StatsSnapshot {
    let d = |(count, ns): (u64, u64)| StatDuration { count, ns };
    StatsSnapshot {
        inference_count: inf,
        execution_count: exec,
        success: d((inf, inf * 1000)),
        queue: d(queue),
        compute_input: d((inf, inf * 10)),
        compute_infer: d(infer),
        compute_output: d((inf, 0)),
        ..Default::default()
    }
}

#[test]
fn server_split_averages_per_request_and_batch_size() {
    let snaps = [
        snap(100, 50, (100, 1_000_000), (100, 5_000_000)),
        // +40 inferences in 10 executions, queue 10 us each, infer 50 us each
        snap(140, 60, (140, 1_400_000), (140, 7_000_000)),
        // +60 inferences in 10 executions, queue 30 us each
        snap(200, 70, (200, 3_200_000), (200, 10_000_000)),
        // nothing queued in this interval: no median sample
        snap(200, 70, (200, 3_200_000), (200, 10_000_000)),
    ];
    let s = ServerSplit::from_snapshots(&snaps).unwrap();
    assert_eq!(s.inference_count, 100);
    assert_eq!(s.execution_count, 20);
    assert_eq!(s.avg_batch_size, 5.0);
    assert_eq!(s.success_count, 100);
    assert_eq!(s.queue_us, 22.0); // 2.2 ms over 100 requests
    assert_eq!(s.compute_infer_us, 50.0);
    assert_eq!(s.compute_input_us, 0.01);
    assert_eq!(s.compute_output_us, 0.0);
    assert_eq!(s.request_us, 1.0);
    assert_eq!(s.queue_intervals, 2);
    assert_eq!(s.queue_us_median_of_intervals, Some(20.0)); // median of 10 and 30
    assert_eq!(ServerSplit::from_snapshots(&snaps[..1]), None);
}

#[test]
fn server_split_of_an_idle_window_is_zero() {
    let a = snap(10, 5, (10, 100), (10, 100));
    let s = ServerSplit::from_snapshots(&[a, a]).unwrap();
    assert_eq!(
        (
            s.inference_count,
            s.execution_count,
            s.avg_batch_size,
            s.queue_us
        ),
        (0, 0, 0.0, 0.0)
    );
    assert_eq!(s.queue_us_median_of_intervals, None);
}

#[test]
fn stats_json_sums_versions_and_reads_string_counters() {
    let v = json!({"model_stats": [
        {"name": "m", "version": "1", "inference_count": 10, "execution_count": 4,
         "inference_stats": {"success": {"count": 10, "ns": 500}, "fail": {"count": 1, "ns": 7},
                             "queue": {"count": 10, "ns": 100}, "compute_input": {"count": 10, "ns": 20},
                             "compute_infer": {"count": 10, "ns": 300}, "compute_output": {"count": 10, "ns": 40}}},
        {"name": "m", "version": "2", "inference_count": "5", "execution_count": "5",
         "inference_stats": {"success": {"count": "5", "ns": "50"}, "queue": {"count": 5, "ns": 10}}},
        {"name": "other", "version": "1", "inference_count": 99, "execution_count": 99}
    ]});
    let all = StatsSnapshot::from_json(&v, "m", "").unwrap();
    assert_eq!((all.inference_count, all.execution_count), (15, 9));
    assert_eq!(all.success, StatDuration { count: 15, ns: 550 });
    assert_eq!(all.fail, StatDuration { count: 1, ns: 7 });
    assert_eq!(all.queue, StatDuration { count: 15, ns: 110 });
    assert_eq!(all.compute_infer, StatDuration { count: 10, ns: 300 });
    let v2 = StatsSnapshot::from_json(&v, "m", "2").unwrap();
    assert_eq!((v2.inference_count, v2.queue.ns), (5, 10));
    let e = StatsSnapshot::from_json(&v, "nope", "").unwrap_err();
    assert!(e.contains("no entry for model 'nope'"), "{e}");
    assert!(
        StatsSnapshot::from_json(&json!({}), "m", "")
            .unwrap_err()
            .contains("model_stats")
    );
}
