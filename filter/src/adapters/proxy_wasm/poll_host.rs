//! The rule-source poller's host: [`crate::domain::poll::PollHost`] over proxy-wasm
//! host calls. The protocol itself (lease, backoff, shared rules, logging
//! once) lives in [`crate::domain::poll`], where it is tested without a host.

use alloc::{string::String, string::ToString, vec::Vec};

use core::time::Duration;

use crate::domain::poll::{Counter, Level, PollHost};
use crate::domain::shared::{CasMismatch, SharedStore};

use filter_runtime::proxy_wasm::hostcalls::{self, Buffer, Map};
use filter_runtime::proxy_wasm::logger;

use super::metrics::{bump, Global};
use super::shared_data::SharedData;

/// The host, as the poller of one root context sees it.
pub struct Host<'a> {
    pub global: &'a Global,
}

impl SharedStore for Host<'_> {
    fn get(&mut self, key: &str) -> Result<Option<(Vec<u8>, u32)>, String> {
        SharedData.get(key)
    }

    fn set(
        &mut self,
        key: &str,
        value: &[u8],
        cas: u32,
    ) -> Result<Result<(), CasMismatch>, String> {
        SharedData.set(key, value, cas)
    }
}

impl PollHost for Host<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        hostcalls::now_ms().ok()
    }

    fn fetch(
        &mut self,
        cluster: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<u32, String> {
        let ms = u32::try_from(timeout.as_millis()).unwrap_or(u32::MAX);
        hostcalls::http_call(cluster, headers, ms).map_err(|s| s.to_string())
    }

    fn response_header(&mut self, name: &str) -> Option<Vec<u8>> {
        hostcalls::header_value(Map::HttpCallResponse, name)
            .ok()
            .map(|b| b.as_slice().to_vec())
    }

    fn response_body(&mut self, size: usize) -> Result<Vec<u8>, String> {
        hostcalls::buffer(Buffer::HttpCallResponseBody, 0, size)
            .map(|b| b.as_slice().to_vec())
            .map_err(|s| s.to_string())
    }

    fn count(&mut self, counter: Counter) {
        bump(match counter {
            Counter::ReloadSuccess => self.global.reload_success,
            Counter::ReloadFailure => self.global.reload_failure,
            Counter::NotModified => self.global.fetch_not_modified,
        });
    }

    fn log(&mut self, level: Level, message: &str) {
        match level {
            Level::Info => logger::info!("{message}"),
            Level::Warn => logger::warn!("{message}"),
        }
    }
}
