//! The states that take the whole screen because nothing can be booted:
//! no network and nothing cached, or a catalog that was refused. Each one says
//! what happened and what to do about it.
//!
//! The screen is chosen from blockfs's stable [`ErrorKind`], which the typed
//! error carries in-process and the error file carries across processes
//! (`{"kind": …, "message": …}`), never from the message's wording.

pub use blockfs::{ErrorKind, ErrorReport};

/// Why the catalog was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No signature file next to the catalog.
    Unsigned,
    /// The signature does not match the public key this machine trusts.
    WrongKey,
    /// The catalog's `expires` time has passed.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// No source answers and nothing that could boot is cached.
    NoNetwork { detail: String },
    /// Every source was reached but refused in the TLS handshake (its
    /// certificate is not trusted, expired, or for another name), and nothing
    /// that could boot is cached. The network works: the cable is not the cause.
    CertificateRefused { detail: String },
    /// The catalog failed verification; nothing from that store is trusted.
    CatalogRefused { why: Refusal, detail: String },
    /// Anything else that stops the menu from starting (a mount that failed, a
    /// status file that cannot be read).
    Other { headline: String, detail: String },
}

impl Problem {
    /// Classifies an error from `Mounted::start` or from reading the mount
    /// (desktop mode runs blockfs in-process and has the typed error).
    pub fn from_blockfs(err: &blockfs::Error) -> Problem {
        Problem::from_kind(err.kind(), err.to_string())
    }

    /// Classifies what a `blockfs mount` process that failed wrote to its
    /// `--error-file` (the appliance runs blockfs as its own process).
    pub fn from_report(report: &ErrorReport) -> Problem {
        Problem::from_kind(report.kind, report.message.clone())
    }

    /// The screen for an error of `kind`: chosen from the stable kind blockfs
    /// reports, never from the wording; `message` is shown as the detail.
    pub fn from_kind(kind: ErrorKind, message: String) -> Problem {
        let detail = message.trim().to_string();
        let refused = |why| Problem::CatalogRefused { why, detail: detail.clone() };
        match kind {
            ErrorKind::Unsigned => refused(Refusal::Unsigned),
            ErrorKind::BadSignature => refused(Refusal::WrongKey),
            ErrorKind::Expired => refused(Refusal::Expired),
            ErrorKind::NoNetwork | ErrorKind::NothingCached => Problem::NoNetwork { detail },
            ErrorKind::Tls => Problem::CertificateRefused { detail },
            _ => Problem::Other { headline: "The disk images could not be mounted".to_string(), detail },
        }
    }

    pub fn headline(&self) -> String {
        match self {
            Problem::NoNetwork { .. } => "No network, and nothing is cached".to_string(),
            Problem::CertificateRefused { .. } => {
                "The server's certificate was refused, and nothing is cached".to_string()
            }
            Problem::CatalogRefused { why: Refusal::Unsigned, .. } => "Catalog refused: it is not signed".to_string(),
            Problem::CatalogRefused { why: Refusal::WrongKey, .. } => {
                "Catalog refused: its signature does not match this machine's key".to_string()
            }
            Problem::CatalogRefused { why: Refusal::Expired, .. } => "Catalog refused: it has expired".to_string(),
            Problem::Other { headline, .. } => headline.clone(),
        }
    }

    pub fn detail(&self) -> &str {
        match self {
            Problem::NoNetwork { detail }
            | Problem::CertificateRefused { detail }
            | Problem::CatalogRefused { detail, .. }
            | Problem::Other { detail, .. } => detail,
        }
    }

