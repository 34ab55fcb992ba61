//! A real browser (Debian's headless Chromium) against the filter in a real
//! Envoy: what a browser does with the sticky cookie the filter issues.
//!
//! The sidecar example serves a page whose script fetches five more URLs
//! one after another; the backends echo each request's `cookie` header in
//! `x-seen-cookie`, and the page writes what each fetch carried into the
//! DOM that Chromium dumps. Over plain HTTP:
//! - on a host that is not `localhost` (`backend`, mapped to 127.0.0.1 with
//!   `--host-resolver-rules`), a `Secure` cookie is dropped: no fetch brings
//!   it back, each response issues a new key, and every one of them counts
//!   in `secure_cookie_over_http`;
//! - on `localhost`, which browsers treat as secure, the same cookie, with
//!   `SameSite=None` and `Partitioned` (CHIPS), is kept and brought back;
//! - on another name, a cookie without `Secure` is kept (the control: the
//!   browser and the page do bring cookies back).
//!
//! Without Chromium (`CHROMIUM`, or `chromium` on `PATH`; `scripts/setup.sh`
//! installs it) the test says so loudly and passes: it cannot run there.

use std::path::PathBuf;
use std::process::Command;

use envoy_runner::{example_dir, Build, Envoy, EnvoyConfig, EnvoyOptions};
use serde_json::{json, Value};

fn or_panic<T>(r: Result<T, impl std::fmt::Display>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

const FETCHES: usize = 5;

/// The page: five fetches in a row, each one's echoed cookie header written
/// into `<pre id=seen>`, one line each.
const PAGE: &str = r#"<!doctype html><html><body><pre id="seen"></pre><script>
(async () => {
  const out = [];
  for (let i = 0; i < 5; i++) {
    const r = await fetch('/fetch-' + i, { cache: 'no-store' });
    out.push('seen[' + (r.headers.get('x-seen-cookie') || '') + ']');
  }
  document.getElementById('seen').textContent = out.join('\n');
  document.title = 'done';
})();
</script></body></html>"#;

fn chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|d| PathBuf::from(d).join(name))
            .find(|p| p.is_file())
    })
}

/// The rules: `backend` and `localhost` issue a `Secure`, `SameSite=None`,
/// `Partitioned` cookie; `plain.test` a plain one.
fn rules() -> String {
    let text = or_panic(std::fs::read_to_string(
        example_dir("sticky").join("rules-cookie.json"),
    ));
    let base: Value = or_panic(serde_json::from_str(&text));
    let rule = base["services"][0]["http"][0].clone();
    let mut secure = rule.clone();
    let set = &mut secure["sticky"]["setCookie"];
    set["secure"] = true.into();
    set["sameSite"] = "None".into();
    set["partitioned"] = true.into();
    json!({
        "services": [
            { "hosts": ["backend.default.svc.cluster.local", "localhost"], "http": [secure] },
            { "hosts": ["plain.test"], "http": [rule] }
        ]
    })
    .to_string()
}

/// The sidecar example, answering for the three names on any port, its
/// backends serving the page and echoing each request's cookies.
fn config() -> EnvoyConfig {
    let mut config = or_panic(EnvoyConfig::from_example("sticky"));
    or_panic(config.set_wasm_configuration(&rules()));
    let listeners = config.value_mut()["static_resources"]["listeners"]
        .as_array_mut()
        .expect("listeners");
    for (i, l) in listeners.iter_mut().enumerate() {
        let hcm = &mut l["filter_chains"][0]["filters"][0]["typed_config"];
        if i == 0 {
            hcm["strip_any_host_port"] = true.into();
            let domains = hcm["route_config"]["virtual_hosts"][0]["domains"]
                .as_array_mut()
                .expect("domains");
            domains.extend([json!("localhost"), json!("plain.test")]);
            continue;
        }
        let route = &mut hcm["route_config"]["virtual_hosts"][0]["routes"][0];
        route["direct_response"]["body"]["inline_string"] = PAGE.into();
        route["response_headers_to_add"]
            .as_array_mut()
            .expect("headers")
            .extend([
                json!({"header": {"key": "content-type", "value": "text/html"}}),
                json!({"header": {"key": "x-seen-cookie", "value": "%REQ(cookie)%"}}),
                json!({"header": {"key": "cache-control", "value": "no-store"}}),
            ]);
    }
    config
}

/// What each of the page's fetches carried as its `canary-id` cookie
/// (`None`: none), from the DOM Chromium dumped after loading `url`.
fn browse(chromium: &PathBuf, url: &str) -> Vec<Option<String>> {
    let profile = std::env::temp_dir().join(format!(
        "canary-chromium-{}-{}",
        std::process::id(),
        url.len() ^ url.bytes().map(usize::from).sum::<usize>()
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--host-resolver-rules=MAP backend 127.0.0.1, MAP plain.test 127.0.0.1",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    let dom = String::from_utf8_lossy(&out.stdout);
    let pre = dom
        .split_once("<pre id=\"seen\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map_or("", |(pre, _)| pre);
    let seen: Vec<Option<String>> = pre
        .lines()
        .flat_map(|l| l.split("seen[").skip(1))
        .map(|rest| {
            let cookies = rest.split(']').next().unwrap_or("");
            cookies
                .split("; ")
                .find_map(|c| c.strip_prefix("canary-id="))
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        seen.len(),
        FETCHES,
        "{url}: the page's fetches did not all report:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    seen
}

#[test]
fn a_browser_drops_a_secure_cookie_over_http_off_localhost_and_the_filter_counts_it() {
    let Some(chromium) = chromium() else {
        eprintln!(
            "\n*** SKIPPED: no Chromium (set CHROMIUM or install Debian's `chromium`; \
             scripts/setup.sh does): the real-browser cookie test did not run ***\n"
        );
        return;
    };
    let build = Build::from_env();
    let envoy = or_panic(Envoy::start(config(), &EnvoyOptions::default()));
    let addr = or_panic(envoy.addr(10000));
    let port = addr.port();
    let counted = || {
        or_panic(envoy.stats()).get(&format!(
            "{}canary_router.secure_cookie_over_http",
            build.stat_prefix()
        ))
    };

    // Not localhost, Secure: dropped every time; each request a new key.
    let seen = browse(&chromium, &format!("http://backend:{port}/"));
    assert!(
        seen.iter().all(Option::is_none),
        "a Secure cookie over http came back: {seen:?}"
    );
    if build == Build::Wasm {
        // The page, each fetch, and the browser's own `/favicon.ico`.
        let n = counted();
        assert!(
            n > FETCHES as u64,
            "{n}: the page and each fetch got a new Secure cookie over http"
        );
    }

    // localhost, Secure + SameSite=None + Partitioned: kept, one key.
    let before = counted();
    let seen = browse(&chromium, &format!("http://localhost:{port}/"));
    let key = seen[0]
        .clone()
        .expect("localhost keeps the Secure, Partitioned cookie");
    assert!(seen.iter().all(|k| k.as_ref() == Some(&key)), "{seen:?}");
    if build == Build::Wasm {
        assert_eq!(counted() - before, 1, "one cookie issued, for the page");
    }

    // The control: without Secure, another name keeps it too.
    let seen = browse(&chromium, &format!("http://plain.test:{port}/"));
    let key = seen[0].clone().expect("a plain cookie is kept");
    assert!(seen.iter().all(|k| k.as_ref() == Some(&key)), "{seen:?}");
}
