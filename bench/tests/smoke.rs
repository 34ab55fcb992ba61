//! Keeps the benchmark from rotting: `canary-bench --smoke` starts every
//! configuration in a real Envoy, checks that each routes as it should
//! (split within binomial bounds, header rule, the floor's fixed cluster),
//! runs one short round of wrk and h2load against each, and renders the
//! report. Nothing here judges speed.

use std::process::Command;

#[test]
fn smoke_run_routes_every_configuration_and_renders_the_report() {
    let out = std::env::temp_dir().join(format!("canary-bench-smoke-{}.md", std::process::id()));
    let run = Command::new(env!("CARGO_BIN_EXE_canary-bench"))
        .args(["--smoke", "--out"])
        .arg(&out)
        .output()
        .expect("running canary-bench");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "canary-bench --smoke failed:\n{stderr}"
    );
    let md = std::fs::read_to_string(&out).expect("the report was written");
    let _ = std::fs::remove_file(&out);
    assert_eq!(
        md,
        String::from_utf8_lossy(&run.stdout)
            .trim_end_matches('\n')
            .to_string()
            + "\n",
        "the file holds what was printed"
    );
    for heading in [
        "## Targets",
        "## HTTP/1.1 (wrk)",
        "## HTTP/2 (h2load, h2c)",
        "## HTTP/1.1, one request at a time",
        "## Cost of the rule set",
        "## Size and opt-level",
        "## Routing checks",
    ] {
        assert!(md.contains(heading), "no {heading:?} in:\n{md}");
    }
    // Every configuration measured under HTTP/1.1, HTTP/2 and one request
    // at a time, the rule-count
    // variants under HTTP/1.1, each with a routing check that passed.
    let rows = |name: &str| {
        md.lines()
            .filter(|l| l.starts_with(&format!("| {name} |")))
            .count()
    };
    for name in [
        "native",
        "lua",
        "lua, v1 left to the default route",
        "wasm floor",
    ] {
        assert_eq!(
            rows(name),
            4,
            "{name}: three result rows and a routing check:\n{md}"
        );
    }
    // The four canary-router configurations also have a row per protocol in
    // the alternating table.
    for name in [
        "canary-router",
        "canary-router, header on every request",
        "canary-router, port-less destinations",
        "canary-router with a guard",
    ] {
        assert_eq!(
            rows(name),
            7,
            "{name}: three result rows, a routing check and three alternating rows:\n{md}"
        );
        for proto in [
            "HTTP/1.1 (wrk)",
            "HTTP/2 (h2load, h2c)",
            "HTTP/1.1, one request at a time (wrk -c1)",
        ] {
            assert!(
                md.contains(&format!("| {name} | {proto} | 1 | ")),
                "the alternating runs of {name} ({proto}):\n{md}"
            );
        }
    }
    for n in [1, 10, 100, 1000] {
        assert_eq!(
            rows(&format!("canary-router, {n} rules")),
            2,
            "{n} rules:\n{md}"
        );
        assert_eq!(rows(&n.to_string()), 1, "rule-set row for {n}:\n{md}");
    }
    assert!(md.contains("within binomial bounds of 10%"), "{md}");
    assert!(
        md.contains("| wasm floor | 30/300 plain requests to v2"),
        "the floor sends every tenth request to v2:\n{md}"
    );
    // The filter exports only what it implements: no untrimmed row any more.
    assert_eq!(rows("canary-router, untrimmed exports"), 0, "{md}");
    // The floor taken apart: HTTP/1.1 and HTTP/2 rows and a routing check.
    for name in [
        "wasm, empty filter",
        "wasm, header read only",
        "wasm floor, no header read",
    ] {
        assert_eq!(rows(name), 3, "{name}:\n{md}");
    }
    assert!(
        md.contains(
            "| wasm, empty filter | 0/300 plain and 0/30 `x-canary: always` requests to v2"
        ),
        "the empty filter routes nothing:\n{md}"
    );
    assert!(
        md.contains("| wasm floor, no header read | 30/300 plain requests to v2"),
        "without its read, the floor still routes:\n{md}"
    );
    assert!(
        md.contains(
            "| wasm, header read only | 0/300 plain and 0/30 `x-canary: always` requests to v2"
        ),
        "the header read alone routes nothing:\n{md}"
    );
    assert!(md.contains("| canary_router.wasm | "), "{md}");
}

/// `canary-bench compare` runs two modules in alternating pairs of fresh
/// Envoys and prints the table; bad arguments are refused by name.
#[test]
fn compare_runs_two_modules_side_by_side_and_refuses_a_missing_file() {
    let wasm = envoy_runner::build_filter_wasm().expect("the filter .wasm");
    let copy = std::env::temp_dir().join(format!("canary-compare-{}.wasm", std::process::id()));
    std::fs::copy(wasm, &copy).expect("copying the module");
    let run = Command::new(env!("CARGO_BIN_EXE_canary-bench"))
        .args(["compare", "--pairs", "1", "--duration", "1", "--h1-only"])
        .arg(wasm)
        .arg(&copy)
        .output()
        .expect("running canary-bench compare");
    let _ = std::fs::remove_file(&copy);
    let stdout = String::from_utf8_lossy(&run.stdout);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "compare failed:\n{stderr}");
    assert!(
        stdout.contains(&format!(
            "canary-compare-{}.wasm over canary_router.wasm (1 pairs",
            std::process::id()
        )),
        "{stdout}"
    );
    let row = stdout
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "| canary-compare-{}.wasm | HTTP/1.1 (wrk) | 1 | 1 | ",
                std::process::id()
            ))
        })
        .unwrap_or_else(|| panic!("no HTTP/1.1 row:\n{stdout}"));
    // Both sides served requests: the ratios are numbers, not "–".
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    for i in [5, 7] {
        let v: f64 = cells[i]
            .parse()
            .unwrap_or_else(|_| panic!("cell {i} of {row:?} is not a ratio"));
        assert!(v > 0.0, "{row}");
    }
    assert!(!stdout.contains("HTTP/2"), "--h1-only:\n{stdout}");

    let missing = Command::new(env!("CARGO_BIN_EXE_canary-bench"))
        .args(["compare", "/nonexistent/a.wasm"])
        .arg(wasm)
        .output()
        .expect("running canary-bench compare");
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/a.wasm: no such file"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}