    /// What a person can do, in plain words.
    pub fn what_to_do(&self) -> Vec<String> {
        match self {
            Problem::NoNetwork { .. } => vec![
                "No server answered, and no snapshot is fully cached, so nothing can boot.".into(),
                "Plug in a network cable (wired, with DHCP), or press n to join a Wi-Fi network, or check that the server is up.".into(),
                "A snapshot booted once with the network stays bootable offline when fully cached.".into(),
            ],
            Problem::CertificateRefused { .. } => vec![
                "The server answered, but its certificate did not pass: the message above says".into(),
                "why (a CA this machine does not trust, expired, or made for another name).".into(),
                "A private CA: add circular.ca=FILE (a file on the stick) or --ca FILE (desktop).".into(),
                "An expired or not-yet-valid certificate: check this machine's clock first.".into(),
            ],
            Problem::CatalogRefused { why, .. } => {
                let mut v = vec![
                    "Nothing from this server is trusted, so nothing is shown. This protects you".into(),
                    "from a changed or replayed catalog.".into(),
                ];
                v.push(match why {
                    Refusal::Unsigned => "The publisher must sign the catalog (image-build add or sign does).".into(),
                    Refusal::WrongKey => {
                        "Check the server address and the public key: this key does not belong to that store.".into()
                    }
                    Refusal::Expired => {
                        "The publisher must re-sign the catalog; also check this machine's clock.".into()
                    }
                });
                v
            }
            Problem::Other { .. } => vec!["Read the message above; press r to try again.".into()],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use blockfs::format::Error as F;

    #[test]
    fn blockfs_errors_are_classified() {
        let e = blockfs::Error::from(F::Unsigned { what: "catalog.json.sig".into() });
        assert!(matches!(Problem::from_blockfs(&e), Problem::CatalogRefused { why: Refusal::Unsigned, .. }));
        let e = blockfs::Error::from(F::BadSignature);
        assert!(matches!(Problem::from_blockfs(&e), Problem::CatalogRefused { why: Refusal::WrongKey, .. }));
        let e = blockfs::Error::from(F::Expired { expires: "2026-01-01".into(), now: "2026-11-22".into() });
        let p = Problem::from_blockfs(&e);
        assert!(p.headline().contains("expired") && p.detail().contains("2026-01-01"));
        let e = blockfs::Error::NotCached { what: "catalog.json".into() };
        assert!(matches!(Problem::from_blockfs(&e), Problem::NoNetwork { .. }));
        let e = blockfs::Error::invalid("x", "y");
        assert!(matches!(Problem::from_blockfs(&e), Problem::Other { .. }));
    }

    #[test]
    fn only_certificate_refusals_everywhere_get_the_certificate_screen() {
        let unreachable = |last: &str| blockfs::Error::Unreachable {
            path: "catalog.json".into(),
            deadline_secs: 60,
            last: last.into(),
        };
        let tls = "https://a/: TLS: the server's certificate is signed by a CA this machine does not trust";
        let p = Problem::from_blockfs(&unreachable(tls));
        assert!(matches!(p, Problem::CertificateRefused { .. }), "{p:?}");
        assert!(!p.headline().contains("No network"), "{}", p.headline());
        assert!(p.what_to_do().iter().any(|l| l.contains("circular.ca=")), "{:?}", p.what_to_do());
        assert!(p.what_to_do().iter().all(|l| !l.contains("cable")), "{:?}", p.what_to_do());
        // One mirror refused its certificate, another could not be reached at all:
        // the network may well be the problem, so it is the no-network screen.
        let mixed = format!("{tls}; https://b/: connection refused");
        assert!(matches!(Problem::from_blockfs(&unreachable(&mixed)), Problem::NoNetwork { .. }));
        assert!(matches!(Problem::from_blockfs(&unreachable("")), Problem::NoNetwork { .. }));
    }

    #[test]
    fn reports_are_classified_like_the_errors_they_come_from() {
        let errors = [
            blockfs::Error::from(F::Unsigned { what: "catalog.json.sig".into() }),
            blockfs::Error::from(F::BadSignature),
            blockfs::Error::from(F::Expired { expires: "2026-01-01".into(), now: "2026-11-22".into() }),
            blockfs::Error::NotCached { what: "catalog.json".into() },
            blockfs::Error::Unreachable {
                path: "catalog.json".into(),
                deadline_secs: 60,
                last: "connection refused".into(),
            },
            blockfs::Error::Unreachable {
                path: "catalog.json".into(),
                deadline_secs: 60,
                last:
                    "https://a/: TLS: the server's certificate has expired; https://b/: TLS: the certificate is for x"
                        .into(),
            },
            blockfs::Error::invalid("x", "y"),
        ];
        for e in errors {
            // What `blockfs mount --error-file` writes, read back by another process.
            let text = String::from_utf8(e.report().to_json()).unwrap();
            let report = ErrorReport::parse(&text).unwrap();
            assert_eq!(Problem::from_report(&report), Problem::from_blockfs(&e), "{e}");
        }
    }

    #[test]
    fn the_kind_decides_not_the_wording() {
        // A reworded message keeps its screen; a message that merely quotes
        // another kind's words does not get that kind's screen.
        let p = Problem::from_kind(ErrorKind::BadSignature, "la signature ne correspond pas".into());
        assert!(matches!(p, Problem::CatalogRefused { why: Refusal::WrongKey, .. }));
        let quoting = "proxy said: the catalog is not signed; signature does not match any trusted public key";
        let p = Problem::from_report(&ErrorReport { kind: ErrorKind::Io, message: quoting.into() });
        assert!(matches!(p, Problem::Other { .. }), "{p:?}");
        // A plain line (a blockfs killed before it could write its report) is shown as it is.
        let p = Problem::from_report(&ErrorReport::parse("blockfs: the catalog expired at 2020-01-01\n").unwrap());
        assert_eq!(p.detail(), "the catalog expired at 2020-01-01");
        assert!(matches!(p, Problem::Other { .. }));
        // A kind from a newer blockfs falls back to the general screen.
        let p = Problem::from_report(&ErrorReport::parse(r#"{"kind":"quantum-flux","message":"m"}"#).unwrap());
        assert!(matches!(p, Problem::Other { .. }));
    }
}
