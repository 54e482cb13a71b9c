//! A deterministic fuzz run inside `cargo test`: the corpus configs, mutated
//! by a seeded generator, must never make the parser panic, and whatever
//! parses must survive normalise, validate and a JSON round trip.
//! `fuzz/` runs the same checks under libFuzzer for longer.

use std::time::{Duration, Instant};

use super::corpus::{canonical, cases};
use crate::config::*;

/// xorshift64*: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Tokens that steer mutations towards interesting syntax.
const DICT: &[&str] = &[
    "{",
    "}",
    "<",
    ">",
    "[",
    "]",
    ":",
    ",",
    ";",
    "#",
    "\n",
    "\"",
    "'",
    "\\",
    "\\x",
    "\\u",
    "\\U0001F600",
    "\\777",
    "-",
    "0x",
    "0",
    "08",
    "1e",
    ".5",
    "1.5f",
    "inf",
    "-inf",
    "nan",
    "true",
    "t",
    "False",
    "9223372036854775808",
    "18446744073709551616",
    "-2147483649",
    "TYPE_FP32",
    "KIND_GPU",
    "key",
    "value",
    "name",
    "dims",
    "input",
    "max_batch_size",
    "parameters",
    "dynamic_batching",
    "sequence_batching",
    "ensemble_scheduling",
    "oldest",
    "direct",
    "[ext]",
    "\u{e9}",
    "\u{2603}",
    "\t",
    "\r\n",
];

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(8) {
        let at = rng.below(data.len() + 1);
        match rng.below(7) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = rng.next() as u8;
            }
            1 => {
                let tok = DICT[rng.below(DICT.len())].as_bytes();
                data.splice(at..at, tok.iter().copied());
            }
            2 => {
                let end = (at + rng.below(64)).min(data.len());
                data.drain(at..end);
            }
            3 => {
                let end = (at + rng.below(256)).min(data.len());
                let chunk = data[at..end].to_vec();
                data.splice(at..at, chunk);
            }
            4 => data.truncate(at),
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                let end = (from + rng.below(512)).min(other.len());
                data.splice(at..at, other[from..end].iter().copied());
            }
            _ => {
                let n = rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                data.splice(at..at, bytes);
            }
        }
    }
    data
}

/// The properties every input must keep; panics (the test fails) if not.
pub(crate) fn check_input(text: &str) {
    let Ok((mut cfg, sm)) = parse(text) else {
        return;
    };
    round_trip(&cfg, text);
    let mut ctx = NormalizeContext::new("model.identity");
    ctx.version_entries = Some(vec![DirEntry {
        name: "model.py".into(),
        is_dir: false,
    }]);
    if normalize(&mut cfg, &ctx).is_ok() {
        let vctx = ValidateContext {
            model_name: "model.identity",
            gpus: &[0],
            backends: &["python"],
            source_map: Some(&sm),
        };
        for e in validate(&cfg, &vctx) {
            assert!(!e.to_string().is_empty());
        }
        round_trip(&cfg, text);
    }
}

fn round_trip(cfg: &ModelConfig, text: &str) {
    let json = to_json(cfg);
    let back = from_json(&json.to_string())
        .unwrap_or_else(|e| panic!("to_json output refused ({e}) for input {text:?}"));
    assert_eq!(
        canonical(&to_json(&back)),
        canonical(&json),
        "round trip differs for input {text:?}"
    );
}

#[test]
fn mutated_configs_never_panic() {
    let mut seeds: Vec<Vec<u8>> = cases().into_iter().map(|c| c.text.into_bytes()).collect();
    seeds.push(b"m { n { o { p: [ 1, 2 ] } } }".to_vec());
    seeds.push(format!("{}{}", "m { ".repeat(99), "} ".repeat(99)).into_bytes());
    let mut rng = Rng(0x5eed_1234_abcd_ef01);
    let start = Instant::now();
    let budget = Duration::from_secs(60);
    let mut runs = 0;
    let mut parsed = 0;
    while runs < 20_000 && start.elapsed() < budget {
        let data = mutate(&mut rng, &seeds);
        let text = String::from_utf8_lossy(&data);
        if parse(&text).is_ok() {
            parsed += 1;
        }
        check_input(&text);
        runs += 1;
    }
    assert!(runs >= 2_000, "only {runs} inputs in {budget:?}");
    // The mutations must leave some inputs valid, or the later checks never run.
    assert!(
        parsed * 20 > runs,
        "only {parsed} of {runs} mutated inputs parsed"
    );
}

#[test]
fn mutated_json_never_panics() {
    let seeds: Vec<Vec<u8>> = cases()
        .into_iter()
        .filter_map(|c| std::fs::read(c.dir.join("triton.json")).ok())
        .collect();
    assert!(!seeds.is_empty());
    let mut rng = Rng(0x0dd_ba11);
    let start = Instant::now();
    let mut runs = 0;
    while runs < 5_000 && start.elapsed() < Duration::from_secs(30) {
        let data = mutate(&mut rng, &seeds);
        if let Ok(cfg) = from_json(&String::from_utf8_lossy(&data)) {
            round_trip(&cfg, "(json)");
        }
        runs += 1;
    }
    assert!(runs >= 500);
}
