//! The identity bridge's token: the claims the legacy session resolved to, as a short-lived
//! JWT signed with Ed25519 (`alg: EdDSA`), which new services verify with the public key the
//! admin API publishes as a JWKS. Pure: the caller brings the key's seed and the clock.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier, VerifyingKey};

use crate::json::Value;

/// Signs identity tokens with one Ed25519 key.
pub struct Signer {
    key: SigningKey,
    kid: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.kid)
    }
}

impl Signer {
    pub fn from_seed(seed: [u8; 32]) -> Signer {
        let key = SigningKey::from_bytes(&seed);
        let public = key.verifying_key().to_bytes();
        // A stable key id: the start of the public key.
        let kid = URL_SAFE_NO_PAD.encode(&public[..9]);
        Signer { key, kid }
    }

    /// Reads a seed written as 64 hex digits or as base64 of 32 bytes.
    pub fn parse_seed(text: &str) -> Result<[u8; 32], String> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .map_err(|e| e.to_string())?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text))
                .map_err(|_| "the key is neither 64 hex digits nor base64".to_owned())?
        };
        bytes.try_into().map_err(|_| {
            "the key must be 32 bytes (generate one with `openssl rand -hex 32`)".to_owned()
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// A token carrying `claims` (a JSON object), issued now by `issuer` for `audience` (the
    /// service it is sent to), valid `ttl_secs`. `iss`, `aud`, `iat` and `exp` are the
    /// signer's; everything else is the session's. A service that checks `aud` cannot be
    /// handed a token meant for another.
    pub fn token(
        &self,
        claims: &Value,
        issuer: &str,
        audience: &str,
        now: i64,
        ttl_secs: i64,
    ) -> Result<String, String> {
        let Value::Obj(fields) = claims else {
            return Err(format!(
                "the session resolved to a {}, not an object of claims",
                claims.type_name()
            ));
        };
        let mut fields: Vec<(crate::json::Text, Value)> = fields
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "iss" | "aud" | "iat" | "exp" | "nbf"))
            .cloned()
            .collect();
        fields.push(("iss".into(), Value::str(issuer)));
        fields.push(("aud".into(), Value::str(audience)));
        fields.push(("iat".into(), Value::int(now)));
        fields.push(("exp".into(), Value::int(now.saturating_add(ttl_secs))));
        let header = Value::Obj(vec![
            ("alg".into(), Value::Str("EdDSA".into())),
            ("typ".into(), Value::Str("JWT".into())),
            ("kid".into(), Value::str(self.kid.as_str())),
        ]);
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_json()),
            URL_SAFE_NO_PAD.encode(Value::Obj(fields).to_json())
        );
        let signature = self.key.sign(signing_input.as_bytes());
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes())
        ))
    }

    /// The public key as a JSON Web Key Set (RFC 7517, OKP key of RFC 8037).
    pub fn jwks(&self) -> String {
        let x = URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes());
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","alg":"EdDSA","use":"sig","kid":"{}","x":"{x}"}}]}}"#,
            self.kid
        )
    }
}

/// Verifies a token against a public key (32 bytes) at time `now`; returns its claims. What a
/// new service does with the JWKS; here for tests and for `strangler` tooling.
pub fn verify(token: &str, public: &[u8; 32], now: i64) -> Result<Value, String> {
    let key = VerifyingKey::from_bytes(public).map_err(|e| e.to_string())?;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("a JWT has three parts".into());
    };
    let sig = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| "bad signature encoding")?;
    let sig: [u8; 64] = sig.try_into().map_err(|_| "bad signature length")?;
    key.verify(format!("{h}.{p}").as_bytes(), &Signature::from_bytes(&sig))
        .map_err(|_| "the signature does not verify".to_owned())?;
    let payload = URL_SAFE_NO_PAD
        .decode(p)
        .map_err(|_| "bad payload encoding")?;
    let claims = Value::parse(&payload).map_err(|e| e.to_string())?;
    let exp = claims
        .get("exp")
        .and_then(|v| match v {
            Value::Num(n) => n.parse::<i64>().ok(),
            _ => None,
        })
        .ok_or("no exp claim")?;
    if exp <= now {
        return Err("the token has expired".into());
    }
    Ok(claims)
}

/// The public key of a JWKS produced by [`Signer::jwks`].
pub fn public_key_of(jwks: &str) -> Option<[u8; 32]> {
    let v = Value::parse(jwks.as_bytes()).ok()?;
    let Value::Arr(keys) = v.get("keys")? else {
        return None;
    };
    let x = keys.first()?.get("x")?.as_str()?;
    URL_SAFE_NO_PAD.decode(x).ok()?.try_into().ok()
}

#[cfg(test)]
mod tests;
