//! Triton's rate limiter (`--rate-limit=execution_count`): an instance executes a batch only
//! while it holds the resources its `instance_group { rate_limiter { ... } }` names, so models
//! sharing a device share it by those counts. Resources are per device unless `global`.
//! Each resource's capacity is `--rate-limit-resource` where given, else the most any one
//! instance needs. Among instances whose resources are free, the one that has executed
//! least (weighted by its `priority`: 2 runs half as often as 1) goes first.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::proto::inference::ModelRateLimiter;

/// A resource: its name and device (`None` for a global one).
type Key = (String, Option<i32>);

/// What one instance needs to execute.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Needs {
    items: Vec<(Key, u32)>,
    /// Weight of each execution in the fair share (Triton's priority; 0 counts as 1).
    weight: u64,
}

impl Needs {
    /// The needs of an instance on `device` (-1 for CPU) from its group's rate limiter.
    pub fn from_config(limiter: &ModelRateLimiter, device: i32) -> Needs {
        Needs {
            items: limiter
                .resources
                .iter()
                .filter(|r| r.count > 0)
                .map(|r| {
                    let dev = (!r.global).then_some(device);
                    ((r.name.clone(), dev), r.count)
                })
                .collect(),
            weight: u64::from(limiter.priority.max(1)),
        }
    }
}

#[derive(Default)]
struct Pool {
    /// Capacity given with --rate-limit-resource (by name, and device if given).
    explicit: HashMap<(String, Option<i32>), u32>,
    capacity: HashMap<Key, u32>,
    in_use: HashMap<Key, u32>,
    /// Waiting instances: ticket -> (virtual time, needs).
    waiting: HashMap<u64, (u64, Needs)>,
    next_ticket: u64,
    /// Virtual time of the last grant; a newcomer starts here so it cannot starve others.
    clock: u64,
}

impl Pool {
    fn capacity_of(&self, key: &Key) -> u32 {
        self.capacity.get(key).copied().unwrap_or(0)
    }

    fn fits(&self, needs: &Needs) -> bool {
        needs
            .items
            .iter()
            .all(|(k, n)| self.in_use.get(k).copied().unwrap_or(0) + n <= self.capacity_of(k))
    }
}

pub struct RateLimiter {
    pool: Mutex<Pool>,
    freed: Condvar,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("capacity", &self.pool.lock().capacity)
            .finish()
    }
}

/// Resources held for one execution; dropping it gives them back.
pub struct Permit<'a> {
    limiter: &'a RateLimiter,
    needs: &'a Needs,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut pool = self.limiter.pool.lock();
        for (k, n) in &self.needs.items {
            if let Some(used) = pool.in_use.get_mut(k) {
                *used = used.saturating_sub(*n);
            }
        }
        drop(pool);
        self.limiter.freed.notify_all();
    }
}

/// An instance's tie to the rate limiter.
#[derive(Clone)]
pub struct Limit {
    pub limiter: Arc<RateLimiter>,
    pub needs: Needs,
}

/// An instance's place in the fair share: its virtual time.
#[derive(Debug, Default)]
pub struct Share {
    vtime: u64,
}

impl RateLimiter {
    /// `resources`: `--rate-limit-resource <name>:<count>[:<device>]` values.
    pub fn new(resources: &[String]) -> Result<Arc<RateLimiter>, String> {
        let mut pool = Pool::default();
        for r in resources {
            let parts: Vec<&str> = r.split(':').collect();
            let bad = || format!("--rate-limit-resource '{r}': expected <name>:<count>[:<device>]");
            let (name, count, device) = match parts.as_slice() {
                [name, count] => (name, count, None),
                [name, count, device] => {
                    (name, count, Some(device.parse::<i32>().map_err(|_| bad())?))
                }
                _ => return Err(bad()),
            };
            if name.is_empty() {
                return Err(bad());
            }
            let count = count.parse::<u32>().map_err(|_| bad())?;
            pool.explicit.insert((name.to_string(), device), count);
        }
        Ok(Arc::new(RateLimiter {
            pool: Mutex::new(pool),
            freed: Condvar::new(),
        }))
    }

    /// Makes room for an instance's needs: without an explicit count, a resource's capacity
    /// grows to the largest single need. Refuses needs an explicit count can never meet.
    pub fn register(&self, needs: &Needs) -> Result<(), String> {
        let mut pool = self.pool.lock();
        for ((name, device), n) in &needs.items {
            let explicit = pool
                .explicit
                .get(&(name.clone(), *device))
                .or_else(|| pool.explicit.get(&(name.clone(), None)))
                .copied();
            let key = (name.clone(), *device);
            match explicit {
                Some(limit) if limit < *n => {
                    return Err(format!(
                        "resource count for '{name}' is limited to {limit} (--rate-limit-resource), which can never schedule an instance that needs {n}"
                    ));
                }
                Some(limit) => {
                    pool.capacity.insert(key, limit);
                }
                None => {
                    let c = pool.capacity.entry(key).or_insert(0);
                    *c = (*c).max(*n);
                }
            }
        }
        Ok(())
    }

