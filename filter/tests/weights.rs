#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! Weighted and sticky picks: statistical bounds from the binomial
//! distribution, stickiness, and the monotonic ramp.

mod common;
use std::collections::HashMap;

use canary_router::domain::pick::Rng;
use canary_router::Outcome;
use common::*;

fn split(
    rules: &canary_router::RuleSet,
    n: u64,
    mut req: impl FnMut(u64) -> Req,
) -> HashMap<String, u64> {
    let mut rng = Rng::new(0x5eed_0001);
    let mut counts = HashMap::new();
    for i in 0..n {
        if let Outcome::Routed(d) = rules.decide(&req(i), || rng.next_u64()) {
            *counts.entry(d.cluster.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn weights_are_relative_and_within_binomial_bounds() {
    for weights in [
        vec![("v1", 90), ("v2", 10)],
        vec![("v1", 50), ("v2", 50)],
        vec![("v1", 1), ("v2", 1), ("v3", 2)],
        vec![("v1", 9_999), ("v2", 1)],
        vec![("v1", 3), ("v2", 7)],
    ] {
        let rules = compile(&weighted(&weights, None));
        let n = 200_000;
        let counts = split(&rules, n, |_| Req::to("backend"));
        let total: i64 = weights.iter().map(|(_, w)| w).sum();
        for (c, w) in &weights {
            let k = counts.get(*c).copied().unwrap_or(0);
            assert_binomial(
                k,
                n,
                *w as f64 / total as f64,
                &format!("{c} of {weights:?}"),
            );
        }
        assert_eq!(counts.values().sum::<u64>(), n, "every request routed");
    }
}

#[test]
fn zero_weight_gets_nothing_and_lone_destination_gets_everything() {
    let rules = compile(&weighted(&[("v1", 0), ("v2", 5)], None));
    let counts = split(&rules, 20_000, |_| Req::to("backend"));
    assert_eq!(counts.get("v1"), None);
    assert_eq!(counts.get("v2"), Some(&20_000));
    let rules = compile(&weighted(
        &[("v1", 0), ("v2", 5)],
        Some(r#"{"header":"x-user-id"}"#),
    ));
    let counts = split(&rules, 20_000, |i| {
        Req::to("backend").with("x-user-id", i.to_string())
    });
    assert_eq!(
        counts.get("v1"),
        None,
        "sticky picks never choose weight 0 either"
    );
    let lone = r#"{"services":[{"hosts":["backend"],"http":[{"route":[{"destination":{"cluster":"only"}}]}]}]}"#;
    let counts = split(&compile(lone), 1000, |_| Req::to("backend"));
    assert_eq!(counts.get("only"), Some(&1000));
}

#[test]
fn sticky_by_header_cookie_and_source_ip() {
    for (sticky, req) in [
        (
            r#"{"header":"x-user-id"}"#,
            (|k: u64| Req::to("backend").with("x-user-id", format!("user-{k}"))) as fn(u64) -> Req,
        ),
        (r#"{"cookie":"session"}"#, |k| {
            Req::to("backend").with("cookie", format!("theme=dark; session=s{k}; lang=en"))
        }),
        (r#"{"sourceIp":true}"#, |k| {
            Req::to("backend").with_source(&format!("10.0.{}.{}:{}", k / 250, k % 250, 40000 + k))
        }),
    ] {
        let rules = compile(&weighted(&[("v1", 50), ("v2", 50)], Some(sticky)));
        let mut per_user = Vec::new();
        for k in 0..2000 {
            let first = cluster(&rules, &req(k)).unwrap();
            for _ in 0..5 {
                let mut rng = Rng::new(k ^ 0xabc);
                let again = match rules.decide(&req(k), || rng.next_u64()) {
                    Outcome::Routed(d) => d.cluster.to_string(),
                    _ => panic!("unrouted"),
                };
                assert_eq!(first, again, "{sticky}: user {k} moved");
            }
            per_user.push(first);
        }
        let on_v2 = per_user.iter().filter(|c| *c == "v2").count() as u64;
        assert_binomial(on_v2, 2000, 0.5, &format!("{sticky}: users on v2"));
    }
}

#[test]
fn sticky_source_ip_ignores_the_client_port() {
    let rules = compile(&weighted(
        &[("v1", 50), ("v2", 50)],
        Some(r#"{"sourceIp":true}"#),
    ));
    for ip in 0..200 {
        let a = cluster(
            &rules,
            &Req::to("backend").with_source(&format!("10.1.2.{ip}:1000")),
        );
        let b = cluster(
            &rules,
            &Req::to("backend").with_source(&format!("10.1.2.{ip}:2000")),
        );
        assert_eq!(a, b);
        let v6a = cluster(
            &rules,
            &Req::to("backend").with_source(&format!("[fd00::{ip:x}]:1")),
        );
        let v6b = cluster(
            &rules,
            &Req::to("backend").with_source(&format!("[fd00::{ip:x}]:2")),
        );
        assert_eq!(v6a, v6b);
    }
}

#[test]
fn sticky_without_a_key_falls_back_to_the_random_split() {
    let rules = compile(&weighted(
        &[("v1", 90), ("v2", 10)],
        Some(r#"{"header":"x-user-id"}"#),
    ));
    let n = 50_000;
    let counts = split(&rules, n, |_| Req::to("backend"));
    assert_binomial(
        counts.get("v2").copied().unwrap_or(0),
        n,
        0.1,
        "v2 without a key",
    );
}

#[test]
fn raising_the_canary_never_moves_a_sticky_user_off_it() {
    let users: Vec<Req> = (0..3000)
        .map(|k| Req::to("backend").with("x-user-id", format!("u{k}")))
        .collect();
    let mut on_canary = vec![false; users.len()];
    for canary in [0, 1, 2, 5, 10, 20, 50, 80, 100] {
        let rules = compile(&weighted(
            &[("v1", 100 - canary), ("v2", canary)],
            Some(r#"{"header":"x-user-id"}"#),
        ));
        for (i, u) in users.iter().enumerate() {
            let now = cluster(&rules, u).as_deref() == Some("v2");
            assert!(
                !on_canary[i] || now,
                "user {i} left the canary at {canary}%"
            );
            on_canary[i] = now;
        }
        let share = on_canary.iter().filter(|c| **c).count() as u64;
        assert_binomial(
            share,
            users.len() as u64,
            canary as f64 / 100.0,
            &format!("canary at {canary}%"),
        );
    }
}

#[test]
fn reordering_destinations_moves_no_sticky_user() {
    let a = compile(&weighted(
        &[("v1", 70), ("v2", 30)],
        Some(r#"{"header":"x-user-id"}"#),
    ));
    let b = compile(&weighted(
        &[("v2", 30), ("v1", 70)],
        Some(r#"{"header":"x-user-id"}"#),
    ));
    for k in 0..2000 {
        let req = Req::to("backend").with("x-user-id", format!("u{k}"));
        assert_eq!(cluster(&a, &req), cluster(&b, &req));
    }
}
