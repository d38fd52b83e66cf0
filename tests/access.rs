//! Access end to end, against the real binary: only the right clients get in.
//!
//! - facility API keys: none → 401; a key naming another organization → 403; another
//!   facility's receipt → 404; revoked with `gerbang facility revoke` → 401;
//! - SMART Backend Services: `gerbang client add` registers a client's public keys; a good
//!   client assertion gets a bearer token that opens an endpoint needing its scope (the admin
//!   API with `gerbang.admin`); expired, tampered, wrongly addressed, unknown-kid, replayed,
//!   too long-lived assertions and unregistered or revoked clients are refused with the
//!   precise OAuth error; a token without the scope → 403; an expired token → 401.
//!
//! The signing keys are test-only fixtures (tests/fixtures/smart/); their public halves are
//! derived here and registered as a JWK Set.

mod common;

use common::*;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const OTHER_ORG: &str = "1000099999";

/// A gateway on the built-in sandbox, with a config file so the CLI shares its store.
fn config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("gerbang.toml");
    std::fs::write(
        &path,
        format!("data_dir = \"{}\"\n{extra}\n", dir.join("data").display()),
    )
    .unwrap();
    path
}

fn gerbang(config: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(config: &Path, args: &[&str]) -> String {
    let (ok, out, err) = gerbang(config, args);
    assert!(ok, "gerbang {args:?} failed:\n{out}\n{err}");
    out
}

async fn get(url: &str, token: Option<&str>) -> (u16, Value, Option<String>) {
    let mut req = client().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let challenge = r
        .headers()
        .get("WWW-Authenticate")
        .map(|h| h.to_str().unwrap().to_string());
    (status, r.json().await.unwrap_or(Value::Null), challenge)
}

async fn push(
    url: &str,
    key: Option<&str>,
    path_suffix: &str,
    header_org: Option<&str>,
) -> (u16, Value) {
    let mut req = client()
        .post(format!("{url}/ingest/posyandu.balita{path_suffix}"))
        .json(&record(&format!("AC-{}", uuid::Uuid::new_v4().simple())));
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    if let Some(o) = header_org {
        req = req.header("X-Organization-Id", o);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn is_outcome(v: &Value) -> bool {
    v["resourceType"] == "OperationOutcome"
}

#[tokio::test(flavor = "multi_thread")]
async fn facility_keys_push_only_for_their_organization_and_stop_working_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let key_a = add_facility(&cfg, "pkm-a", ORG);
    let key_a2 = add_facility(&cfg, "pkm-a", ORG);
    let key_b = add_facility(&cfg, "pkm-b", OTHER_ORG);
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let url = &gw.url;

    // No key.
    let (status, body) = push(url, None, "", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_outcome(&body), "{body}");

    // Its own organization, named or not.
    let (status, body) = push(url, Some(&key_a), "", None).await;
    assert_eq!(status, 202, "{body}");
    let receipt_a = body["receipt"].as_str().unwrap().to_string();
    let (status, body) = push(url, Some(&key_a), "", Some(ORG)).await;
    assert_eq!(status, 202, "{body}");
    let (status, body) = push(url, Some(&key_a), &format!("?organization={ORG}"), None).await;
    assert_eq!(status, 202, "{body}");

    // Another organization, by header or by query: 403 naming the key's organization.
    for (suffix, header) in [
        (format!("?organization={OTHER_ORG}"), None),
        (String::new(), Some(OTHER_ORG)),
    ] {
        let (status, body) = push(url, Some(&key_a), &suffix, header).await;
        assert_eq!(status, 403, "{body}");
        assert!(is_outcome(&body), "{body}");
        let text = texts(&body);
        assert!(
            text.contains(&format!("organization {ORG}")) && text.contains(OTHER_ORG),
            "{text}"
        );
    }
    // B's key, claiming A's organization.
    let (status, body) = push(url, Some(&key_b), "", Some(ORG)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        texts(&body).contains(&format!("organization {OTHER_ORG}")),
        "{body}"
    );

    // Another facility's receipt is invisible.
    let (status, body, _) = get(&format!("{url}/receipts/{receipt_a}"), Some(&key_b)).await;
    assert_eq!(status, 404, "{body}");
    assert!(is_outcome(&body), "{body}");
    let (status, _, _) = get(&format!("{url}/receipts/{receipt_a}"), Some(&key_a)).await;
    assert_eq!(status, 200);

    // Revoke one key: it is refused at once, the facility's other key still works.
    let out = ok(&cfg, &["facility", "revoke", "--key", &key_a]);
    assert!(out.contains("pkm-a"), "{out}");
    let (status, body) = push(url, Some(&key_a), "", None).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_outcome(&body), "{body}");
    assert!(texts(&body).contains("revoked"), "{body}");
    let (status, body) = push(url, Some(&key_a2), "", None).await;
    assert_eq!(status, 202, "{body}");
    // Revoking it twice is an error that says so.
    let (revoked, _, err) = gerbang(&cfg, &["facility", "revoke", "--key", &key_a]);
    assert!(!revoked && err.contains("already revoked"), "{err}");

    // Revoke every key of a facility.
    let out = ok(&cfg, &["facility", "revoke", "--id", "pkm-a"]);
    assert!(out.contains("revoked 1 key"), "{out}");
    let (status, _) = push(url, Some(&key_a2), "", None).await;
    assert_eq!(status, 401);
    let (status, _, _) = get(&format!("{url}/receipts/{receipt_a}"), Some(&key_a2)).await;
    assert_eq!(status, 401);
    let (status, _) = push(url, Some(&key_b), "", None).await;
    assert_eq!(status, 202, "another facility is not affected");
}

// ------------------------------------------------------------------ SMART Backend Services

struct Key {
    alg: Algorithm,
    kid: &'static str,
    enc: EncodingKey,
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(manifest_dir().join("tests/fixtures/smart").join(name)).unwrap()
}

fn rsa_key() -> Key {
    Key {
        alg: Algorithm::RS384,
        kid: "rsa-1",
        enc: EncodingKey::from_rsa_pem(&fixture("rsa-test-only.pem")).unwrap(),
    }
}

fn ec_key() -> Key {
    Key {
        alg: Algorithm::ES384,
        kid: "ec-1",
        enc: EncodingKey::from_ec_pem(&fixture("ec384-test-only.pem")).unwrap(),
    }
}

/// A key nobody registered, presented under a registered kid.
fn impostor_key() -> Key {
    Key {
        alg: Algorithm::RS384,
        kid: "rsa-1",
        enc: EncodingKey::from_rsa_pem(&fixture("other-rsa-test-only.pem")).unwrap(),
    }
}

/// The public halves of `keys` as a JWK Set file, as an operator registers it.
fn jwks_file(dir: &Path, keys: &[Key]) -> PathBuf {
    let set = JwkSet {
        keys: keys
            .iter()
            .map(|k| {
                let mut jwk = Jwk::from_encoding_key(&k.enc, k.alg).unwrap();
                jwk.common.key_id = Some(k.kid.to_string());
                jwk
            })
            .collect(),
    };
    let path = dir.join("client.jwks.json");
    std::fs::write(&path, serde_json::to_string_pretty(&set).unwrap()).unwrap();
    path
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Good claims of `client` for the gateway at `url`, changed by `patch` (null removes).
fn claims(url: &str, client: &str, patch: Value) -> Value {
    let mut c = json!({
        "iss": client,
        "sub": client,
        "aud": format!("{url}/auth/token"),
        "exp": now() + 240,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    for (k, v) in patch.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(key: &Key, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.typ = Some("JWT".into());
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, &key.enc).unwrap()
}

async fn token_request(url: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let r = client()
        .post(format!("{url}/auth/token"))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn request_token(url: &str, assertion: &str, scope: &str) -> (u16, Value) {
    token_request(
        url,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion),
            ("scope", scope),
        ],
    )
    .await
}

/// A refused token request: status, OAuth error code, and a description containing `why`.
async fn refused(url: &str, assertion: &str, scope: &str, status: u16, error: &str, why: &str) {
    let (got, body) = request_token(url, assertion, scope).await;
    assert_eq!(
        (got, body["error"].as_str()),
        (status, Some(error)),
        "{body}"
    );
    let description = body["error_description"].as_str().unwrap_or_default();
    assert!(
        description.contains(why),
        "expected `{why}` in the description: {description}"
    );
    assert!(body.get("access_token").is_none(), "{body}");
}

fn flip_signature_byte(jwt: &str) -> String {
    let (rest, sig) = jwt.rsplit_once('.').unwrap();
    let mut sig: Vec<u8> = sig.bytes().collect();
    let i = sig.len() / 2;
    sig[i] = if sig[i] == b'A' { b'B' } else { b'A' };
    format!("{rest}.{}", String::from_utf8(sig).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn smart_backend_services_tokens_are_issued_only_for_good_assertions_and_scopes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let jwks = jwks_file(dir.path(), &[rsa_key(), ec_key()]);
    let jwks = jwks.to_str().unwrap();
    let out = ok(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "dinkes-ops",
            "--name",
            "Dinkes operations",
            "--jwks",
            jwks,
            "--scope",
            "gerbang.admin system/*.read",
        ],
    );
    assert!(out.contains("2 key(s)"), "{out}");
    ok(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "dto-pull",
            "--name",
            "DTO pull",
            "--jwks",
            jwks,
            "--scope",
            "system/Bundle.read",
            "--org",
            ORG,
        ],
    );
    ok(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "leaver",
            "--name",
            "to be revoked",
            "--jwks",
            jwks,
            "--scope",
            "gerbang.admin",
        ],
    );
    // What the CLI refuses to register.
    let (added, _, err) = gerbang(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "x",
            "--name",
            "x",
            "--jwks",
            jwks,
            "--scope",
            "gerbang.admin",
            "--org",
            ORG,
        ],
    );
    assert!(!added && err.contains("--org"), "{err}");
    let (added, _, err) = gerbang(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "x",
            "--name",
            "x",
            "--jwks",
            jwks,
            "--scope",
            "system/*.raed",
        ],
    );
    assert!(!added && err.contains("system/*.raed"), "{err}");
    let private = dir.path().join("private.json");
    std::fs::write(&private, r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}"#).unwrap();
    let (added, _, err) = gerbang(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "x",
            "--name",
            "x",
            "--jwks",
            private.to_str().unwrap(),
            "--scope",
            "system/*.read",
        ],
    );
    assert!(!added && err.contains("secret"), "{err}");

    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let url = &gw.url;
    let audit = format!("{url}/admin/audit?action=token");

    // Discovery: where the token endpoint is, what it accepts.
    for path in [
        "/.well-known/smart-configuration",
        "/fhir/.well-known/smart-configuration",
    ] {
        let (status, conf, _) = get(&format!("{url}{path}"), None).await;
        assert_eq!(status, 200, "{conf}");
        assert_eq!(conf["token_endpoint"], format!("{url}/auth/token"));
        assert_eq!(
            conf["token_endpoint_auth_methods_supported"],
            json!(["private_key_jwt"])
        );
    }

    // A good RS384 assertion: a token, which opens the admin API.
    let (rsa, ec) = (rsa_key(), ec_key());
    let assertion = sign(&rsa, Some("rsa-1"), &claims(url, "dinkes-ops", json!({})));
    let (status, body) = request_token(url, &assertion, "gerbang.admin").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["scope"], "gerbang.admin");
    let admin_token = body["access_token"].as_str().unwrap().to_string();
    let (status, body, _) = get(&audit, Some(&admin_token)).await;
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["actor"] == "client:dinkes-ops" && e["action"] == "token"),
        "{body}"
    );
    // Replayed: the same assertion again.
    refused(
        url,
        &assertion,
        "gerbang.admin",
        401,
        "invalid_client",
        "replayed jti",
    )
    .await;

    // ES384, and the only key when there is no kid (the other client has two: kid needed).
    let (status, body) = request_token(
        url,
        &sign(&ec, Some("ec-1"), &claims(url, "dinkes-ops", json!({}))),
        "system/Bundle.read gerbang.admin system/Patient.write",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scope"], "system/Bundle.read gerbang.admin", "{body}");
    refused(
        url,
        &sign(&rsa, None, &claims(url, "dinkes-ops", json!({}))),
        "gerbang.admin",
        401,
        "invalid_client",
        "no `kid`",
    )
    .await;

    // Each bad assertion, with what was wrong.
    let cases: Vec<(String, &str)> = vec![
        (
            sign(
                &rsa,
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({"exp": now() - 120})),
            ),
            "expired",
        ),
        (
            sign(
                &rsa,
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({"exp": now() + 3600})),
            ),
            "more than five minutes",
        ),
        (
            flip_signature_byte(&sign(
                &rsa,
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({})),
            )),
            "bad signature",
        ),
        (
            flip_signature_byte(&sign(
                &ec,
                Some("ec-1"),
                &claims(url, "dinkes-ops", json!({})),
            )),
            "bad signature",
        ),
        (
            sign(
                &impostor_key(),
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({})),
            ),
            "bad signature",
        ),
        (
            sign(
                &rsa,
                Some("rsa-1"),
                &claims(
                    url,
                    "dinkes-ops",
                    json!({"aud": "https://satusehat.example/auth/token"}),
                ),
            ),
            "aud mismatch",
        ),
        (
            sign(&rsa, Some("rsa-9"), &claims(url, "dinkes-ops", json!({}))),
            "unknown kid",
        ),
        (
            sign(&rsa, Some("ec-1"), &claims(url, "dinkes-ops", json!({}))),
            "cannot verify RS384",
        ),
        (
            sign(
                &rsa,
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({"sub": "someone-else"})),
            ),
            "`sub`",
        ),
        (
            sign(
                &rsa,
                Some("rsa-1"),
                &claims(url, "dinkes-ops", json!({"jti": null})),
            ),
            "`jti`",
        ),
        (
            sign(&rsa, Some("rsa-1"), &claims(url, "stranger", json!({}))),
            "unknown client `stranger`",
        ),
        (
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims(url, "dinkes-ops", json!({})),
                &EncodingKey::from_secret(b"guessed"),
            )
            .unwrap(),
            "HS256",
        ),
        ("not-a-jwt".to_string(), "not a signed JWT"),
    ];
    for (assertion, why) in &cases {
        refused(url, assertion, "gerbang.admin", 401, "invalid_client", why).await;
    }

    // The form itself.
    let good = || sign(&rsa, Some("rsa-1"), &claims(url, "dinkes-ops", json!({})));
    let (status, body) = token_request(
        url,
        &[("grant_type", "password"), ("client_assertion", &good())],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unsupported_grant_type")),
        "{body}"
    );
    let (status, body) = token_request(
        url,
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &good()),
            ("scope", "gerbang.admin"),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client")),
        "{body}"
    );
    refused(url, &good(), "", 400, "invalid_scope", "scope is required").await;
    refused(
        url,
        &good(),
        "system/Patient.write",
        400,
        "invalid_scope",
        "registered for",
    )
    .await;

    // A token without the scope: 403 naming it; no token, or an unknown one: 401.
    let (status, body) = request_token(
        url,
        &sign(&ec, Some("ec-1"), &claims(url, "dto-pull", json!({}))),
        "system/*.read",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["scope"], "system/Bundle.read",
        "narrowed to what is registered"
    );
    let pull_token = body["access_token"].as_str().unwrap().to_string();
    let (status, body, challenge) = get(&audit, Some(&pull_token)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        is_outcome(&body) && texts(&body).contains("gerbang.admin"),
        "{body}"
    );
    assert!(challenge.unwrap().contains("insufficient_scope"));
    let (status, body, _) = get(&audit, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_outcome(&body), "{body}");
    let (status, body, _) = get(&audit, Some("gt_0000")).await;
    assert_eq!(status, 401, "{body}");
    assert!(is_outcome(&body), "{body}");

    // A revoked client: no new token, and the one it holds stops working.
    let (status, body) = request_token(
        url,
        &sign(&rsa, Some("rsa-1"), &claims(url, "leaver", json!({}))),
        "gerbang.admin",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let leaver_token = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(get(&audit, Some(&leaver_token)).await.0, 200);
    ok(&cfg, &["client", "revoke", "--id", "leaver"]);
    let (status, body, challenge) = get(&audit, Some(&leaver_token)).await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.unwrap().starts_with("Bearer"));
    refused(
        url,
        &sign(&rsa, Some("rsa-1"), &claims(url, "leaver", json!({}))),
        "gerbang.admin",
        401,
        "invalid_client",
        "revoked",
    )
    .await;

    // Operator keys still open the admin API, and a facility key still does not.
    let operator = ok(&cfg, &["operator", "add", "--name", "ani"]);
    assert_eq!(get(&audit, Some(operator.trim())).await.0, 200);
    let facility = add_facility(&cfg, "pkm-x", ORG);
    assert_eq!(get(&audit, Some(&facility)).await.0, 403);
}

#[tokio::test(flavor = "multi_thread")]
async fn access_tokens_expire() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[auth]\ntoken_ttl_secs = 1\n");
    let jwks = jwks_file(dir.path(), &[rsa_key()]);
    ok(
        &cfg,
        &[
            "client",
            "add",
            "--id",
            "ops",
            "--name",
            "ops",
            "--jwks",
            jwks.to_str().unwrap(),
            "--scope",
            "gerbang.admin",
        ],
    );
    let gw = Gateway::start(dir.path(), Some(&cfg), &[]);
    let url = &gw.url;
    // One key registered: no kid needed.
    let (status, body) = request_token(
        url,
        &sign(&rsa_key(), None, &claims(url, "ops", json!({}))),
        "gerbang.admin",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["expires_in"], 1);
    let token = body["access_token"].as_str().unwrap().to_string();
    let audit = format!("{url}/admin/audit");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body, challenge) = get(&audit, Some(&token)).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        is_outcome(&body) && texts(&body).contains("expired"),
        "{body}"
    );
    assert!(challenge.unwrap().contains("invalid_token"));
}
