//! SMART Backend Services (<https://hl7.org/fhir/smart-app-launch/backend-services.html>), the
//! pure parts: scopes (what a scope allows, what a client is granted) and the client
//! assertion (the signed JWT a client authenticates with). No store, no clock: the caller
//! passes the client's registered keys and the time. The token endpoint is [`super::token`].

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};
use thiserror::Error;

/// The scope of the `/admin` endpoints. It is not a SMART resource scope (`system/*.*` does
/// not include it): a client has it only when registered with it and asking for it.
pub const ADMIN_SCOPE: &str = "gerbang.admin";

/// `client_assertion_type` of a signed-JWT client assertion (RFC 7523).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The signature algorithms accepted: SMART requires servers to support RS384 and ES384;
/// RS256 and ES256 are common in client libraries and as strong for this purpose.
pub const ALGORITHMS: [Algorithm; 4] = [
    Algorithm::RS384,
    Algorithm::ES384,
    Algorithm::RS256,
    Algorithm::ES256,
];

/// An assertion may be valid for at most five minutes (SMART: `exp` "no more than five
/// minutes in the future").
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 300;

/// Clocks of client and server differ a little: an `exp` this much further than five minutes
/// ahead, or an `nbf` this much in the future, is still accepted. Never applied to expiry.
pub const CLOCK_SKEW_SECS: i64 = 30;

/// The longest `jti` kept for replay protection.
const MAX_JTI_LEN: usize = 255;

// ------------------------------------------------------------------------------------ scopes

/// Permissions as SMART v2 letters: create, read, update, delete, search. SMART v1 `read` is
/// read + search, `write` is create + update + delete, `*` is all of them.
const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
const ALL: u8 = C | R | U | D | S;

/// A SMART resource scope `<context>/<resource type or *>.<permissions>`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Resource<'a> {
    context: &'a str,
    resource: &'a str,
    perms: u8,
    /// The permissions as written (`read`, `*`, `rs` …), to render a granted scope the way
    /// it was asked for.
    text: &'a str,
}

fn parse(scope: &str) -> Option<Resource<'_>> {
    let (context, rest) = scope.split_once('/')?;
    let (resource, text) = rest.rsplit_once('.')?;
    if context.is_empty()
        || !context.chars().all(|c| c.is_ascii_lowercase())
        || resource.is_empty()
        || !(resource == "*" || resource.chars().all(|c| c.is_ascii_alphanumeric()))
    {
        return None;
    }
    let perms = match text {
        "read" => R | S,
        "write" => C | U | D,
        "*" => ALL,
        letters if !letters.is_empty() => {
            let mut perms = 0;
            for ch in letters.chars() {
                let bit = match ch {
                    'c' => C,
                    'r' => R,
                    'u' => U,
                    'd' => D,
                    's' => S,
                    _ => return None,
                };
                if perms & bit != 0 {
                    return None;
                }
                perms |= bit;
            }
            perms
        }
        _ => return None,
    };
    Some(Resource {
        context,
        resource,
        perms,
        text,
    })
}

fn letters(perms: u8) -> String {
    [(C, 'c'), (R, 'r'), (U, 'u'), (D, 'd'), (S, 's')]
        .iter()
        .filter(|(bit, _)| perms & bit != 0)
        .map(|(_, ch)| ch)
        .collect()
}

/// Does holding `granted` allow what `needed` names? `system/Bundle.read` is allowed by
/// itself, `system/*.read`, `system/*.*`, `system/Bundle.*` (and the SMART v2 forms such as
/// `system/*.rs`). Scopes outside the SMART grammar (such as [`ADMIN_SCOPE`]) only by
/// themselves.
pub fn allows(granted: &str, needed: &str) -> bool {
    if granted == needed {
        return true;
    }
    match (parse(granted), parse(needed)) {
        (Some(g), Some(n)) => {
            g.context == n.context
                && (g.resource == "*" || g.resource == n.resource)
                && g.perms & n.perms == n.perms
        }
        _ => false,
    }
}

