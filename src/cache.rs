//! The response cache (Triton's `local` cache): one byte-bounded LRU map shared by every
//! model whose config sets `response_cache { enable: true }`.
//!
//! A key is a 128-bit hash of everything that decides the answer: model, version, the
//! version's files, inputs (name, datatype, shape, data), requested outputs and request
//! parameters. Triton hashes to 64 bits and leaves out the requested outputs, so it can
//! answer a request with another one's outputs; a 128-bit key makes a collision as
//! unlikely as a memory error.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use parking_lot::Mutex;
use xxhash_rust::xxh3::Xxh3;

use crate::request::{FinalHook, InferRequest, InferResponse, ParamValue};
use crate::stats::ModelStats;

pub type Key = u128;

/// Bytes an entry costs beyond its tensor data (map slots, names, shapes).
const ENTRY_OVERHEAD: usize = 128;

struct Entry {
    response: InferResponse,
    bytes: usize,
    /// Position in the recency order.
    stamp: u64,
}

#[derive(Default)]
struct Lru {
    entries: HashMap<Key, Entry>,
    /// stamp -> key, oldest first.
    order: BTreeMap<u64, Key>,
    next_stamp: u64,
    used: usize,
}

/// Counters for the `nv_cache_*` gauges.
#[derive(Default)]
pub struct CacheCounters {
    pub lookups: AtomicU64,
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub evictions: AtomicU64,
    pub lookup_ns: AtomicU64,
    pub insert_ns: AtomicU64,
}

pub struct ResponseCache {
    capacity: usize,
    lru: Mutex<Lru>,
    pub counters: CacheCounters,
}

impl std::fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseCache")
            .field("capacity", &self.capacity)
            .finish()
    }
}

fn add_ns(counter: &AtomicU64, d: Duration) {
    counter.fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Relaxed);
}

