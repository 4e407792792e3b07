//! The trust chain's root: ed25519 keys in PEM files (PKCS#8 secret, SPKI public,
//! readable by `openssl pkey`), the catalog's detached signature,
//! `catalog.json.sig`, which holds the base64 signature over the exact bytes of
//! `catalog.json`, and the rules a client applies before it trusts a catalog
//! (docs/FORMAT.md, "What a client accepts"): signature, structure, expiry
//! ([`verify_catalog`]) and no rollback ([`is_rollback`]).

use std::path::Path;

use base64::Engine;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use time::OffsetDateTime;

use crate::catalog::{rfc3339, Catalog};
use crate::error::{Error, Result};
use crate::layout;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A new random signing key.
pub fn generate() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}

/// Writes the secret key (mode 0600, refusing to overwrite) and the public key.
///
/// # Errors
/// [`Error::Key`] when `secret` already exists or a key cannot be encoded;
/// [`Error::Io`] when a file cannot be written.
pub fn write_keypair(key: &SigningKey, secret: &Path, public: &Path) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let key_err = |path: &Path, reason: String| Error::Key { path: path.to_path_buf(), reason };
    let secret_pem = key.to_pkcs8_pem(Default::default()).map_err(|e| key_err(secret, e.to_string()))?;
    let public_pem =
        key.verifying_key().to_public_key_pem(Default::default()).map_err(|e| key_err(public, e.to_string()))?;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(secret).map_err(|e| {
        match e.kind() {
            std::io::ErrorKind::AlreadyExists => {
                key_err(secret, "already exists; refusing to overwrite a secret key (move it away first)".into())
            }
            _ => Error::io(secret, e),
        }
    })?;
    file.write_all(secret_pem.as_bytes()).and_then(|()| file.sync_all()).map_err(|e| Error::io(secret, e))?;
    std::fs::write(public, public_pem).map_err(|e| Error::io(public, e))
}

/// Reads a secret key (PKCS#8 PEM, as [`write_keypair`] writes it).
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Key`] when it holds no
/// ed25519 secret key.
pub fn read_secret(path: &Path) -> Result<SigningKey> {
    let text = read_key_file(path, "the publisher's secret key: make a key pair with `image-build keygen`")?;
    let key_err = |reason: String| Error::Key { path: path.to_path_buf(), reason };
    if text.contains("-----BEGIN PUBLIC KEY-----") {
        // The two files of a pair are easy to swap; say which one this is.
        return Err(key_err(
            "is the public key (the one clients carry); signing needs the secret key, the other file \
             `image-build keygen` wrote (--secret)"
                .into(),
        ));
    }
    SigningKey::from_pkcs8_pem(&text).map_err(|e| {
        key_err(format!("not an ed25519 secret key in PKCS#8 PEM ({e}); make one with `image-build keygen`"))
    })
}

/// Reads one or more public keys (concatenated PEM blocks) from a file.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Key`] when a block is
/// not an ed25519 public key or there is none.
pub fn read_public(path: &Path) -> Result<Vec<VerifyingKey>> {
    let text = read_key_file(path, "the publisher's public key: use the .pub file that `image-build keygen` wrote")?;
    let key_err = |reason: String| Error::Key { path: path.to_path_buf(), reason };
    if text.contains("-----BEGIN PRIVATE KEY-----") {
        return Err(key_err(
            "is a secret key: give clients the public key (the other file `image-build keygen` wrote, \
             --public), and keep this one private"
                .into(),
        ));
    }
    let mut keys = Vec::new();
    let end = "-----END PUBLIC KEY-----";
    for block in text.split_inclusive(end).filter(|b| b.contains(end)) {
        let key = VerifyingKey::from_public_key_pem(block.trim())
            .map_err(|e| key_err(format!("not an ed25519 public key in PEM ({e})")))?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(key_err("holds no PEM public key; use the .pub file that `image-build keygen` wrote".into()));
    }
    Ok(keys)
}

/// A key file's text; a missing file is a [`Error::Key`] that says which key
/// was expected (`what`), since the bare OS error names only the path.
fn read_key_file(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Key { path: path.to_path_buf(), reason: format!("no such file; it should hold {what}") }
        }
        _ => Error::io(path, e),
    })
}

/// The text of `catalog.json.sig` for these catalog bytes.
pub fn sign(catalog_bytes: &[u8], key: &SigningKey) -> String {
    format!("{}\n", B64.encode(key.sign(catalog_bytes).to_bytes()))
}