/// What a client is granted: the intersection of the scopes it asks for and those it is
/// registered with. Asking for `system/*.read` when registered with `system/Bundle.read`
/// grants `system/Bundle.read`; asking for `system/Bundle.read` when registered with
/// `system/*.*` grants `system/Bundle.read`.
pub fn grant(requested: &[String], registered: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: String| {
        if !out.contains(&s) {
            out.push(s);
        }
    };
    for r in requested {
        for g in registered {
            if r == g {
                add(r.clone());
                continue;
            }
            let (Some(pr), Some(pg)) = (parse(r), parse(g)) else {
                continue;
            };
            if pr.context != pg.context {
                continue;
            }
            let resource = match (pr.resource, pg.resource) {
                ("*", other) | (other, "*") => other,
                (a, b) if a == b => a,
                _ => continue,
            };
            let perms = pr.perms & pg.perms;
            if perms == 0 {
                continue;
            }
            let text = if perms == pr.perms {
                pr.text.to_string()
            } else if perms == pg.perms {
                pg.text.to_string()
            } else {
                letters(perms)
            };
            add(format!("{}/{resource}.{text}", pr.context));
        }
    }
    out
}

/// A scope an operator may register a client with: a system-level SMART resource scope, or
/// [`ADMIN_SCOPE`].
pub fn check_registrable(scope: &str) -> Result<(), String> {
    if scope == ADMIN_SCOPE {
        return Ok(());
    }
    match parse(scope) {
        Some(r) if r.context == "system" => Ok(()),
        Some(r) => Err(format!(
            "`{scope}`: backend services clients get `system/` scopes, not `{}/`",
            r.context
        )),
        None => Err(format!(
            "`{scope}` is not a scope gerbang knows: use system/<ResourceType or *>.<read|write|*> \
             (or SMART v2 letters such as .rs), or {ADMIN_SCOPE}"
        )),
    }
}

/// Scopes from a space-separated text, each once, in order.
pub fn parse_scope_list(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in text.split_whitespace() {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    out
}

// ---------------------------------------------------------------------- the client assertion

/// Why a client assertion is refused: the `error_description` of an `invalid_client` answer,
/// precise enough for the client's developer to fix it.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum AssertionError {
    #[error("client_assertion is not a signed JWT: {0}")]
    Malformed(String),
    #[error(
        "the assertion is signed with {0}; gerbang accepts RS384 or ES384 (also RS256 and ES256)"
    )]
    Algorithm(String),
    #[error("the assertion has no `{0}` claim")]
    Missing(&'static str),
    #[error("the `{0}` claim has the wrong type: {1}")]
    Type(&'static str, &'static str),
    #[error(
        "the assertion's header has no `kid`, and client `{client}` has {keys} keys registered: name the key"
    )]
    NoKid { client: String, keys: usize },
    #[error(
        "unknown kid `{kid}`: client `{client}` has no key with this id registered (registered: {known})"
    )]
    UnknownKid {
        kid: String,
        client: String,
        known: String,
    },
    #[error("key `{kid}` cannot verify {alg}: {why}")]
    KeyMismatch {
        kid: String,
        alg: String,
        why: String,
    },
    #[error(
        "bad signature: the assertion does not verify with key `{0}` (tampered, or signed with another key)"
    )]
    BadSignature(String),
    #[error("`sub` ({sub}) must equal `iss` ({iss}), the client_id")]
    SubMismatch { iss: String, sub: String },
    #[error("aud mismatch: the assertion is for {got}, but this token endpoint is {expected}")]
    Audience { got: String, expected: String },
    #[error("the assertion expired at {exp} (now {now}, Unix seconds); sign a new one")]
    Expired { exp: i64, now: i64 },
    #[error(
        "the assertion's exp ({exp}) is more than five minutes after now ({now}, Unix seconds); assertions must be short-lived"
    )]
    TooLong { exp: i64, now: i64 },
    #[error("the assertion is not valid before {nbf} (now {now}, Unix seconds)")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the `jti` must be a non-empty string of at most {MAX_JTI_LEN} characters")]
    BadJti,
}

