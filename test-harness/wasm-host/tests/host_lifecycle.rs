//! VM lifecycle: start, configure, logs, traps, unimplemented imports.

mod common;

use common::{probe, probe_request, probe_vm, probe_vm_with};
use wasm_host::{Action, HostError, LogLevel, Module, Vm, VmOptions};

#[test]
fn configure_reads_the_plugin_configuration_and_logs() {
    let mut vm = Vm::new(
        probe(),
        VmOptions {
            vm_configuration: b"vm-conf".to_vec(),
            ..VmOptions::default()
        },
    )
    .unwrap();
    assert!(vm.configure(b"hello config").unwrap());
    assert_eq!(
        vm.logs_containing("probe vm start"),
        ["probe vm start: size=7 config=vm-conf"]
    );
    assert_eq!(
        vm.logs_containing("probe configured"),
        ["probe configured: size=12 config=hello config"]
    );
    assert!(vm
        .logs()
        .iter()
        .any(|(level, line)| *level == LogLevel::Debug && line.starts_with("metric ids")));
}

#[test]
fn a_request_runs_on_request_headers() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("set:x-a=1")).unwrap();
    assert_eq!(r.action, Action::Continue);
    assert_eq!(r.header("x-a"), Some("1"));
    assert_eq!(r.header("x-probe-context"), Some("2"));
    assert!(r.forwarded());
    assert!(!r.closed);
    let response = vm.respond(&r, &[(":status", "200")]).unwrap();
    assert_eq!(response.header("x-probe-response"), Some("seen"));
    assert_eq!(vm.open_streams(), 0);
    assert_eq!(vm.metric("probe.logged"), Some(1));
}

#[test]
fn on_configure_false_is_reported_and_requests_are_refused() {
    let mut vm = Vm::new(probe(), VmOptions::default()).unwrap();
    assert!(!vm.configure(b"fail").unwrap());
    let err = vm.request(&probe_request("")).unwrap_err();
    assert!(matches!(err, HostError::Usage(_)), "{err}");
    // A good configuration afterwards is accepted.
    assert!(vm.configure(b"").unwrap());
    vm.request(&probe_request("")).unwrap();
}

#[test]
fn on_vm_start_false_fails_the_vm() {
    let mut vm = Vm::new(
        probe(),
        VmOptions {
            vm_configuration: b"fail".to_vec(),
            ..VmOptions::default()
        },
    )
    .unwrap();
    assert!(!vm.configure(b"").unwrap());
    assert!(matches!(vm.configure(b""), Err(HostError::Failed { .. })));
}

#[test]
fn a_panic_is_a_trap_naming_the_export_and_the_vm_is_dead() {
    let mut vm = probe_vm();
    let err = vm
        .request(&probe_request("log:before;panic:boom"))
        .unwrap_err();
    let HostError::Trap {
        export,
        context_id,
        message,
        last_logs,
    } = &err
    else {
        panic!("expected a trap, got {err:?}");
    };
    assert_eq!(*export, "proxy_on_request_headers");
    assert_eq!(*context_id, 2);
    assert!(message.contains("unreachable"), "{message}");
    assert!(
        last_logs
            .iter()
            .any(|l| l.contains("probe asked to panic: boom")),
        "{last_logs:?}"
    );
    assert!(
        last_logs.iter().any(|l| l.contains("before")),
        "{last_logs:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("proxy_on_request_headers"), "{shown}");
    // Dead from now on.
    assert!(matches!(
        vm.request(&probe_request("")),
        Err(HostError::Failed { .. })
    ));
    assert!(vm.failure().unwrap().contains("proxy_on_request_headers"));
}

#[test]
fn a_panic_in_on_configure_is_a_trap() {
    let mut vm = Vm::new(probe(), VmOptions::default()).unwrap();
    let err = vm.configure(b"panic").unwrap_err();
    assert!(
        matches!(
            &err,
            HostError::Trap {
                export: "proxy_on_configure",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_unimplemented_import_fails_loudly() {
    assert!(probe()
        .unimplemented_imports()
        .contains(&"env.proxy_register_shared_queue".to_string()));
    let mut vm = probe_vm();
    let err = vm.request(&probe_request("queue")).unwrap_err();
    let HostError::Trap { message, .. } = &err else {
        panic!("expected a trap, got {err:?}");
    };
    assert!(
        message.contains("env.proxy_register_shared_queue"),
        "{message}"
    );
    assert!(message.contains("does not implement"), "{message}");
}

#[test]
fn stdout_and_stderr_go_to_the_log() {
    let mut vm = probe_vm();
    vm.request(&probe_request("stdout:to stdout;stderr:to stderr"))
        .unwrap();
    assert!(vm
        .logs()
        .contains(&(LogLevel::Info, "to stdout".to_string())));
    assert!(vm
        .logs()
        .contains(&(LogLevel::Error, "to stderr".to_string())));
}

#[test]
fn log_level_filters_and_is_reported() {
    let mut vm = probe_vm_with(
        VmOptions {
            log_level: LogLevel::Warn,
            ..VmOptions::default()
        },
        "",
    );
    vm.clear_logs();
    let r = vm
        .request(&probe_request("log:quiet;warn:loud;log-level"))
        .unwrap();
    assert_eq!(r.header("x-probe-log-level"), Some("3"));
    assert!(vm.logs_containing("quiet").is_empty());
    assert_eq!(vm.logs_containing("loud"), ["loud"]);
}

#[test]
fn environment_variables_reach_the_guest() {
    let mut vm = probe_vm_with(
        VmOptions {
            env: vec![("PROBE_ENV".into(), "from-host".into())],
            ..VmOptions::default()
        },
        "",
    );
    let r = vm
        .request(&probe_request("env:PROBE_ENV;env:OTHER"))
        .unwrap();
    assert_eq!(r.headers.get_all("x-probe-env"), ["from-host", "<unset>"]);
}

#[test]
fn a_module_that_is_not_proxy_wasm_is_refused() {
    // The smallest valid module: magic and version only.
    let err = Module::from_bytes("empty", b"\0asm\x01\0\0\0").unwrap_err();
    assert!(err.to_string().contains("not a proxy-wasm module"), "{err}");
    let err = Module::from_bytes("garbage", b"nope").unwrap_err();
    assert!(matches!(err, HostError::Load { .. }), "{err}");
}

#[test]
fn closing_a_stream_runs_on_log() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("")).unwrap();
    assert_eq!(vm.open_streams(), 1);
    vm.close(&r).unwrap();
    assert_eq!(vm.open_streams(), 0);
    assert_eq!(vm.metric("probe.logged"), Some(1));
    assert!(matches!(
        vm.respond(&r, &[(":status", "200")]),
        Err(HostError::Usage(_))
    ));
}

#[test]
fn shutdown_runs_on_done_and_on_delete_of_the_root() {
    let mut vm = probe_vm();
    assert!(vm.shutdown().unwrap());
}