    /// Waits until `needs` fit and no waiting instance that also fits is behind in its
    /// share, then holds them until the permit drops.
    pub fn acquire<'a>(&'a self, needs: &'a Needs, share: &mut Share) -> Permit<'a> {
        let mut pool = self.pool.lock();
        share.vtime = share.vtime.max(pool.clock);
        let ticket = pool.next_ticket;
        pool.next_ticket += 1;
        pool.waiting.insert(ticket, (share.vtime, needs.clone()));
        loop {
            let first = pool.fits(needs)
                && !pool.waiting.iter().any(|(t, (v, n))| {
                    *t != ticket && (*v, *t) < (share.vtime, ticket) && pool.fits(n)
                });
            if first {
                break;
            }
            self.freed.wait(&mut pool);
        }
        pool.waiting.remove(&ticket);
        for (k, n) in &needs.items {
            *pool.in_use.entry(k.clone()).or_insert(0) += n;
        }
        pool.clock = pool.clock.max(share.vtime);
        share.vtime += needs.weight;
        drop(pool);
        // Others may fit in what is left.
        self.freed.notify_all();
        Permit {
            limiter: self,
            needs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::inference::model_rate_limiter::Resource;
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
    use std::time::{Duration, Instant};

    fn needs(name: &str, count: u32, global: bool, priority: u32) -> Needs {
        Needs::from_config(
            &ModelRateLimiter {
                resources: vec![Resource {
                    name: name.into(),
                    global,
                    count,
                }],
                priority,
            },
            0,
        )
    }

    #[test]
    fn capacity_is_the_largest_need_unless_given() {
        let l = RateLimiter::new(&[]).unwrap();
        l.register(&needs("R", 2, false, 1)).unwrap();
        l.register(&needs("R", 3, false, 1)).unwrap();
        assert_eq!(l.pool.lock().capacity_of(&("R".into(), Some(0))), 3);
        let l = RateLimiter::new(&["R:1".into()]).unwrap();
        let e = l.register(&needs("R", 2, false, 1)).unwrap_err();
        assert!(e.contains("limited to 1"), "{e}");
        let l = RateLimiter::new(&["R:4:0".into()]).unwrap();
        l.register(&needs("R", 2, false, 1)).unwrap();
        assert_eq!(l.pool.lock().capacity_of(&("R".into(), Some(0))), 4);
        for bad in ["R", "R:x", ":1", "R:1:gpu"] {
            assert!(RateLimiter::new(&[bad.into()]).is_err(), "{bad}");
        }
    }

    /// Threads of two priorities compete for one unit of a resource for a while.
    fn contend(weights: [u32; 2], capacity: u32) -> ([u32; 2], u32) {
        let l = RateLimiter::new(&[format!("R:{capacity}")]).unwrap();
        let runs = [AtomicU32::new(0), AtomicU32::new(0)];
        let (now, peak) = (AtomicU32::new(0), AtomicU32::new(0));
        let until = Instant::now() + Duration::from_millis(300);
        std::thread::scope(|s| {
            for (i, &w) in weights.iter().enumerate() {
                for _ in 0..2 {
                    let (l, runs, now, peak) = (&l, &runs, &now, &peak);
                    s.spawn(move || {
                        let n = needs("R", 1, true, w);
                        l.register(&n).unwrap();
                        let mut share = Share::default();
                        while Instant::now() < until {
                            let _p = l.acquire(&n, &mut share);
                            let held = now.fetch_add(1, SeqCst) + 1;
                            peak.fetch_max(held, SeqCst);
                            std::thread::sleep(Duration::from_millis(1));
                            now.fetch_sub(1, SeqCst);
                            runs[i].fetch_add(1, SeqCst);
                        }
                    });
                }
            }
        });
        (
            [runs[0].load(SeqCst), runs[1].load(SeqCst)],
            peak.load(SeqCst),
        )
    }

    #[test]
    fn holders_never_exceed_the_capacity() {
        assert_eq!(contend([1, 1], 1).1, 1);
        assert!(contend([1, 1], 2).1 <= 2);
    }

    #[test]
    fn priority_two_runs_half_as_often() {
        let ([one, two], _) = contend([1, 2], 1);
        let ratio = one as f64 / two as f64;
        assert!((1.6..2.5).contains(&ratio), "{one} vs {two}");
    }
}
