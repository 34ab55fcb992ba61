//! Documented bounds of a rule set. A rule set over any of them is rejected
//! whole with an error naming the field; at the bounds the per-request cost
//! stays flat (see `docs/benchmarks.md`).

/// Largest configuration or rule file, in bytes.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Most services in one rule set.
pub const MAX_SERVICES: usize = 1000;
/// Most hosts in one service.
pub const MAX_HOSTS_PER_SERVICE: usize = 100;
/// Most rules (`http` entries) in one rule set, across services.
pub const MAX_RULES: usize = 5000;
/// Most match entries in one rule.
pub const MAX_MATCHES_PER_RULE: usize = 64;
/// Most conditions (headers, query params, labels) in one match entry.
pub const MAX_CONDITIONS_PER_MATCH: usize = 64;
/// Most destinations in one route.
pub const MAX_DESTINATIONS: usize = 64;
/// Largest weight of one destination (1-in-a-million canaries are possible).
pub const MAX_WEIGHT: i64 = 1_000_000;
/// Longest regular expression, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// Largest compiled regex program, in bytes, as the regex engine measures
/// it (`filter_runtime::regex::Options::size_limit`: 32 bytes for each
/// instruction and each distinct class, near regex-lite's own measure).
/// Bounds compile time and memory, and the cost of one match, which grows
/// with program size × input length (a 1,024-byte literal compiles to about
/// 33 KiB).
pub const MAX_REGEX_PROGRAM_BYTES: usize = 64 * 1024;
/// Longest value a regex is matched against, in bytes: a longer value never
/// matches a regex, so that no client can make one match cost more than
/// `MAX_REGEX_PROGRAM_BYTES` × this (`exact` and `prefix` have no such bound:
/// their cost is linear and small).
pub const MAX_REGEX_INPUT_BYTES: usize = 4096;
/// The most instructions one regex match visits, over all the bytes of the
/// value (the engine visits each instruction at most once per byte): a
/// match that needs more does not match (`filter_runtime::regex::Options::step_limit`), as a value over
/// `MAX_REGEX_INPUT_BYTES` does not. Ordinary patterns visit a few
/// instructions per byte (`.*Mobile.*`: a few tens of thousands on 4 KiB);
/// only patterns built to keep hundreds of instructions alive on every byte
/// reach it. It bounds the cost of one match in the `.wasm` at about 40
/// million wasm instructions, whatever the pattern
/// (`test-harness/wasm-host/tests/host_regex_budget.rs`).
pub const MAX_REGEX_STEPS: usize = 1 << 18;
/// Deepest nesting of groups and repetitions in one regex.
pub const MAX_REGEX_NESTING: u32 = 32;
/// Longest name (rule, destination label, header name), in bytes.
pub const MAX_NAME_LEN: usize = 256;
/// The largest `sticky.setCookie.maxAge`, in seconds: 400 days, the most
/// browsers keep a cookie (RFC 6265bis caps `Max-Age` there).
pub const MAX_COOKIE_AGE_SECS: i64 = 400 * 24 * 3600;
/// Shortest poll interval of a rule source, in milliseconds.
pub const MIN_POLL_INTERVAL_MS: u64 = 500;
/// Longest poll interval of a rule source, in milliseconds.
pub const MAX_POLL_INTERVAL_MS: u64 = 3_600_000;
/// Shortest fetch timeout, in milliseconds.
pub const MIN_FETCH_TIMEOUT_MS: u64 = 100;
/// Longest fetch timeout, in milliseconds.
pub const MAX_FETCH_TIMEOUT_MS: u64 = 60_000;
/// Most steps in one `ramp`.
pub const MAX_RAMP_STEPS: usize = 64;
