//! The cost of one request through a `.wasm` module in the in-process host
//! (`wasm_host`, wasmtime): the module's own work plus a
//! constant host overhead, which the wasm floor measures, so canary-router
//! minus floor is what its decision costs in wasm.

use std::path::Path;
use std::time::{Duration, Instant};

use wasm_host::{LogLevel, Module, Vm, VmOptions};

use crate::configs::{ROUTE_HEADER, V1, V2};
use crate::decide::request_headers;

/// Median wall time of one request (`on_request_headers` and
/// `on_response_headers`, context created and deleted), in µs.
pub fn per_request_us(wasm: &Path, configuration: &[u8], budget: Duration) -> Result<f64, String> {
    let module = Module::load(wasm).map_err(|e| format!("{}: {e}", wasm.display()))?;
    let mut vm = Vm::new(
        &module,
        VmOptions {
            log_level: LogLevel::Warn,
            random_seed: 7,
            ..VmOptions::default()
        },
    )
    .map_err(|e| e.to_string())?;
    if !vm.configure(configuration).map_err(|e| e.to_string())? {
        return Err(format!(
            "{} rejected its configuration: {:?}",
            wasm.display(),
            vm.logs()
        ));
    }
    let owned: Vec<(String, String)> = request_headers()
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(k).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect();
    let headers: Vec<(&str, &str)> = owned
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let one = |vm: &mut Vm| -> Result<(), String> {
        let r = vm.request(&headers).map_err(|e| e.to_string())?;
        let routed = matches!(r.header(ROUTE_HEADER), Some(c) if c == V1 || c == V2);
        if !routed || !r.cleared_route_cache {
            return Err(format!(
                "{}: request not routed ({:?}, clear_route_cache {})",
                wasm.display(),
                r.header(ROUTE_HEADER),
                r.cleared_route_cache
            ));
        }
        vm.respond(&r, &[(":status", "200")])
            .map_err(|e| e.to_string())?;
        Ok(())
    };
    let mut iters = 16u64;
    loop {
        let t = Instant::now();
        for _ in 0..iters {
            one(&mut vm)?;
        }
        if t.elapsed() * 10 >= budget || iters >= 1 << 24 {
            break;
        }
        iters *= 2;
    }
    let mut per = Vec::new();
    for _ in 0..7 {
        let t = Instant::now();
        for _ in 0..iters {
            one(&mut vm)?;
        }
        per.push(t.elapsed().as_secs_f64() * 1e6 / iters as f64);
    }
    per.sort_by(f64::total_cmp);
    Ok(per[per.len() / 2])
}