/// Checks the signature, then the structure, then the expiry, and returns the
/// catalog only if all three pass. `sig` is `None` when no signature exists.
///
/// # Errors
/// [`Error::Unsigned`] without `sig`; [`Error::BadSignature`] when no key in
/// `keys` verifies it; what [`Catalog::parse`] refuses; [`Error::Expired`]
/// when `expires` is not after `now`.
pub fn verify_catalog(
    catalog_bytes: &[u8],
    sig: Option<&[u8]>,
    keys: &[VerifyingKey],
    now: OffsetDateTime,
) -> Result<Catalog> {
    let catalog = verify_signed(catalog_bytes, sig, keys)?;
    if catalog.expires <= now {
        return Err(Error::Expired { expires: rfc3339(catalog.expires), now: rfc3339(now) });
    }
    Ok(catalog)
}

/// Checks the signature and the structure only, not the expiry: what a client
/// needs of its cached catalog to keep rollback protection after it expired
/// (docs/FORMAT.md, "Freshness").
///
/// # Errors
/// [`Error::Unsigned`], [`Error::BadSignature`], and what [`Catalog::parse`] refuses.
pub fn verify_signed(catalog_bytes: &[u8], sig: Option<&[u8]>, keys: &[VerifyingKey]) -> Result<Catalog> {
    let sig = sig.ok_or_else(|| Error::Unsigned { what: layout::CATALOG_SIG.into() })?;
    let raw = std::str::from_utf8(sig).ok().and_then(|text| B64.decode(text.trim()).ok()).ok_or(Error::BadSignature)?;
    let signature = Signature::from_slice(&raw).map_err(|_| Error::BadSignature)?;
    if !keys.iter().any(|k| k.verify(catalog_bytes, &signature).is_ok()) {
        return Err(Error::BadSignature);
    }
    Catalog::parse(catalog_bytes)
}

/// How far in the future a catalog's `generated` may be, against a clock that
/// is not known to be wrong, before the catalog is refused: clocks of
/// publisher and client disagree a little, never by this much.
pub const MAX_FUTURE_SKEW: time::Duration = time::Duration::hours(1);

/// Refuses a catalog whose `generated` is more than [`MAX_FUTURE_SKEW`] after
/// `now` (a publisher with a wrong clock, or a stolen key): such a catalog
/// would otherwise pin every client that saw it, since rollback protection
/// keeps the newest `generated`.
///
/// # Errors
/// [`Error::Invalid`] naming both times.
pub fn check_not_future(catalog: &Catalog, now: OffsetDateTime) -> Result<()> {
    if catalog.generated > now + MAX_FUTURE_SKEW {
        return Err(Error::invalid(
            layout::CATALOG,
            format!(
                "it says it was generated at {}, in the future (now {}); a signed catalog from the future is \
                 refused so that it cannot pin clients: the publisher's clock is wrong",
                rfc3339(catalog.generated),
                rfc3339(now)
            ),
        ));
    }
    Ok(())
}

