//! The sticky cookie the filter issues (`sticky.setCookie`): the checks of
//! its name and attributes, the `Set-Cookie` value rendered once per
//! configuration, and the random keys it carries.
//!
//! A request of such a rule that brings no usable cookie gets a fresh key
//! of 128 random bits from the host (WASI `random_get`), is routed by the
//! same weighted rendezvous hash as a key it had brought, and its response
//! gets one `Set-Cookie` header. The key is random: it holds no personal
//! data, and names a user to nobody but the rule's hash.

use alloc::{boxed::Box, string::String, string::ToString};

use crate::schema::config;
use crate::schema::error::{ConfigError, Reason};
use crate::schema::limits::{MAX_COOKIE_AGE_SECS, MAX_NAME_LEN};

/// Length of an issued key: 128 bits in 22 characters of the URL-safe
/// base64 alphabet (RFC 4648 §5, no padding), all of them cookie octets.
pub const KEY_LEN: usize = 22;

/// A brought cookie value longer than this is not used as a key: the
/// filter issues a fresh one, which replaces it in the browser.
pub const MAX_KEY_LEN: usize = 1024;

/// The longest `Set-Cookie` value (name, key and every attribute at their
/// limits fit), so the response path renders it in a stack buffer.
pub const MAX_SET_COOKIE_LEN: usize = 1024;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A key the filter issued: what the cookie carries and what the pick hashes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// The key for 128 random bits.
    pub fn from_bits(bits: [u8; 16]) -> Self {
        let mut v = u128::from_le_bytes(bits);
        let mut out = [0u8; KEY_LEN];
        for c in &mut out {
            // The index is below 64: the low six bits.
            *c = ALPHABET.get((v & 63) as usize).copied().unwrap_or(b'A');
            v >>= 6;
        }
        Key(out)
    }

    /// The key's characters.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl core::fmt::Debug for Key {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(core::str::from_utf8(&self.0).unwrap_or("?"))
    }
}

/// Whether a cookie value a request brought can serve as its key: any
/// value, issued by the filter or not, from 1 to [`MAX_KEY_LEN`] bytes
/// (an empty or longer one is replaced by a fresh key).
#[inline]
pub fn usable(value: &[u8]) -> bool {
    (1..=MAX_KEY_LEN).contains(&value.len())
}

/// How a rule issues its cookie: the `Set-Cookie` value with a slot for
/// the key, rendered once.
#[derive(Clone, PartialEq, Eq)]
pub struct Issuer {
    /// `name=<KEY_LEN bytes>; Max-Age=...; Path=...; ...`
    template: Box<[u8]>,
    /// Where the key goes in `template`.
    key_at: usize,
    /// The cookie is `Secure`: a browser keeps it only from an `https`
    /// page (or `localhost`).
    secure: bool,
}

impl core::fmt::Debug for Issuer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.template))
    }
}

impl Issuer {
    /// The `Set-Cookie` value carrying `key`, in `buf`.
    #[inline]
    pub fn render<'b>(&self, key: &Key, buf: &'b mut [u8; MAX_SET_COOKIE_LEN]) -> &'b [u8] {
        let n = self.template.len();
        let Some(out) = buf.get_mut(..n) else {
            return &[];
        };
        out.copy_from_slice(&self.template);
        if let Some(slot) = out.get_mut(self.key_at..self.key_at + KEY_LEN) {
            slot.copy_from_slice(key.as_bytes());
        }
        out
    }

    /// Whether the cookie is `Secure`: a browser drops it when it arrives
    /// on an `http` page of a host other than `localhost`.
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The attributes after the key (`; Max-Age=...; Path=/; ...`).
    pub fn attributes(&self) -> &str {
        core::str::from_utf8(
            self.template
                .get(self.key_at + KEY_LEN..)
                .unwrap_or_default(),
        )
        .unwrap_or_default()
    }
}

/// Whether `name` is an RFC 6265 `token` (RFC 2616 §2.2): visible ASCII
/// but the separators.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && crate::domain::text::all_bytes(name, |b| {
            b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b)
        })
}

