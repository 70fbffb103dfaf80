//! Unit tests of the OCI provider's parsing and signing.

use super::credentials::{parse_oci_config, token_expiry};
use super::*;

#[test]
fn config_profiles_inherit_default() {
    let text = "[DEFAULT]\nregion=eu-frankfurt-1\ntenancy=ocid1.tenancy.oc1..t\n\
                # comment\n[ha]\nuser=ocid1.user.oc1..u\nfingerprint=aa:bb\nkey_file=~/k.pem\n";
    let p = parse_oci_config(text, "ha").unwrap();
    assert_eq!(p["user"], "ocid1.user.oc1..u");
    assert_eq!(p["region"], "eu-frankfurt-1");
    assert!(parse_oci_config(text, "nope").is_none());
    assert_eq!(
        parse_oci_config(text, "DEFAULT").unwrap()["region"],
        "eu-frankfurt-1"
    );
}

#[test]
fn signing_string_and_header_list() {
    let key = RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let s = Signer::new("t/u/f".into(), key.clone(), false);
    let uri: http::Uri = "https://iaas.eu-frankfurt-1.oraclecloud.com/20160918/vnics/x?a=b"
        .parse()
        .unwrap();
    let h = s.headers("GET", &uri, None, "Thu, 05 Jan 2014 21:31:40 GMT");
    let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
    assert!(
        auth.contains("headers=\"date (request-target) host\""),
        "{auth}"
    );
    assert!(auth.contains("keyId=\"t/u/f\""));
    // The signature verifies over exactly the documented signing string.
    let sig = auth
        .split("signature=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap();
    let text = "date: Thu, 05 Jan 2014 21:31:40 GMT\n(request-target): get \
                /20160918/vnics/x?a=b\nhost: iaas.eu-frankfurt-1.oraclecloud.com";
    use rsa::signature::Verifier;
    let vk = rsa::pkcs1v15::VerifyingKey::<Sha256>::new(key.to_public_key());
    let sig = rsa::pkcs1v15::Signature::try_from(B64.decode(sig).unwrap().as_slice()).unwrap();
    vk.verify(text.as_bytes(), &sig).unwrap();
    let h = s.headers("PUT", &uri, Some(b"{}"), "Thu, 05 Jan 2014 21:31:40 GMT");
    let auth = &h.iter().find(|(k, _)| k == "authorization").unwrap().1;
    assert!(auth.contains(
        "headers=\"date (request-target) host content-length content-type x-content-sha256\""
    ));
    let sha = &h.iter().find(|(k, _)| k == "x-content-sha256").unwrap().1;
    assert_eq!(sha, "RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=");
}

#[test]
fn jwt_expiry() {
    let payload = B64URL.encode(br#"{"exp":1800000000,"sub":"x"}"#);
    assert_eq!(token_expiry(&format!("h.{payload}.s")), Some(1_800_000_000));
    assert_eq!(token_expiry("garbage"), None);
}
