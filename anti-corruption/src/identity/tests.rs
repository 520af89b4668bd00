use super::*;

#[test]
fn tokens_verify_with_the_published_key_and_expire() {
    let signer = Signer::from_seed([7; 32]);
    let claims =
        Value::parse(br#"{"sub":"u-42","roles":["clerk"],"exp":1}"#).unwrap_or(Value::Null);
    let token = signer
        .token(&claims, "strangler", "orders-svc", 1_000, 300)
        .unwrap_or_default();
    let public = public_key_of(&signer.jwks()).unwrap_or([0; 32]);
    let got = verify(&token, &public, 1_100).map(|c| c.to_json());
    assert_eq!(
        got.as_deref(),
        Ok(
            r#"{"sub":"u-42","roles":["clerk"],"iss":"strangler","aud":"orders-svc","iat":1000,"exp":1300}"#
        )
    );
    assert!(verify(&token, &public, 1_300).is_err_and(|e| e.contains("expired")));
    // Another key, or a changed payload, does not verify.
    let other = public_key_of(&Signer::from_seed([8; 32]).jwks()).unwrap_or([0; 32]);
    assert!(verify(&token, &other, 1_100).is_err());
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(r#"{"sub":"admin","exp":9999999999}"#);
    parts[1] = &forged;
    assert!(verify(&parts.join("."), &public, 1_100).is_err());
    assert!(signer.token(&Value::Null, "x", "svc", 0, 1).is_err());
}

#[test]
fn seeds_are_read_as_hex_or_base64() {
    let hex = "00".repeat(31) + "ff";
    assert_eq!(Signer::parse_seed(&hex).map(|s| s[31]), Ok(0xff));
    assert_eq!(Signer::parse_seed(&STANDARD.encode([3u8; 32])), Ok([3; 32]));
    assert!(Signer::parse_seed("abc").is_err());
    assert!(Signer::parse_seed(&STANDARD.encode([3u8; 16])).is_err());
}
