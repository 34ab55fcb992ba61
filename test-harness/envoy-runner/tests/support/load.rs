//! Steady traffic through Envoy while a test changes the rules: a few
//! threads, each with its own keep-alive client, record when each answer
//! came and which backend version gave it (or why it failed).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use envoy_runner::{HttpClient, Request};

/// One answer.
#[derive(Clone, Debug)]
pub struct Sample {
    /// When the answer arrived.
    pub at: Instant,
    /// The backend's `x-version` for a 200 that says `backend <version>`;
    /// otherwise what went wrong.
    pub outcome: Result<String, String>,
}

/// Traffic running in the background; [`Load::stop`] ends it.
pub struct Load {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<Sample>>>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// `threads` clients sending `request` to `addr` back to back, with a
    /// pause of `pause` between requests (so that the machine stays usable).
    pub fn start(addr: SocketAddr, threads: usize, request: &Request, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(Vec::new()));
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                let samples = samples.clone();
                let request = request.clone();
                std::thread::spawn(move || {
                    let mut client = HttpClient::new(addr);
                    while !stop.load(Ordering::SeqCst) {
                        let outcome = match client.send(&request) {
                            Ok(r) => match r.header("x-version") {
                                Some(v)
                                    if r.status == 200 && r.text() == format!("backend {v}\n") =>
                                {
                                    Ok(v)
                                }
                                _ => Err(format!("status {} body {:?}", r.status, r.text())),
                            },
                            Err(e) => Err(e.to_string()),
                        };
                        samples
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .push(Sample {
                                at: Instant::now(),
                                outcome,
                            });
                        std::thread::sleep(pause);
                    }
                })
            })
            .collect();
        Load {
            stop,
            samples,
            threads,
        }
    }

    /// The answers so far that arrived after `since`, in time order.
    pub fn since(&self, since: Instant) -> Vec<Sample> {
        let mut s: Vec<Sample> = self
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|s| s.at >= since)
            .cloned()
            .collect();
        s.sort_by_key(|s| s.at);
        s
    }

    /// Every answer so far.
    pub fn all(&self) -> Vec<Sample> {
        self.since(Instant::now() - Duration::from_secs(3600))
    }

    /// Stops the clients and returns every answer, in time order.
    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.all()
    }

    /// Waits until every answer of at least `window` after some time ≥
    /// `since` is `version`, up to `timeout`; returns when that run of
    /// answers began (the first of them), or None.
    pub fn wait_all(
        &self,
        since: Instant,
        version: &str,
        window: Duration,
        timeout: Duration,
    ) -> Option<Instant> {
        let deadline = since + timeout;
        loop {
            let samples = self.since(since);
            // The start of the last run of `version` answers, if it is long enough.
            let start = samples
                .iter()
                .rposition(|s| s.outcome.as_deref() != Ok(version))
                .map_or(samples.first(), |i| samples.get(i + 1))
                .map(|s| s.at);
            if let (Some(start), Some(last)) = (start, samples.last()) {
                if last.at.duration_since(start) >= window {
                    return Some(start);
                }
            }
            if Instant::now() > deadline + window {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The failed answers among `samples`.
pub fn failures(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.outcome.is_err()).collect()
}

/// How many answers came from `version`.
pub fn count(samples: &[Sample], version: &str) -> usize {
    samples
        .iter()
        .filter(|s| s.outcome.as_deref() == Ok(version))
        .count()
}