impl ResponseCache {
    pub fn new(capacity: usize) -> Self {
        ResponseCache {
            capacity,
            lru: Mutex::new(Lru::default()),
            counters: CacheCounters::default(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// (entries, bytes used).
    pub fn usage(&self) -> (usize, usize) {
        let lru = self.lru.lock();
        (lru.entries.len(), lru.used)
    }

    /// The key of `req` for `model` version `version` loaded from files `fingerprint`.
    pub fn key(model: &str, version: i64, fingerprint: u64, req: &InferRequest) -> Key {
        let mut h = Xxh3::new();
        let mut put = |b: &[u8]| {
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        };
        put(model.as_bytes());
        put(&version.to_le_bytes());
        put(&fingerprint.to_le_bytes());
        for t in &req.inputs {
            put(t.name.as_bytes());
            put(t.tensor.datatype.wire_name().as_bytes());
            for d in &t.tensor.shape {
                put(&d.to_le_bytes());
            }
            put(&t.tensor.data);
        }
        put(b"outputs");
        for o in &req.outputs {
            put(o.name.as_bytes());
            put(&o.class_count.to_le_bytes());
        }
        put(b"parameters");
        for (k, v) in &req.parameters.0 {
            put(k.as_bytes());
            match v {
                ParamValue::Bool(b) => put(&[0, *b as u8]),
                ParamValue::Int(i) => put(&[&[1u8][..], &i.to_le_bytes()].concat()),
                ParamValue::Uint(u) => put(&[&[2u8][..], &u.to_le_bytes()].concat()),
                ParamValue::Double(d) => put(&[&[3u8][..], &d.to_bits().to_le_bytes()].concat()),
                ParamValue::String(s) => put(&[&[4u8][..], s.as_bytes()].concat()),
            }
        }
        h.digest128()
    }

    /// The cached answer for `key`, now the most recently used.
    pub fn get(&self, key: Key) -> Option<InferResponse> {
        let start = std::time::Instant::now();
        let found = {
            let mut lru = self.lru.lock();
            let stamp = lru.next_stamp;
            let old = lru.entries.get_mut(&key).map(|e| {
                let old = e.stamp;
                e.stamp = stamp;
                (old, e.response.clone())
            });
            if let Some((old, _)) = &old {
                lru.order.remove(old);
                lru.order.insert(stamp, key);
                lru.next_stamp += 1;
            }
            old.map(|(_, r)| r)
        };
        let c = &self.counters;
        c.lookups.fetch_add(1, Relaxed);
        if found.is_some() {
            c.hits.fetch_add(1, Relaxed);
        } else {
            c.misses.fetch_add(1, Relaxed);
        }
        add_ns(&c.lookup_ns, start.elapsed());
        found
    }

    /// The hook that stores a missed request's successful final answer under `key` and
    /// counts the miss in `stats`, with the `lookup` time already spent.
    pub fn fill_on_final(
        self: &Arc<Self>,
        key: Key,
        stats: Arc<ModelStats>,
        lookup: Duration,
    ) -> FinalHook {
        let cache = self.clone();
        Box::new(move |answer| {
            let start = std::time::Instant::now();
            if let Some(response) = answer {
                cache.insert(key, response);
            }
            stats.cache_miss.add(lookup + start.elapsed());
        })
    }

    /// Stores `response` under `key`, evicting the least recently used entries to make room.
    /// A response larger than the whole cache is not stored.
    pub fn insert(&self, key: Key, response: &InferResponse) {
        let start = std::time::Instant::now();
        let bytes = ENTRY_OVERHEAD
            + response
                .outputs
                .iter()
                .map(|t| t.tensor.data.len() + t.name.len() + 8 * t.tensor.shape.len())
                .sum::<usize>();
        if bytes <= self.capacity {
            let mut lru = self.lru.lock();
            if let Some(old) = lru.entries.remove(&key) {
                lru.order.remove(&old.stamp);
                lru.used -= old.bytes;
            }
            while lru.used + bytes > self.capacity {
                let Some((_, victim)) = lru.order.pop_first() else {
                    break;
                };
                if let Some(e) = lru.entries.remove(&victim) {
                    lru.used -= e.bytes;
                    self.counters.evictions.fetch_add(1, Relaxed);
                }
            }
            let stamp = lru.next_stamp;
            lru.next_stamp += 1;
            lru.order.insert(stamp, key);
            lru.used += bytes;
            let entry = Entry {
                response: response.clone(),
                bytes,
                stamp,
            };
            lru.entries.insert(key, entry);
        }
        add_ns(&self.counters.insert_ns, start.elapsed());
    }
}

/// `--cache-config` and `--response-cache-byte-size`: the local cache's size in bytes, if any.
pub fn parse_cache_config(flags: &[String], byte_size: Option<u64>) -> Result<Option<u64>, String> {
    let mut size = byte_size;
    for flag in flags {
        let (cache, setting) = flag.split_once(',').ok_or_else(|| {
            format!("--cache-config '{flag}': expected <cache>,<setting>=<value>")
        })?;
        if cache != "local" {
            return Err(format!(
                "--cache-config '{flag}': despina has only the 'local' response cache, not '{cache}'"
            ));
        }
        match setting.split_once('=') {
            Some(("size", v)) => {
                size = Some(v.trim().parse::<u64>().map_err(|_| {
                    format!("--cache-config '{flag}': size must be a number of bytes")
                })?);
            }
            _ => {
                return Err(format!(
                    "--cache-config '{flag}': the local cache takes only size=<bytes>"
                ));
            }
        }
    }
    Ok(size.filter(|s| *s > 0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{NamedTensor, RequestedOutput};
    use crate::tensor::Tensor;

    fn request(values: &[i32]) -> InferRequest {
        let t = Tensor::from_values(vec![values.len() as i64], values);
        InferRequest::new("r".into(), vec![NamedTensor::new("IN", t)]).0
    }

    fn response(bytes: usize) -> InferResponse {
        let t = Tensor::from_values(vec![bytes as i64], &vec![1u8; bytes]);
        InferResponse::new(vec![NamedTensor::new("OUT", t)])
    }

    #[test]
    fn keys_cover_what_decides_the_answer() {
        let k = |m: &str, v: i64, f: u64, r: &InferRequest| ResponseCache::key(m, v, f, r);
        let base = request(&[1, 2, 3]);
        let key = k("m", 1, 7, &base);
        assert_eq!(key, k("m", 1, 7, &request(&[1, 2, 3])));
        assert_ne!(key, k("n", 1, 7, &base));
        assert_ne!(key, k("m", 2, 7, &base));
        assert_ne!(key, k("m", 1, 8, &base), "a reloaded model's new files");
        assert_ne!(key, k("m", 1, 7, &request(&[1, 2, 4])));
        let mut wants = request(&[1, 2, 3]);
        wants.outputs.push(RequestedOutput {
            name: "OUT".into(),
            class_count: 0,
        });
        assert_ne!(key, k("m", 1, 7, &wants));
        let mut params = request(&[1, 2, 3]);
        params.parameters.insert("x", ParamValue::Int(1));
        assert_ne!(key, k("m", 1, 7, &params));
        let mut reshaped = request(&[1, 2, 3]);
        reshaped.inputs[0].tensor.shape = vec![1, 3];
        assert_ne!(key, k("m", 1, 7, &reshaped));
    }

    #[test]
    fn evicts_least_recently_used_within_the_byte_budget() {
        let entry = ENTRY_OVERHEAD + 100 + 3 + 8;
        let c = ResponseCache::new(entry * 2);
        c.insert(1, &response(100));
        c.insert(2, &response(100));
        assert_eq!(c.usage(), (2, entry * 2));
        assert!(c.get(1).is_some()); // 2 is now the oldest
        c.insert(3, &response(100));
        assert!(c.get(2).is_none());
        assert_eq!(c.get(1), Some(response(100)));
        assert!(c.get(3).is_some());
        assert_eq!(c.counters.evictions.load(Relaxed), 1);
        // Too large for the whole cache: not stored, nothing evicted.
        c.insert(4, &response(entry * 2));
        assert!(c.get(4).is_none());
        assert_eq!(c.usage().0, 2);
        let n = |a: &AtomicU64| a.load(Relaxed);
        assert_eq!(
            (
                n(&c.counters.lookups),
                n(&c.counters.hits),
                n(&c.counters.misses)
            ),
            (5, 3, 2)
        );
    }

    #[test]
    fn only_successful_final_answers_are_stored() {
        use crate::status::Status;
        let cache = Arc::new(ResponseCache::new(1 << 20));
        let stats = Arc::new(ModelStats::default());
        let fill = |key| cache.fill_on_final(key, stats.clone(), Duration::from_micros(3));
        let (mut ok, _rx_ok) = InferRequest::new("a".into(), vec![]);
        ok.responder.on_final(fill(1));
        ok.responder.respond(response(10));
        let (mut failed, _rx_failed) = InferRequest::new("b".into(), vec![]);
        failed.responder.on_final(fill(2));
        failed.responder.fail(Status::internal("boom"));
        let (dropped, _rx_dropped) = InferRequest::new("c".into(), vec![]);
        let mut dropped = dropped;
        dropped.responder.on_final(fill(3));
        drop(dropped);
        assert_eq!(cache.get(1), Some(response(10)));
        assert!(cache.get(2).is_none() && cache.get(3).is_none());
        // Every miss is counted, with at least the lookup time.
        assert_eq!(stats.cache_miss.count(), 3);
        assert!(stats.cache_miss.ns() >= 9_000);
    }

    #[test]
    fn cache_flags() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(parse_cache_config(&[], None), Ok(None));
        assert_eq!(
            parse_cache_config(&f(&["local,size=1048576"]), None),
            Ok(Some(1048576))
        );
        assert_eq!(parse_cache_config(&[], Some(4096)), Ok(Some(4096)));
        assert_eq!(parse_cache_config(&f(&["local,size=0"]), None), Ok(None));
        for bad in ["redis,host=x", "local,size=1MB", "local,count=3", "local"] {
            assert!(parse_cache_config(&f(&[bad]), None).is_err(), "{bad}");
        }
    }
}
