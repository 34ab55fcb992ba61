//! HTTP calls: recorded, answered by the test, failed on reset or timeout.

mod common;

use common::{probe_request, probe_vm, probe_vm_with};
use std::time::Duration;
use wasm_host::{Action, HostError, HttpAnswer, VmOptions};

#[test]
fn a_call_is_recorded_and_its_answer_resumes_the_stream() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("call:rules-server")).unwrap();
    assert_eq!(r.action, Action::Pause);
    assert!(!r.forwarded());
    assert_eq!(r.header("x-probe-call-token"), Some("4"));
    let calls = vm.pending_http_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.token, 4);
    assert_eq!(call.upstream, "rules-server");
    assert_eq!(call.headers.get(":method"), Some("POST"));
    assert_eq!(call.headers.get(":path"), Some("/probe"));
    assert_eq!(call.headers.get(":authority"), Some("probe"));
    assert_eq!(call.headers.get("x-from"), Some("probe"));
    assert_eq!(call.body, b"ping");
    assert_eq!(call.trailers.get("x-trailer"), Some("t"));
    assert_eq!(call.timeout, Some(Duration::from_millis(1500)));
    assert_eq!(call.context_id, r.id);

    // The stream cannot get a response before the call is answered.
    assert!(matches!(
        vm.respond(&r, &[(":status", "200")]),
        Err(HostError::Usage(_))
    ));
    vm.answer_http_call(
        4,
        HttpAnswer::Response {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: b"pong".to_vec(),
            trailers: vec![("x-trailer".into(), "tt".into())],
        },
    )
    .unwrap();
    assert!(vm.pending_http_calls().is_empty());
    let r = vm.stream(&r).unwrap();
    assert!(r.resumed);
    assert!(r.forwarded());
    assert_eq!(r.header("x-probe-call-status"), Some("200"));
    assert_eq!(r.header("x-probe-call-body"), Some("pong"));
    assert_eq!(r.header("x-probe-call-trailer"), Some("tt"));
    vm.respond(&r, &[(":status", "200")]).unwrap();
    assert!(vm.logs_containing("call 4 answered: 200 trailers=1").len() == 1);
}

#[test]
fn a_failure_answer_has_no_headers() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("call:rules-server")).unwrap();
    vm.answer_http_call(4, HttpAnswer::Failure).unwrap();
    let r = vm.stream(&r).unwrap();
    assert_eq!(r.header("x-probe-call-status"), Some("failed"));
    assert_eq!(r.header("x-probe-call-body"), Some(""));
    assert!(r.resumed);
}

#[test]
fn a_local_reply_from_the_call_response_ends_the_stream() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("call:rules-server")).unwrap();
    vm.answer_http_call(4, HttpAnswer::response(503, &[], b"down"))
        .unwrap();
    let r = vm.stream(&r).unwrap();
    assert!(r.closed);
    assert!(!r.forwarded());
    let reply = r.local_reply.unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body_text(), "upstream call failed");
    assert_eq!(vm.open_streams(), 0);
}

#[test]
fn a_call_times_out_when_time_passes() {
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("call:rules-server")).unwrap();
    vm.advance(Duration::from_millis(1499)).unwrap();
    assert_eq!(vm.pending_http_calls().len(), 1);
    vm.advance(Duration::from_millis(1)).unwrap();
    assert!(vm.pending_http_calls().is_empty());
    assert_eq!(
        vm.stream(&r).unwrap().header("x-probe-call-status"),
        Some("failed")
    );
}

#[test]
fn bad_calls_are_refused_like_envoy() {
    // No :authority: BadArgument.
    let mut vm = probe_vm();
    let r = vm.request(&probe_request("bad-call:rules-server")).unwrap();
    assert_eq!(r.header("x-probe-call-error"), Some("BadArgument"));
    assert_eq!(r.action, Action::Continue);
    // An unknown cluster, when the clusters are listed: BadArgument.
    let mut vm = probe_vm_with(
        VmOptions {
            clusters: Some(vec!["known".into()]),
            ..VmOptions::default()
        },
        "",
    );
    let r = vm.request(&probe_request("call:unknown")).unwrap();
    assert_eq!(r.header("x-probe-call-error"), Some("BadArgument"));
    let r = vm.request(&probe_request("call:known")).unwrap();
    assert_eq!(r.header("x-probe-call-token"), Some("4"));
}

#[test]
fn tokens_go_up_by_four_and_unknown_tokens_are_refused() {
    let mut vm = probe_vm();
    vm.request(&probe_request("call:a")).unwrap();
    vm.request(&probe_request("call:b")).unwrap();
    let tokens: Vec<u32> = vm.pending_http_calls().iter().map(|c| c.token).collect();
    assert_eq!(tokens, [4, 8]);
    assert!(matches!(
        vm.answer_http_call(5, HttpAnswer::Failure),
        Err(HostError::Usage(_))
    ));
}

#[test]
fn root_context_calls_from_ticks() {
    let mut vm = probe_vm_with(VmOptions::default(), "tick=1000 tick-call=rules-server");
    vm.advance(Duration::from_millis(1000)).unwrap();
    let calls = vm.pending_http_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].context_id, 1);
    assert_eq!(calls[0].headers.get(":path"), Some("/tick"));
    vm.answer_http_call(calls[0].token, HttpAnswer::response(200, &[], b"{}"))
        .unwrap();
    assert_eq!(
        vm.logs_containing("root #1 call 4 answered"),
        ["root #1 call 4 answered: headers=1 body=2 trailers=0 status=200"]
    );
}