/// A client assertion whose signature and claims are good. Its `jti` still has to be
/// recorded (once only) before a token is issued.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub client_id: String,
    pub jti: String,
    /// Unix seconds.
    pub exp: i64,
}

/// The client an assertion claims to come from (its `iss`), read WITHOUT checking the
/// signature: only to find the keys to check it with. Refuses early what can never verify.
pub fn claimed_client(assertion: &str) -> Result<String, AssertionError> {
    accepted_algorithm(assertion)?;
    let data = jsonwebtoken::dangerous::insecure_decode::<Map<String, Value>>(assertion)
        .map_err(|e| AssertionError::Malformed(format!("its claims cannot be read ({e})")))?;
    string_claim(&data.claims, "iss")
}

/// Check an assertion of `client_id` against the client's registered keys: the signature
/// (key chosen by `kid`, or the only key), then the claims — `iss` = `sub` = client_id, `aud`
/// = `token_url`, `exp` in the future and at most five minutes ahead, `nbf` if present, a
/// `jti`. `now` in Unix seconds.
pub fn verify(
    assertion: &str,
    jwks: &JwkSet,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Verified, AssertionError> {
    let (alg, kid) = accepted_algorithm(assertion)?;
    let (kid, jwk) = choose_key(jwks, kid.as_deref(), client_id, alg)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| AssertionError::KeyMismatch {
        kid: kid.clone(),
        alg: format!("{alg:?}"),
        why: format!("the registered key is unusable ({e})"),
    })?;
    // The signature only: the claims are checked below, against the time passed in.
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    let data =
        jsonwebtoken::decode::<Map<String, Value>>(assertion, &key, &validation).map_err(|e| {
            match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    AssertionError::BadSignature(kid.clone())
                }
                jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_)
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidKeyFormat => {
                    AssertionError::KeyMismatch {
                        kid: kid.clone(),
                        alg: format!("{alg:?}"),
                        why: e.to_string(),
                    }
                }
                // A signature that is not even well-formed is a bad signature too.
                jsonwebtoken::errors::ErrorKind::Base64(_) => {
                    AssertionError::BadSignature(kid.clone())
                }
                _ => AssertionError::Malformed(e.to_string()),
            }
        })?;
    check_claims(&data.claims, client_id, token_url, now)
}

/// The algorithm and `kid` of an assertion's header; an algorithm not in [`ALGORITHMS`] is
/// refused.
fn accepted_algorithm(assertion: &str) -> Result<(Algorithm, Option<String>), AssertionError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| AssertionError::Malformed(format!("its header cannot be read ({e})")))?;
    if !ALGORITHMS.contains(&header.alg) {
        return Err(AssertionError::Algorithm(format!("{:?}", header.alg)));
    }
    Ok((header.alg, header.kid))
}

/// The registered key an assertion names: by `kid`, or the only one when there is no `kid`;
/// it must be able to verify `alg`.
fn choose_key<'k>(
    jwks: &'k JwkSet,
    kid: Option<&str>,
    client_id: &str,
    alg: Algorithm,
) -> Result<(String, &'k Jwk), AssertionError> {
    let candidates: Vec<&Jwk> = match kid {
        Some(kid) => jwks
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid))
            .collect(),
        None if jwks.keys.len() == 1 => jwks.keys.iter().collect(),
        None => {
            return Err(AssertionError::NoKid {
                client: client_id.to_string(),
                keys: jwks.keys.len(),
            });
        }
    };
    let name = kid.unwrap_or("(the only key)").to_string();
    if candidates.is_empty() {
        let known: Vec<&str> = jwks
            .keys
            .iter()
            .filter_map(|k| k.common.key_id.as_deref())
            .collect();
        return Err(AssertionError::UnknownKid {
            kid: name,
            client: client_id.to_string(),
            known: if known.is_empty() {
                "keys without kid".into()
            } else {
                known.join(", ")
            },
        });
    }
    let mut why = String::new();
    for k in candidates {
        match key_fits(k, alg) {
            Ok(()) => return Ok((name, k)),
            Err(w) => why = w,
        }
    }
    Err(AssertionError::KeyMismatch {
        kid: name,
        alg: format!("{alg:?}"),
        why,
    })
}