/// True when `offered` was generated before `newest_verified`, the `generated`
/// time of the newest catalog this client has verified: taking it would roll the
/// client back (a mirror replaying an old, still signed catalog). Equal times are
/// no rollback: the same catalog fetched again is taken.
pub fn is_rollback(newest_verified: OffsetDateTime, offered: &Catalog) -> bool {
    offered.generated < newest_verified
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn signed() -> (SigningKey, Vec<u8>, String) {
        let key = generate();
        let catalog = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        let bytes = catalog.to_bytes();
        let sig = sign(&bytes, &key);
        (key, bytes, sig)
    }

    #[test]
    fn good_signature_verifies() {
        let (key, bytes, sig) = signed();
        let now = datetime!(2026-11-23 0:00 UTC);
        verify_catalog(&bytes, Some(sig.as_bytes()), &[key.verifying_key()], now).unwrap();
    }

    #[test]
    fn unsigned_tampered_wrong_key_and_expired_are_refused() {
        let (key, bytes, sig) = signed();
        let keys = [key.verifying_key()];
        let now = datetime!(2026-11-23 0:00 UTC);
        let err = verify_catalog(&bytes, None, &keys, now).unwrap_err();
        assert!(matches!(err, Error::Unsigned { .. }));
        let mut tampered = bytes.clone();
        tampered[20] ^= 1;
        let err = verify_catalog(&tampered, Some(sig.as_bytes()), &keys, now).unwrap_err();
        assert!(matches!(err, Error::BadSignature));
        let other = [generate().verifying_key()];
        let err = verify_catalog(&bytes, Some(sig.as_bytes()), &other, now).unwrap_err();
        assert!(matches!(err, Error::BadSignature));
        let later = datetime!(2027-01-01 0:00 UTC);
        let err = verify_catalog(&bytes, Some(sig.as_bytes()), &keys, later).unwrap_err();
        assert!(err.to_string().contains("expired"), "{err}");
    }

    #[test]
    fn an_older_catalog_is_a_rollback_and_the_same_or_newer_is_not() {
        let old = Catalog::new(datetime!(2026-11-15 0:00 UTC), datetime!(2026-12-15 0:00 UTC));
        let new = Catalog::new(datetime!(2026-11-22 0:00 UTC), datetime!(2026-12-22 0:00 UTC));
        assert!(is_rollback(new.generated, &old));
        assert!(!is_rollback(old.generated, &new));
        assert!(!is_rollback(new.generated, &new));
    }

    #[test]
    fn a_catalog_from_the_future_is_refused_and_one_within_the_skew_is_not() {
        let now = datetime!(2026-11-22 0:00 UTC);
        let soon = Catalog::new(now + time::Duration::minutes(30), datetime!(2026-12-22 0:00 UTC));
        check_not_future(&soon, now).unwrap();
        let at_the_limit = Catalog::new(now + MAX_FUTURE_SKEW, datetime!(2026-12-22 0:00 UTC));
        check_not_future(&at_the_limit, now).unwrap();
        let just_past =
            Catalog::new(now + MAX_FUTURE_SKEW + time::Duration::seconds(1), datetime!(2026-12-22 0:00 UTC));
        assert!(check_not_future(&just_past, now).is_err());
        let far = Catalog::new(datetime!(2099-01-01 0:00 UTC), datetime!(2099-12-31 0:00 UTC));
        let err = check_not_future(&far, now).unwrap_err();
        assert!(err.to_string().contains("future"), "{err}");
    }

    #[test]
    fn an_expired_catalog_still_verifies_its_signature() {
        let (key, bytes, sig) = signed();
        let keys = [key.verifying_key()];
        let later = datetime!(2027-01-01 0:00 UTC);
        assert!(verify_catalog(&bytes, Some(sig.as_bytes()), &keys, later).is_err());
        verify_signed(&bytes, Some(sig.as_bytes()), &keys).unwrap();
        assert!(verify_signed(&bytes, None, &keys).is_err());
    }

    #[test]
    fn key_files_round_trip_and_several_public_keys_load() {
        let dir = tempfile::tempdir().unwrap();
        let (secret, public) = (dir.path().join("k"), dir.path().join("k.pub"));
        let key = generate();
        write_keypair(&key, &secret, &public).unwrap();
        let err = write_keypair(&key, &secret, &public).unwrap_err().to_string();
        assert!(err.contains("already exists; refusing to overwrite a secret key"), "{err}");
        let missing = dir.path().join("missing.pub");
        let err = read_public(&missing).unwrap_err().to_string();
        assert!(err.contains("no such file; it should hold"), "{err}");
        assert_eq!(read_secret(&secret).unwrap().to_bytes(), key.to_bytes());
        let second = generate();
        let mut text = std::fs::read_to_string(&public).unwrap();
        text.push_str(&second.verifying_key().to_public_key_pem(Default::default()).unwrap());
        std::fs::write(&public, text).unwrap();
        let keys = read_public(&public).unwrap();
        assert_eq!(keys, vec![key.verifying_key(), second.verifying_key()]);
        // A catalog signed by either key of the file is accepted (a key
        // rotation: old and new key side by side); one by a third is not.
        let (_, bytes, _) = signed();
        let now = datetime!(2026-11-23 0:00 UTC);
        for signer in [&key, &second] {
            let sig = sign(&bytes, signer);
            verify_catalog(&bytes, Some(sig.as_bytes()), &keys, now).unwrap();
        }
        let sig = sign(&bytes, &generate());
        let err = verify_catalog(&bytes, Some(sig.as_bytes()), &keys, now).unwrap_err();
        assert!(matches!(err, Error::BadSignature), "{err}");
        // The pair swapped: each file says what it is and which one to use.
        let err = read_secret(&public).unwrap_err().to_string();
        assert!(err.contains("is the public key") && err.contains("--secret"), "{err}");
        let err = read_public(&secret).unwrap_err().to_string();
        assert!(err.contains("is a secret key") && err.contains("--public"), "{err}");
        std::fs::write(&public, "nonsense").unwrap();
        assert!(read_public(&public).is_err());
        assert!(read_secret(&public).is_err());
    }
}
