//! The root context: configuration, the active rule set, ticks and the rule
//! source's callouts.

use alloc::string::String;

use alloc::rc::Rc;

use crate::domain::plugin::{self, Plugin, Rules, Source};
use crate::domain::poll::Poller;

use filter_runtime::proxy_wasm::exports::RootContext;
use filter_runtime::proxy_wasm::hostcalls::{self, Buffer};
use filter_runtime::proxy_wasm::logger;

use super::active::Active;
use super::host_buffer::HostBuffer;
use super::http::{random, Filter};
use super::metrics::{bump, Global};
use super::node::Node;
use super::poll_host::Host;

pub struct Root {
    context_id: u32,
    global: Option<Rc<Global>>,
    node: Node,
    active: Option<Rc<Active>>,
    poller: Option<Poller>,
    /// The `plugin_root_id` property: guards of two plugins apart.
    root_id: Option<String>,
    tick_ms: u32,
    /// When the next step of a ramp is due (Unix milliseconds).
    ramp_due: Option<u64>,
}

impl Root {
    pub fn new(context_id: u32) -> Self {
        Root {
            context_id,
            global: None,
            node: Node::default(),
            active: None,
            poller: None,
            root_id: None,
            tick_ms: 0,
            ramp_due: None,
        }
    }

    fn root_id(&mut self) -> String {
        self.root_id
            .get_or_insert_with(|| {
                hostcalls::property(&["plugin_root_id"])
                    .ok()
                    .and_then(|b| String::from_utf8(b.as_slice().to_vec()).ok())
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Ticks as often as the poller and the guards need, and at the next
    /// step of a ramp (at least once a minute while one is due, so a
    /// clock set forward is caught up with); 0: none.
    fn set_ticks(&mut self) {
        let poll = self.poller.as_ref().map(Poller::tick_period_ms);
        let guard = self
            .active
            .as_ref()
            .and_then(|a| a.guard.as_ref())
            .map(|g| g.tick_ms);
        let mut want = u32::MAX;
        if let Some(at) = self.ramp_due {
            let now = hostcalls::now_ms().unwrap_or(0);
            want = at.saturating_sub(now).clamp(1, 60_000) as u32;
        }
        if let Some(t) = poll {
            want = want.min(t);
        }
        if let Some(t) = guard {
            want = want.min(t);
        }
        if want == u32::MAX {
            want = 0;
        }
        if want != self.tick_ms {
            match hostcalls::set_tick_period_ms(want) {
                Ok(()) => self.tick_ms = want,
                Err(s) => logger::error!("cannot set the tick period ({s}): the rule source will not be polled, guards flush only with traffic"),
            }
        }
    }

    fn global(&mut self) -> Rc<Global> {
        self.global
            .get_or_insert_with(|| Rc::new(Global::define()))
            .clone()
    }

    fn configure(&mut self, src: &mut dyn Source) -> Result<(), crate::ConfigError> {
        let node = &mut self.node;
        let Plugin { settings, rules } = Plugin::read(src, &mut |keys| node.workload(keys))?;
        let settings = Rc::new(settings);
        let global = self.global();
        match &rules {
            Some(r) => logger::info!(
                "#{} configured: {} services, {} destinations, rules version {}",
                self.context_id,
                r.set.services().len(),
                r.set.destination_count(),
                r.version
            ),
            None => logger::info!(
                "#{} configured: rules will come from the rule source",
                self.context_id
            ),
        }
        let root_id = self.root_id();
        self.active = Some(Active::new(settings.clone(), rules, global, &root_id));
        self.poller = settings.source.clone().map(|s| Poller::new(s, random()));
        self.ramp_due = self.ramp_due();
        self.set_ticks();
        if let Some(p) = &self.poller {
            let source = p.source();
            logger::info!(
                "#{} polling rules every {} from cluster {} path {} (authority {})",
                self.context_id,
                crate::domain::poll::show_ms(crate::domain::poll::millis(source.poll_interval)),
                source.cluster,
                source.path,
                source.authority
            );
        }
        // Rules another worker (or an earlier configuration) already fetched
        // take over at once, so a reload never falls back to stale inline rules.
        self.on_tick();
        Ok(())
    }

    /// Installs rules from the rule source: fetched by this VM (logged), or
    /// adopted from the copy another VM fetched (logged at debug level, so
    /// one reload is one line, not one per worker).
    fn install(&mut self, rules: Rules, fetched: bool) {
        let Some(active) = &self.active else { return };
        let level = if fetched { logger::INFO } else { logger::DEBUG };
        logger::log!(
            level,
            "#{} rules version {} {} the rule source: {} services, {} destinations",
            self.context_id,
            rules.version,
            if fetched {
                "fetched from"
            } else {
                "adopted from"
            },
            rules.set.services().len(),
            rules.set.destination_count()
        );
        let (settings, global) = (active.settings.clone(), active.global.clone());
        let root_id = self.root_id();
        self.active = Some(Active::new(settings, Some(rules), global, &root_id));
        self.ramp_due = self.ramp_due();
        self.set_ticks();
    }

    /// When the active rules' next ramp step is due.
    fn ramp_due(&self) -> Option<u64> {
        let rules = self.active.as_ref()?.rules.as_ref()?;
        rules.set.advance(hostcalls::now_ms().unwrap_or(0)).1
    }
}

/// The callbacks of a root context (dispatched by `filter_runtime`'s
/// exports, see `entry.rs`).
impl RootContext for Root {
    type Http = Filter;

    fn create(context_id: u32) -> Self {
        Root::new(context_id)
    }

    /// A stream routes with what its root had in force when it began.
    #[inline]
    fn create_http(root: Option<&Self>) -> Filter {
        Filter::new(root.and_then(|r| r.active.clone()))
    }

    fn on_http_call_response(&mut self, token: u32, num_headers: usize, body_size: usize) {
        let (Some(poller), Some(active)) = (self.poller.as_mut(), self.active.clone()) else {
            return;
        };
        let node = &mut self.node;
        let mut host = Host {
            global: &active.global,
        };
        let fetched = poller.on_response(&mut host, token, num_headers, body_size, &mut |bytes| {
            plugin::read_rule_file(&mut { bytes }, &active.settings, &mut |keys| {
                node.workload(keys)
            })
        });
        if let Some(rules) = fetched {
            self.install(rules, true);
        }
    }

    fn on_vm_start(&mut self, _vm_configuration_size: usize) -> bool {
        logger::follow_host_level();
        logger::info!(
            "#{} VM started: canary-router {} ({})",
            self.context_id,
            env!("CARGO_PKG_VERSION"),
            option_env!("CANARY_ROUTER_GIT_HASH").unwrap_or("unknown commit")
        );
        true
    }

    /// Reads the configuration from the host a piece at a time, as often
    /// as it is read (see [`Plugin::read`]): an oversized one is refused
    /// before any is read, a host error while reading refuses it.
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let mut src = HostBuffer {
            buffer: Buffer::PluginConfiguration,
            size: plugin_configuration_size,
        };
        match self.configure(&mut src) {
            Ok(()) => true,
            Err(e) => {
                bump(self.global().config_rejected);
                logger::error!("#{} configuration rejected: {e}", self.context_id);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        let Some(active) = self.active.clone() else {
            return;
        };
        if let Some(rules) = &active.rules {
            let (moved, due) = rules.set.advance(hostcalls::now_ms().unwrap_or(0));
            let learned = active.guard.as_ref().is_some_and(|g| g.tick(&rules.set));
            if moved || learned {
                active.show_weights();
            }
            if due != self.ramp_due || due.is_some() {
                self.ramp_due = due;
                self.set_ticks();
            }
        }
        let Some(poller) = self.poller.as_mut() else {
            return;
        };
        let node = &mut self.node;
        let mut host = Host {
            global: &active.global,
        };
        let adopted = poller.tick(&mut host, &mut |bytes| {
            plugin::read_rule_file(&mut { bytes }, &active.settings, &mut |keys| {
                node.workload(keys)
            })
        });
        if let Some(rules) = adopted {
            self.install(rules, false);
        }
    }
}