/// Whether a registered key can verify `alg`: its type and curve, its `alg` and `use` if set.
fn key_fits(k: &Jwk, alg: Algorithm) -> Result<(), String> {
    if k.common.public_key_use == Some(PublicKeyUse::Encryption) {
        return Err("it is registered for encryption (`use`: `enc`)".into());
    }
    if let Some(ka) = k.common.key_algorithm
        && ka.to_string() != format!("{alg:?}")
    {
        return Err(format!("it is registered for {ka}"));
    }
    match (&k.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256 | Algorithm::RS384) => Ok(()),
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256)
            if p.curve == EllipticCurve::P256 =>
        {
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES384)
            if p.curve == EllipticCurve::P384 =>
        {
            Ok(())
        }
        (AlgorithmParameters::EllipticCurve(p), _) => {
            Err(format!("it is an EC key on curve {:?}", p.curve))
        }
        (AlgorithmParameters::RSA(_), _) => Err("it is an RSA key".into()),
        _ => Err("it is not an RSA or EC public key".into()),
    }
}

/// The claims of a correctly signed assertion. Pure: `now` in Unix seconds.
pub fn check_claims(
    claims: &Map<String, Value>,
    client_id: &str,
    token_url: &str,
    now: i64,
) -> Result<Verified, AssertionError> {
    let iss = string_claim(claims, "iss")?;
    let sub = string_claim(claims, "sub")?;
    if iss != client_id || sub != iss {
        return Err(AssertionError::SubMismatch { iss, sub });
    }
    let aud = match claims.get("aud") {
        None => return Err(AssertionError::Missing("aud")),
        Some(Value::String(a)) => vec![a.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or(AssertionError::Type(
                "aud",
                "a string (the token endpoint URL)",
            ))?,
        Some(_) => {
            return Err(AssertionError::Type(
                "aud",
                "a string (the token endpoint URL)",
            ));
        }
    };
    if !aud.iter().any(|a| a == token_url) {
        return Err(AssertionError::Audience {
            got: aud.join(", "),
            expected: token_url.to_string(),
        });
    }
    let exp = time_claim(claims, "exp")?.ok_or(AssertionError::Missing("exp"))?;
    if exp <= now {
        return Err(AssertionError::Expired { exp, now });
    }
    if exp > now + MAX_ASSERTION_LIFETIME_SECS + CLOCK_SKEW_SECS {
        return Err(AssertionError::TooLong { exp, now });
    }
    if let Some(nbf) = time_claim(claims, "nbf")?
        && nbf > now + CLOCK_SKEW_SECS
    {
        return Err(AssertionError::NotYetValid { nbf, now });
    }
    let jti = match claims.get("jti") {
        None => return Err(AssertionError::Missing("jti")),
        Some(Value::String(j)) if !j.is_empty() && j.len() <= MAX_JTI_LEN => j.clone(),
        Some(_) => return Err(AssertionError::BadJti),
    };
    Ok(Verified {
        client_id: iss,
        jti,
        exp,
    })
}

fn string_claim(claims: &Map<String, Value>, name: &'static str) -> Result<String, AssertionError> {
    match claims.get(name) {
        None => Err(AssertionError::Missing(name)),
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        Some(_) => Err(AssertionError::Type(name, "a non-empty string")),
    }
}

/// A NumericDate claim (seconds; a fraction is dropped).
fn time_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, AssertionError> {
    match claims.get(name) {
        None => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map(Some)
            .ok_or(AssertionError::Type(name, "a NumericDate (Unix seconds)")),
        Some(_) => Err(AssertionError::Type(name, "a NumericDate (Unix seconds)")),
    }
}

/// Check a JWK Set an operator registers: public RSA or EC keys (P-256, P-384) only, usable,
/// each with a `kid` when there are several.
pub fn check_jwks(jwks: &Value) -> Result<JwkSet, String> {
    let keys = jwks
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("a JWK Set is an object {\"keys\": [...]}")?;
    if keys.is_empty() {
        return Err("the JWK Set has no keys".into());
    }
    for (i, k) in keys.iter().enumerate() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            if k.get(private).is_some() {
                return Err(format!(
                    "key {i} contains private or secret material (`{private}`): register the public key only"
                ));
            }
        }
    }
    let set: JwkSet =
        serde_json::from_value(jwks.clone()).map_err(|e| format!("not a JWK Set: {e}"))?;
    for (i, k) in set.keys.iter().enumerate() {
        let name = k.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
        let usable = ALGORITHMS.iter().any(|alg| key_fits(k, *alg).is_ok());
        if !usable {
            return Err(format!(
                "key {name} cannot verify any accepted algorithm (RS384, ES384, RS256, ES256)"
            ));
        }
        DecodingKey::from_jwk(k).map_err(|e| format!("key {name} is unusable: {e}"))?;
        if set.keys.len() > 1 && k.common.key_id.is_none() {
            return Err(format!(
                "key {name} has no `kid`: with several keys, each needs one"
            ));
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_scope_is_allowed_by_itself_and_by_wildcards() {
        let need = "system/Bundle.read";
        for g in [
            "system/Bundle.read",
            "system/*.read",
            "system/*.*",
            "system/Bundle.*",
            "system/*.rs",
            "system/Bundle.cruds",
        ] {
            assert!(allows(g, need), "{g} should allow {need}");
        }
        for g in [
            "system/Patient.read",
            "system/Bundle.write",
            "system/*.write",
            "system/*.r",
            "user/*.*",
            "patient/Bundle.read",
            ADMIN_SCOPE,
            "system/Bundle",
        ] {
            assert!(!allows(g, need), "{g} should not allow {need}");
        }
    }

    #[test]
    fn the_admin_scope_is_only_allowed_by_itself() {
        assert!(allows(ADMIN_SCOPE, ADMIN_SCOPE));
        for g in ["system/*.*", "system/*.read", "*", "gerbang.*"] {
            assert!(!allows(g, ADMIN_SCOPE), "{g}");
        }
    }

    #[test]
    fn a_grant_is_the_intersection_of_requested_and_registered() {
        let registered = v(&["system/*.read", "system/Bundle.read"]);
        assert_eq!(
            grant(&v(&["system/Bundle.read"]), &registered),
            v(&["system/Bundle.read"])
        );
        // Broader than registered: narrowed to what is registered.
        assert_eq!(
            grant(&v(&["system/*.*"]), &v(&["system/Bundle.read"])),
            v(&["system/Bundle.read"])
        );
        assert_eq!(
            grant(&v(&["system/*.read"]), &v(&["system/Patient.*"])),
            v(&["system/Patient.read"])
        );
        assert_eq!(
            grant(&v(&["system/*.rs"]), &v(&["system/*.read"])),
            v(&["system/*.rs"])
        );
        // Nothing in common.
        assert!(grant(&v(&["system/Patient.write"]), &registered).is_empty());
        assert!(grant(&v(&[ADMIN_SCOPE]), &registered).is_empty());
        assert!(grant(&v(&["system/*.*"]), &v(&[ADMIN_SCOPE])).is_empty());
        assert_eq!(
            grant(&v(&[ADMIN_SCOPE, "system/Bundle.read"]), &v(&[ADMIN_SCOPE])),
            v(&[ADMIN_SCOPE])
        );
    }

    #[test]
    fn only_system_scopes_and_the_admin_scope_can_be_registered() {
        assert!(check_registrable("system/*.read").is_ok());
        assert!(check_registrable("system/Bundle.rs").is_ok());
        assert!(check_registrable(ADMIN_SCOPE).is_ok());
        assert!(check_registrable("patient/*.read").is_err());
        assert!(check_registrable("system/Bundle.raed").is_err());
        assert!(check_registrable("admin").is_err());
        assert_eq!(parse_scope_list(" a  b a\tc "), v(&["a", "b", "c"]));
    }

    const URL: &str = "https://gerbang.example/auth/token";

    fn claims(extra: Value) -> Map<String, Value> {
        let mut c = json!({
            "iss": "dto-pull", "sub": "dto-pull", "aud": URL, "exp": 1_000_200, "jti": "j-1"
        });
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c.as_object().unwrap().clone()
    }

    fn check(extra: Value) -> Result<Verified, AssertionError> {
        check_claims(&claims(extra), "dto-pull", URL, 1_000_000)
    }

    #[test]
    fn good_claims_pass() {
        assert_eq!(
            check(json!({})).unwrap(),
            Verified {
                client_id: "dto-pull".into(),
                jti: "j-1".into(),
                exp: 1_000_200
            }
        );
        assert!(check(json!({"aud": [URL, "other"]})).is_ok());
        assert!(
            check(json!({"exp": 1_000_330})).is_ok(),
            "within the clock skew"
        );
    }

    #[test]
    fn each_bad_claim_is_named() {
        assert!(matches!(
            check(json!({"exp": 999_999})),
            Err(AssertionError::Expired { .. })
        ));
        assert!(matches!(
            check(json!({"exp": 1_000_000})),
            Err(AssertionError::Expired { .. })
        ));
        assert!(matches!(
            check(json!({"exp": 1_000_331})),
            Err(AssertionError::TooLong { .. })
        ));
        assert_eq!(
            check(json!({"exp": null})),
            Err(AssertionError::Missing("exp"))
        );
        assert!(matches!(
            check(json!({"exp": "soon"})),
            Err(AssertionError::Type("exp", _))
        ));
        let aud = check(json!({"aud": "https://elsewhere/token"})).unwrap_err();
        assert!(matches!(aud, AssertionError::Audience { .. }));
        assert!(aud.to_string().starts_with("aud mismatch"), "{aud}");
        assert_eq!(
            check(json!({"aud": null})),
            Err(AssertionError::Missing("aud"))
        );
        assert!(matches!(
            check(json!({"sub": "someone"})),
            Err(AssertionError::SubMismatch { .. })
        ));
        assert!(matches!(
            check(json!({"iss": "other"})),
            Err(AssertionError::SubMismatch { .. })
        ));
        assert_eq!(
            check(json!({"jti": null})),
            Err(AssertionError::Missing("jti"))
        );
        assert_eq!(check(json!({"jti": ""})), Err(AssertionError::BadJti));
        assert_eq!(
            check(json!({"jti": "x".repeat(300)})),
            Err(AssertionError::BadJti)
        );
        assert!(matches!(
            check(json!({"nbf": 1_000_100})),
            Err(AssertionError::NotYetValid { .. })
        ));
        assert!(check(json!({"nbf": 999_000})).is_ok());
    }

    /// Test-only keys (tests/fixtures/smart/README.md).
    fn test_key(alg: Algorithm) -> jsonwebtoken::EncodingKey {
        match alg {
            Algorithm::RS384 => jsonwebtoken::EncodingKey::from_rsa_pem(include_bytes!(
                "../../tests/fixtures/smart/rsa-test-only.pem"
            ))
            .unwrap(),
            _ => jsonwebtoken::EncodingKey::from_ec_pem(include_bytes!(
                "../../tests/fixtures/smart/ec384-test-only.pem"
            ))
            .unwrap(),
        }
    }

    fn jwk(alg: Algorithm, kid: Option<&str>) -> Jwk {
        let mut k = Jwk::from_encoding_key(&test_key(alg), alg).unwrap();
        k.common.key_id = kid.map(str::to_string);
        k
    }

    fn signed(alg: Algorithm, kid: Option<&str>) -> String {
        let mut h = jsonwebtoken::Header::new(alg);
        h.kid = kid.map(str::to_string);
        let c =
            json!({"iss": "dto-pull", "sub": "dto-pull", "aud": URL, "exp": 1_000_200, "jti": "j"});
        jsonwebtoken::encode(&h, &c, &test_key(alg)).unwrap()
    }

    #[test]
    fn the_signature_is_checked_with_the_key_the_kid_names() {
        let both = JwkSet {
            keys: vec![
                jwk(Algorithm::RS384, Some("rsa-1")),
                jwk(Algorithm::ES384, Some("ec-1")),
            ],
        };
        let ok = |jwt: &str, set: &JwkSet| verify(jwt, set, "dto-pull", URL, 1_000_000);
        assert!(ok(&signed(Algorithm::RS384, Some("rsa-1")), &both).is_ok());
        assert!(ok(&signed(Algorithm::ES384, Some("ec-1")), &both).is_ok());
        assert_eq!(
            claimed_client(&signed(Algorithm::ES384, None)).unwrap(),
            "dto-pull"
        );
        // No kid: fine with one key, ambiguous with two.
        let one = JwkSet {
            keys: vec![jwk(Algorithm::RS384, None)],
        };
        assert!(ok(&signed(Algorithm::RS384, None), &one).is_ok());
        assert!(matches!(
            ok(&signed(Algorithm::RS384, None), &both),
            Err(AssertionError::NoKid { keys: 2, .. })
        ));
        assert!(matches!(
            ok(&signed(Algorithm::RS384, Some("rsa-9")), &both),
            Err(AssertionError::UnknownKid { .. })
        ));
        // The kid of an EC key on an RS384 assertion.
        assert!(matches!(
            ok(&signed(Algorithm::RS384, Some("ec-1")), &both),
            Err(AssertionError::KeyMismatch { .. })
        ));
        // Tampered claims: the signature no longer matches.
        let jwt = signed(Algorithm::ES384, Some("ec-1"));
        let mut parts: Vec<&str> = jwt.split('.').collect();
        let mut h = jsonwebtoken::Header::new(Algorithm::RS384);
        h.kid = Some("rsa-1".into());
        let c = json!({"iss": "dto-pull", "sub": "dto-pull", "aud": URL, "exp": 1_000_200, "jti": "other"});
        let other = jsonwebtoken::encode(&h, &c, &test_key(Algorithm::RS384)).unwrap();
        parts[1] = other.split('.').nth(1).unwrap();
        assert_eq!(
            ok(&parts.join("."), &both),
            Err(AssertionError::BadSignature("ec-1".into()))
        );
    }

    #[test]
    fn registered_key_sets_hold_usable_public_keys() {
        let rsa = json!({"kty": "RSA", "kid": "a", "alg": "RS384", "n": "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw", "e": "AQAB"});
        assert!(check_jwks(&json!({"keys": [rsa.clone()]})).is_ok());
        let mut private = rsa.clone();
        private["d"] = json!("secret");
        assert!(
            check_jwks(&json!({"keys": [private]}))
                .unwrap_err()
                .contains("private")
        );
        let mut no_kid = rsa.clone();
        no_kid.as_object_mut().unwrap().remove("kid");
        assert!(
            check_jwks(&json!({"keys": [rsa, no_kid]}))
                .unwrap_err()
                .contains("kid")
        );
        assert!(check_jwks(&json!({"keys": []})).is_err());
        assert!(check_jwks(&json!([])).is_err());
        let hmac = json!({"kty": "oct", "k": "c2VjcmV0"});
        assert!(check_jwks(&json!({"keys": [hmac]})).is_err());
    }
}
