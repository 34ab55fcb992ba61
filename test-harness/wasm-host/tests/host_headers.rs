//! Header maps, local replies, stream control and foreign functions, as Envoy answers them.

mod common;

use common::{probe_request, probe_vm};
use wasm_host::{Action, HostError};

#[test]
fn request_headers_can_be_read_and_changed() {
    let mut vm = probe_vm();
    let mut headers = probe_request("set:x-a=1;add:x-b=2;add:x-b=3;del:x-gone;get:X-Keep;count");
    headers.push(("x-gone", "bye"));
    headers.push(("X-Keep", "kept"));
    let r = vm.request(&headers).unwrap();
    assert_eq!(r.header("x-a"), Some("1"));
    assert_eq!(r.headers.get_all("x-b"), ["2", "3"]);
    assert!(!r.headers.contains("x-gone"));
    assert_eq!(r.header("x-probe-got"), Some("kept"));
    // :authority :path :method x-probe x-keep x-probe-context x-a x-b x-b x-probe-got
    // (x-gone removed).
    assert_eq!(r.header("x-probe-count"), Some("10"));
    // Keys are lowercase, as Envoy's codecs make them.
    assert!(r.headers.iter().all(|(k, _)| k == k.to_lowercase()));
}

#[test]
fn replace_removes_every_value_and_pseudo_headers_stay_first() {
    let mut vm = probe_vm();
    let mut headers = probe_request("set:x-b=new;set::path=/rewritten");
    headers.push(("x-b", "1"));
    headers.push(("x-b", "2"));
    let r = vm.request(&headers).unwrap();
    assert_eq!(r.headers.get_all("x-b"), ["new"]);
    assert_eq!(r.header(":path"), Some("/rewritten"));
    let keys: Vec<&str> = r.headers.iter().map(|(k, _)| k).collect();
    let first_regular = keys.iter().position(|k| !k.starts_with(':')).unwrap();
    assert!(
        keys[first_regular..].iter().all(|k| !k.starts_with(':')),
        "{keys:?}"
    );
}

#[test]
fn set_header_map_pairs_replaces_the_map() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("replace-all")).unwrap();
    assert_eq!(r.header("x-replaced"), Some("1"));
    assert!(!r.headers.contains("x-probe"));
    assert_eq!(r.header(":authority"), Some("backend"));
}

#[test]
fn response_headers_do_not_exist_while_decoding() {
    let mut vm = probe_vm();
    // BadArgument (2), as Envoy answers for a map that does not exist yet.
    let r = vm.request(&probe_request("raw-get-response")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("2"));
}

#[test]
fn response_headers_can_be_changed_while_encoding() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("")).unwrap();
    let response = vm
        .respond(
            &r,
            &[
                (":status", "200"),
                ("x-probe", "set:x-r=1;del:server"),
                ("server", "up"),
            ],
        )
        .unwrap();
    assert_eq!(response.action, Action::Continue);
    assert_eq!(response.header("x-probe-response"), Some("seen"));
    assert_eq!(response.header("x-r"), Some("1"));
    assert!(!response.headers.contains("server"));
    assert!(response.local_reply.is_none());
}

#[test]
fn the_route_op_sets_the_header_and_clears_the_route_cache() {
    let mut vm = probe_vm();
    let r = vm
        .request(&probe_request(
            "route:outbound|80|v2|backend.default.svc.cluster.local",
        ))
        .unwrap();
    assert_eq!(
        r.header("x-canary-upstream"),
        Some("outbound|80|v2|backend.default.svc.cluster.local")
    );
    assert!(r.cleared_route_cache);
    assert_eq!(r.route_cache_clears, 1);
    assert_eq!(vm.foreign_calls().len(), 1);
    assert_eq!(vm.foreign_calls()[0].name, "clear_route_cache");
    assert_eq!(vm.foreign_calls()[0].context_id, r.id);
    let plain = vm.request(&probe_request("")).unwrap();
    assert!(!plain.cleared_route_cache);
}

#[test]
fn an_unknown_foreign_function_is_not_found() {
    let mut vm = probe_vm();
    let r = vm
        .request(&probe_request("foreign:no_such_function"))
        .unwrap();
    assert_eq!(r.header("x-probe-foreign"), Some("NotFound"));
    assert_eq!(vm.foreign_calls()[0].name, "no_such_function");
    assert_eq!(vm.foreign_calls()[0].args, b"args");
    let r = vm
        .request(&probe_request("foreign:clear_route_cache"))
        .unwrap();
    assert_eq!(r.header("x-probe-foreign"), Some("ok"));
    assert!(r.cleared_route_cache);
}

#[test]
fn a_local_reply_goes_through_on_response_headers_and_ends_the_stream() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("reply:403")).unwrap();
    assert_eq!(r.action, Action::Pause);
    assert!(!r.forwarded());
    assert!(r.closed);
    let reply = r.local_reply.as_ref().expect("a local reply");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.body_text(), "probe reply");
    assert_eq!(reply.headers.get(":status"), Some("403"));
    assert_eq!(reply.headers.get("x-probe-reply"), Some("1"));
    assert_eq!(reply.headers.get("content-length"), Some("11"));
    assert_eq!(reply.headers.get("content-type"), Some("text/plain"));
    // The filter's own encoder ran over it.
    assert_eq!(reply.headers.get("x-probe-response"), Some("seen"));
    assert_eq!(vm.open_streams(), 0);
    assert_eq!(vm.metric("probe.logged"), Some(1));
    assert!(matches!(
        vm.respond(&r, &[(":status", "200")]),
        Err(HostError::Usage(_))
    ));
}

#[test]
fn a_paused_stream_cannot_get_a_response() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("pause")).unwrap();
    assert_eq!(r.action, Action::Pause);
    assert!(!r.forwarded());
    let err = vm.respond(&r, &[(":status", "200")]).unwrap_err();
    assert!(err.to_string().contains("paused"), "{err}");
    vm.close(&r).unwrap();
}

#[test]
fn set_effective_context_accepts_only_live_contexts() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("effective:999")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("2"));
    let r = vm.request(&probe_request("effective:1")).unwrap();
    assert_eq!(r.header("x-probe-status"), Some("0"));
}

#[test]
fn properties_set_by_the_guest_are_per_stream() {
    let mut vm = probe_vm();
    let r = vm
        .request(&probe_request(
            "set-prop:canary.choice=v2;prop:canary.choice",
        ))
        .unwrap();
    assert_eq!(r.header("x-probe-set-prop"), Some("ok"));
    assert_eq!(r.header("x-probe-prop"), Some("s:v2"));
    // Another stream does not see it; an unknown property is NotFound (the SDK's None).
    let r = vm.request(&probe_request("prop:canary.choice")).unwrap();
    assert_eq!(r.header("x-probe-prop"), Some("none"));
}
