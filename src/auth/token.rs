//! CKAN API tokens: compact JWS checked exactly as CKAN 2.12 checks them (`ckan/lib/api_token.py`
//! calling PyJWT 2.x `jwt.decode` with only the configured algorithm and default options).
//!
//! The signature is checked by `jsonwebtoken` (constant-time HMAC comparison; RSA/EC public keys
//! for sites that configured them); the claim rules are PyJWT's, written out here because its
//! defaults differ from `jsonwebtoken`'s (no leeway, `exp` optional, `iat` in the future
//! rejected, any non-empty `aud` rejected, `jti`/`sub` must be strings).

use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::python;

/// The key that verifies tokens. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct TokenVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenVerifier({:?}, <secret>)", self.algorithm)
    }
}

impl TokenVerifier {
    /// `algorithm` as in `api_token.jwt.algorithm`; `secret` is the key material CKAN's
    /// `_get_secret(encode=False)` returns (HMAC bytes, or a PEM public key for RS*/ES*/PS*).
    pub fn new(algorithm: &str, secret: &str) -> Result<TokenVerifier, String> {
        let algorithm: Algorithm = algorithm
            .parse()
            .map_err(|_| format!("unsupported JWT algorithm {algorithm:?}"))?;
        let pem = secret.as_bytes();
        let key = match algorithm {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                DecodingKey::from_secret(secret.as_bytes())
            }
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => DecodingKey::from_rsa_pem(pem).map_err(|e| e.to_string())?,
            Algorithm::ES256 | Algorithm::ES384 => {
                DecodingKey::from_ec_pem(pem).map_err(|e| e.to_string())?
            }
            Algorithm::EdDSA => DecodingKey::from_ed_pem(pem).map_err(|e| e.to_string())?,
        };
        Ok(TokenVerifier { algorithm, key })
    }

    /// The token's `jti` if CKAN would accept the token, else None (the caller is anonymous).
    pub fn jti(&self, token: &str, now_secs: f64) -> Option<String> {
        let mut validation = Validation::new(self.algorithm);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<Value>(token, &self.key, &validation).ok()?;
        let claims = data.claims.as_object()?;
        claims_ok(claims, now_secs).then_some(())?;
        match claims.get("jti")? {
            Value::String(s) => Some(s.clone()),
            _ => None,
        }
    }
}

/// PyJWT's `_validate_claims` with CKAN's options (all checks on, leeway 0, no audience).
/// `int(claim)` failing rejects the token; a value beyond `i64` saturates, which compares with
/// `now` as the exact Python int would.
fn claims_ok(claims: &serde_json::Map<String, Value>, now: f64) -> bool {
    let int = |k: &str| {
        claims
            .get(k)
            .map(|v| python::int_of(v).ok().map(|n| n.saturating_i64()))
    };
    if let Some(iat) = int("iat") {
        match iat {
            Some(i) if (i as f64) <= now => {}
            _ => return false,
        }
    }
    if let Some(nbf) = int("nbf") {
        match nbf {
            Some(n) if (n as f64) <= now => {}
            _ => return false,
        }
    }
    if let Some(exp) = int("exp") {
        match exp {
            Some(e) if (e as f64) > now => {}
            _ => return false,
        }
    }
    match claims.get("aud") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() => {}
        Some(Value::Array(a)) if a.is_empty() => {}
        Some(Value::Object(o)) if o.is_empty() => {}
        Some(Value::Bool(false)) => {}
        Some(_) => return false,
    }
    for k in ["sub", "jti"] {
        if let Some(v) = claims.get(k) {
            if !v.is_string() {
                return false;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    const NOW: f64 = 1_800_000_000.0;

    fn mint(claims: Value, key: &str) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(key.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn accepts_what_ckan_issues() {
        let v = TokenVerifier::new("HS256", "s3cret").unwrap();
        let t = mint(json!({"jti": "abc", "iat": 1_700_000_000}), "s3cret");
        assert_eq!(v.jti(&t, NOW).as_deref(), Some("abc"));
    }

    #[test]
    fn rejects_what_pyjwt_rejects() {
        let v = TokenVerifier::new("HS256", "s3cret").unwrap();
        let cases = [
            mint(json!({"jti": "abc"}), "other"),
            mint(json!({"iat": 1}), "s3cret"),
            mint(json!({"jti": 5}), "s3cret"),
            mint(json!({"jti": "a", "iat": NOW as i64 + 60}), "s3cret"),
            mint(json!({"jti": "a", "iat": "soon"}), "s3cret"),
            mint(json!({"jti": "a", "exp": NOW as i64}), "s3cret"),
            mint(json!({"jti": "a", "nbf": NOW as i64 + 5}), "s3cret"),
            mint(json!({"jti": "a", "aud": "x"}), "s3cret"),
            mint(json!({"jti": "a", "sub": 1}), "s3cret"),
            // `int()` refuses misplaced underscores.
            mint(json!({"jti": "a", "iat": "_1700000000"}), "s3cret"),
            mint(json!({"jti": "a", "iat": "1700000000_"}), "s3cret"),
            mint(json!({"jti": "a", "iat": "17__00000000"}), "s3cret"),
            mint(json!({"jti": "a", "exp": "1e30"}), "s3cret"),
            "not-a-jwt".to_string(),
            "abc".to_string(),
        ];
        for t in cases {
            assert_eq!(v.jti(&t, NOW), None, "{t}");
        }
    }

    #[test]
    fn rejects_alg_none_and_other_algorithms() {
        let v = TokenVerifier::new("HS256", "s3cret").unwrap();
        let b64 = |s: &str| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
        };
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(r#"{"jti":"a"}"#)
        );
        assert_eq!(v.jti(&none, NOW), None);
        let hs512 = encode(
            &Header::new(Algorithm::HS512),
            &json!({"jti": "a"}),
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(v.jti(&hs512, NOW), None);
        // Claims PyJWT accepts: a string iat, exp in the future, an empty aud.
        let ok = mint(
            json!({"jti": "a", "iat": "1700000000", "exp": NOW as i64 + 1, "aud": ""}),
            "s3cret",
        );
        assert_eq!(v.jti(&ok, NOW).as_deref(), Some("a"));
        // `int()` of any size and of any script's digits.
        let ok = mint(
            json!({"jti": "a", "iat": " \u{663}_0 ", "exp": "99999999999999999999999999"}),
            "s3cret",
        );
        assert_eq!(v.jti(&ok, NOW).as_deref(), Some("a"));
    }
}