/// Checks `setCookie` of a rule sticky by cookie `name` and renders its
/// header. `path` is the JSON path of the `sticky` block.
#[inline(never)]
pub fn compile(name: &str, c: &config::SetCookie, path: &str) -> Result<Issuer, ConfigError> {
    if !is_token(name) || name.len() > MAX_NAME_LEN {
        return Err(ConfigError::at(
            path,
            "cookie",
            Reason::BadCookieName(name.to_string()),
        ));
    }
    let mut t = String::with_capacity(128);
    t.push_str(name);
    t.push('=');
    let key_at = t.len();
    for _ in 0..KEY_LEN {
        t.push('A');
    }
    if let Some(age) = c.max_age {
        if !(1..=MAX_COOKIE_AGE_SECS).contains(&age) {
            return Err(ConfigError::at(
                path,
                "setCookie.maxAge",
                Reason::BadMaxAge(age),
            ));
        }
        t.push_str("; Max-Age=");
        t.push_str(&age.to_string());
    }
    if let Some(domain) = &c.domain {
        let d = domain.strip_prefix('.').unwrap_or(domain);
        if d.is_empty()
            || d.starts_with('*')
            || d.len() > MAX_NAME_LEN
            || !crate::domain::hosts::valid_host(d)
        {
            return Err(ConfigError::at(
                path,
                "setCookie.domain",
                Reason::BadHost(domain.clone()),
            ));
        }
        t.push_str("; Domain=");
        t.push_str(d);
    }
    let cookie_path = c.path.as_deref().unwrap_or("/");
    if !cookie_path.starts_with('/')
        || cookie_path.len() > MAX_NAME_LEN
        || !crate::domain::text::all_bytes(cookie_path, |b| !b.is_ascii_control() && b != b';')
    {
        return Err(ConfigError::at(
            path,
            "setCookie.path",
            Reason::BadCookiePath(cookie_path.to_string()),
        ));
    }
    t.push_str("; Path=");
    t.push_str(cookie_path);
    let secure = c.secure.unwrap_or(false);
    if secure {
        t.push_str("; Secure");
    }
    if c.http_only.unwrap_or(true) {
        t.push_str("; HttpOnly");
    }
    let same_site = c.same_site.as_deref().unwrap_or("Lax");
    if !["Strict", "Lax", "None"].contains(&same_site) {
        return Err(ConfigError::at(
            path,
            "setCookie.sameSite",
            Reason::BadSameSite(same_site.to_string()),
        ));
    }
    t.push_str("; SameSite=");
    t.push_str(same_site);
    // CHIPS: a partitioned cookie, like a `SameSite=None` one, is stored
    // only if it is `Secure`.
    let partitioned = c.partitioned.unwrap_or(false);
    if partitioned {
        t.push_str("; Partitioned");
    }
    let needs_secure = if same_site == "None" {
        Some(("setCookie.sameSite", "sameSite: None"))
    } else {
        partitioned.then_some(("setCookie.partitioned", "partitioned: true"))
    };
    if let (Some((field, what)), false) = (needs_secure, secure) {
        return Err(ConfigError::at(path, field, Reason::NeedsSecure(what)));
    }
    if t.len() > MAX_SET_COOKIE_LEN {
        return Err(ConfigError::at(
            path,
            "setCookie",
            Reason::TooMany {
                what: "bytes in the Set-Cookie header",
                limit: MAX_SET_COOKIE_LEN,
            },
        ));
    }
    Ok(Issuer {
        template: t.into_bytes().into_boxed_slice(),
        key_at,
        secure,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::schema::error::ConfigErrorKind;

    fn issuer(json: &str) -> Result<Issuer, ConfigError> {
        let c: config::SetCookie = crate::domain::plugin::parse(json.as_bytes())?;
        compile("canary-id", &c, "s")
    }

    fn rendered(i: &Issuer, key: &Key) -> String {
        let mut buf = [0u8; MAX_SET_COOKIE_LEN];
        String::from_utf8(i.render(key, &mut buf).to_vec()).unwrap()
    }

    #[test]
    fn keys_are_128_bits_of_cookie_octets() {
        let a = Key::from_bits([0; 16]);
        let b = Key::from_bits([0xff; 16]);
        assert_eq!(a.as_bytes(), b"AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(b.as_bytes(), b"_____________________D");
        let c = Key::from_bits(*b"0123456789abcdef");
        assert!(c
            .as_bytes()
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_'));
        // Every bit counts: flipping any one changes the key.
        for bit in 0..128 {
            let mut bits = *b"0123456789abcdef";
            bits[bit / 8] ^= 1 << (bit % 8);
            assert_ne!(Key::from_bits(bits), c, "bit {bit}");
        }
    }

    #[test]
    fn defaults_and_every_attribute() {
        let key = Key::from_bits([7; 16]);
        let k = core::str::from_utf8(key.as_bytes()).unwrap().to_string();
        assert_eq!(
            rendered(&issuer("{}").unwrap(), &key),
            format!("canary-id={k}; Path=/; HttpOnly; SameSite=Lax")
        );
        let all = issuer(
            r#"{"maxAge":604800,"path":"/shop","httpOnly":false,"secure":true,"sameSite":"None","domain":"example.com"}"#,
        )
        .unwrap();
        assert_eq!(
            rendered(&all, &key),
            format!("canary-id={k}; Max-Age=604800; Domain=example.com; Path=/shop; Secure; SameSite=None")
        );
        assert_eq!(
            all.attributes(),
            "; Max-Age=604800; Domain=example.com; Path=/shop; Secure; SameSite=None"
        );
        assert!(all.secure());
        assert!(!issuer("{}").unwrap().secure());
        let chips = issuer(r#"{"secure":true,"sameSite":"None","partitioned":true}"#).unwrap();
        assert_eq!(
            chips.attributes(),
            "; Path=/; Secure; HttpOnly; SameSite=None; Partitioned"
        );
        let off = issuer(r#"{"secure":true,"partitioned":false}"#).unwrap();
        assert_eq!(off.attributes(), "; Path=/; Secure; HttpOnly; SameSite=Lax");
    }

    #[test]
    fn refuses_what_browsers_refuse() {
        let reason = |json: &str| match issuer(json).map_err(ConfigError::into_kind) {
            Err(ConfigErrorKind::Invalid { path, reason }) => (path, reason),
            other => panic!("{json}: {other:?}"),
        };
        assert_eq!(
            reason(r#"{"sameSite":"None"}"#),
            (
                "s.setCookie.sameSite".into(),
                Reason::NeedsSecure("sameSite: None")
            )
        );
        // CHIPS: browsers store a partitioned cookie only if it is Secure.
        assert_eq!(
            reason(r#"{"partitioned":true}"#),
            (
                "s.setCookie.partitioned".into(),
                Reason::NeedsSecure("partitioned: true")
            )
        );
        assert_eq!(
            reason(r#"{"partitioned":true,"secure":false,"sameSite":"Strict"}"#).0,
            "s.setCookie.partitioned"
        );
        assert_eq!(
            reason(r#"{"sameSite":"lax"}"#),
            (
                "s.setCookie.sameSite".into(),
                Reason::BadSameSite("lax".into())
            )
        );
        for age in [0, -1, MAX_COOKIE_AGE_SECS + 1] {
            assert_eq!(
                reason(&format!(r#"{{"maxAge":{age}}}"#)),
                ("s.setCookie.maxAge".into(), Reason::BadMaxAge(age))
            );
        }
        assert!(issuer(&format!(r#"{{"maxAge":{MAX_COOKIE_AGE_SECS}}}"#)).is_ok());
        assert_eq!(reason(r#"{"path":"shop"}"#).0, "s.setCookie.path");
        assert_eq!(reason(r#"{"path":"/a;b"}"#).0, "s.setCookie.path");
        assert_eq!(reason(r#"{"domain":"a b"}"#).0, "s.setCookie.domain");
        assert_eq!(reason(r#"{"domain":""}"#).0, "s.setCookie.domain");
        for bad in [
            "a b", "a;b", "a=b", "a,b", "a/b", "a\"b", "(a)", "a:b", "", "é",
        ] {
            let c = config::SetCookie::default();
            assert_eq!(
                compile(bad, &c, "s"),
                Err(ConfigError::invalid(
                    "s.cookie",
                    Reason::BadCookieName(bad.into())
                )),
                "{bad:?}"
            );
        }
        assert!(compile(
            "__Host-canary.id!#$%&'*+^`|~",
            &config::SetCookie::default(),
            "s"
        )
        .is_ok());
    }

    #[test]
    fn what_is_usable_as_a_key() {
        assert!(!usable(b""));
        assert!(usable(b"x"));
        assert!(usable(b"not-from-the-alphabet \xff\"quoted\""));
        assert!(usable(&[b'a'; MAX_KEY_LEN]));
        assert!(!usable(&[b'a'; MAX_KEY_LEN + 1]));
    }

    #[test]
    fn set_cookie_needs_a_cookie_key_and_is_named_by_path() {
        let rules = |sticky: &str| {
            format!(
                r#"{{"services":[{{"hosts":["a"],"http":[{{"route":[{{"destination":{{"cluster":"c"}}}}],"sticky":{sticky}}}]}}]}}"#
            )
        };
        let err = |sticky: &str| {
            crate::Plugin::from_bytes(rules(sticky).as_bytes(), &crate::Workload::default())
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(r#"{"header":"x-user","setCookie":{}}"#),
            "services[0].http[0].sticky.setCookie: `setCookie` needs `cookie`: it issues the cookie the rule is sticky by"
        );
        assert!(err(
            r#"{"cookie":"k","setCookie":{"secure":true,"sameSite":"None","maxAge":99999999999}}"#
        )
        .starts_with("services[0].http[0].sticky.setCookie.maxAge: maxAge 99999999999 is outside"));
        assert!(err(r#"{"cookie":"k","setCookie":{"sameSit":"Lax"}}"#)
            .starts_with("services[0].http[0].sticky.setCookie.sameSit: unknown field `sameSit`, expected one of `maxAge`, `path`, `httpOnly`, `secure`, `sameSite`, `domain`"));
        let ok = crate::Plugin::from_bytes(
            rules(r#"{"cookie":"k","setCookie":{}}"#).as_bytes(),
            &crate::Workload::default(),
        )
        .unwrap();
        let set = ok.rules.unwrap().set;
        let route = &set.services()[0].rules[0].route;
        assert_eq!(
            route.issuer().unwrap().attributes(),
            "; Path=/; HttpOnly; SameSite=Lax"
        );
    }
}
