//! Metrics: a stats store keyed by name (shareable between VMs, like Envoy's stats scope shared
//! by all workers), and the per-VM table of metric ids handed to the guest.

use super::Status;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Kind of a metric, as in `proxy_define_metric`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// Only goes up (`proxy_increment_metric` with a positive offset, `proxy_record_metric`
    /// adds).
    Counter,
    /// Goes up and down; `proxy_record_metric` sets it.
    Gauge,
    /// Records values; `proxy_get_metric` is refused.
    Histogram,
}

impl MetricKind {
    fn from_abi(kind: u32) -> Option<Self> {
        match kind {
            0 => Some(MetricKind::Counter),
            1 => Some(MetricKind::Gauge),
            2 => Some(MetricKind::Histogram),
            _ => None,
        }
    }

    fn id_tag(self) -> u32 {
        match self {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        }
    }
}

pub(crate) struct Metric {
    kind: MetricKind,
    value: AtomicU64,
    samples: Mutex<Vec<u64>>,
}

/// A stats store: metrics by name. Defining the same name twice (in one VM or in several VMs
/// sharing the store) gives the same metric, as in Envoy. Clone it into the
/// [`VmOptions`](super::VmOptions) of several VMs to aggregate their metrics like Envoy's
/// workers do; by default each VM has its own.
#[derive(Clone, Default)]
pub struct Stats {
    inner: Arc<Mutex<BTreeMap<String, Arc<Metric>>>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.values()).finish()
    }
}

impl Stats {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Metric>>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Value of the counter or gauge `name`; `None` if it was never defined or is a histogram.
    pub fn value(&self, name: &str) -> Option<u64> {
        let metrics = self.lock();
        let metric = metrics.get(name)?;
        (metric.kind != MetricKind::Histogram).then(|| metric.value.load(Ordering::Relaxed))
    }

    /// All counters and gauges, by name.
    pub fn values(&self) -> BTreeMap<String, u64> {
        self.lock()
            .iter()
            .filter(|(_, m)| m.kind != MetricKind::Histogram)
            .map(|(name, m)| (name.clone(), m.value.load(Ordering::Relaxed)))
            .collect()
    }

    /// The values recorded into histogram `name`, in order.
    pub fn histogram(&self, name: &str) -> Option<Vec<u64>> {
        let metrics = self.lock();
        let metric = metrics.get(name)?;
        (metric.kind == MetricKind::Histogram).then(|| {
            metric
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        })
    }

    /// Kind of metric `name`, if defined.
    pub fn kind(&self, name: &str) -> Option<MetricKind> {
        self.lock().get(name).map(|m| m.kind)
    }

    fn define(&self, kind: MetricKind, name: &str) -> Result<Arc<Metric>, Status> {
        let mut metrics = self.lock();
        if let Some(metric) = metrics.get(name) {
            return if metric.kind == kind {
                Ok(metric.clone())
            } else {
                // Envoy keeps counters and gauges apart; this host keys metrics by name only
                // and refuses the clash rather than guessing.
                Err(Status::BadArgument)
            };
        }
        let metric = Arc::new(Metric {
            kind,
            value: AtomicU64::new(0),
            samples: Mutex::new(Vec::new()),
        });
        metrics.insert(name.to_string(), metric.clone());
        Ok(metric)
    }
}

/// The ids one VM handed out. Like Envoy, each definition gets a new id (the low two bits tell
/// the kind, ids go up by 4 from 4, 5 and 6), and ids of the same name point to the same metric.
pub(crate) struct MetricIds {
    stats: Stats,
    by_id: HashMap<u32, Arc<Metric>>,
    last: [u32; 3],
}

impl MetricIds {
    pub(crate) fn new(stats: Stats) -> Self {
        MetricIds {
            stats,
            by_id: HashMap::new(),
            last: [0, 1, 2],
        }
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }

    pub(crate) fn define(&mut self, kind: u32, name: &str) -> Result<u32, Status> {
        let kind = MetricKind::from_abi(kind).ok_or(Status::BadArgument)?;
        let metric = self.stats.define(kind, name)?;
        let tag = kind.id_tag() as usize;
        self.last[tag] = self.last[tag].wrapping_add(4);
        let id = self.last[tag];
        self.by_id.insert(id, metric);
        Ok(id)
    }

    fn kind_of(id: u32) -> Option<MetricKind> {
        MetricKind::from_abi(id & 3)
    }

    pub(crate) fn increment(&self, id: u32, offset: i64) -> Result<(), Status> {
        match Self::kind_of(id) {
            Some(MetricKind::Counter) => {
                let metric = self.by_id.get(&id).ok_or(Status::NotFound)?;
                if offset <= 0 {
                    return Err(Status::BadArgument);
                }
                metric.value.fetch_add(offset as u64, Ordering::Relaxed);
                Ok(())
            }
            Some(MetricKind::Gauge) => {
                let metric = self.by_id.get(&id).ok_or(Status::NotFound)?;
                metric.value.fetch_add(offset as u64, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(Status::BadArgument),
        }
    }

    pub(crate) fn record(&self, id: u32, value: u64) -> Result<(), Status> {
        let metric = self.by_id.get(&id).ok_or(Status::NotFound)?;
        match metric.kind {
            MetricKind::Counter => {
                metric.value.fetch_add(value, Ordering::Relaxed);
            }
            MetricKind::Gauge => metric.value.store(value, Ordering::Relaxed),
            MetricKind::Histogram => metric
                .samples
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(value),
        }
        Ok(())
    }

    pub(crate) fn get(&self, id: u32) -> Result<u64, Status> {
        match Self::kind_of(id) {
            Some(MetricKind::Counter | MetricKind::Gauge) => self
                .by_id
                .get(&id)
                .map(|m| m.value.load(Ordering::Relaxed))
                .ok_or(Status::NotFound),
            _ => Err(Status::BadArgument),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_values_follow_envoy() {
        let stats = Stats::new();
        let mut ids = MetricIds::new(stats.clone());
        let a = ids.define(0, "requests").unwrap();
        let b = ids.define(0, "requests").unwrap();
        let g = ids.define(1, "gauge").unwrap();
        let h = ids.define(2, "hist").unwrap();
        assert_eq!((a, b, g, h), (4, 8, 5, 6));
        assert_eq!(ids.define(3, "x"), Err(Status::BadArgument));
        assert_eq!(ids.define(1, "requests"), Err(Status::BadArgument));
        ids.increment(a, 1).unwrap();
        ids.increment(b, 2).unwrap();
        assert_eq!(ids.increment(a, 0), Err(Status::BadArgument));
        assert_eq!(ids.increment(a + 4 * 10, 1), Err(Status::NotFound));
        assert_eq!(ids.get(a), Ok(3));
        ids.increment(g, 5).unwrap();
        ids.increment(g, -2).unwrap();
        assert_eq!(ids.get(g), Ok(3));
        ids.record(g, 10).unwrap();
        ids.record(h, 7).unwrap();
        assert_eq!(ids.get(h), Err(Status::BadArgument));
        assert_eq!(ids.increment(h, 1), Err(Status::BadArgument));
        assert_eq!(stats.value("requests"), Some(3));
        assert_eq!(stats.value("gauge"), Some(10));
        assert_eq!(stats.histogram("hist"), Some(vec![7]));
        assert_eq!(stats.value("hist"), None);
    }
}
