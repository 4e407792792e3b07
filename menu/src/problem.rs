//! The states that take the whole screen because nothing can be booted:
//! no network and nothing cached, or a catalog that was refused. Each one says
//! what happened and what to do about it.

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
    /// The catalog failed verification; nothing from that store is trusted.
    CatalogRefused { why: Refusal, detail: String },
    /// Anything else that stops the menu from starting (a mount that failed, a
    /// status file that cannot be read).
    Other { headline: String, detail: String },
}

impl Problem {
    /// Classifies an error from `Mounted::start` or from reading the mount.
    pub fn from_blockfs(err: &blockfs::Error) -> Problem {
        use blockfs::format::Error as F;
        use blockfs::Error as E;
        let detail = err.to_string();
        match err {
            E::Format(F::Unsigned { .. }) => Problem::CatalogRefused { why: Refusal::Unsigned, detail },
            E::Format(F::BadSignature) => Problem::CatalogRefused { why: Refusal::WrongKey, detail },
            E::Format(F::Expired { .. }) => Problem::CatalogRefused { why: Refusal::Expired, detail },
            E::NotCached { .. } | E::Unreachable { .. } => Problem::NoNetwork { detail },
            _ => Problem::Other { headline: "The disk images could not be mounted".to_string(), detail },
        }
    }

    /// Classifies the one-line message of a `blockfs mount` process that
    /// exited (what it printed after "blockfs: "). The appliance runs blockfs
    /// as its own process, so only this text reaches the menu, not the typed
    /// error; a test below keeps the two classifications in step.
    pub fn from_message(message: &str) -> Problem {
        let detail = message.trim().to_string();
        let m = detail.as_str();
        let refused = |why| Problem::CatalogRefused { why, detail: detail.clone() };
        if m.contains("the catalog is not signed") {
            refused(Refusal::Unsigned)
        } else if m.contains("signature does not match any trusted public key") {
            refused(Refusal::WrongKey)
        } else if m.contains("the catalog expired at") {
            refused(Refusal::Expired)
        } else if (m.contains("offline and ") && m.contains(" is not in the cache"))
            || (m.contains("could not fetch ") && m.contains(" deadline"))
        {
            Problem::NoNetwork { detail: detail.clone() }
        } else {
            Problem::Other { headline: "The disk images could not be mounted".to_string(), detail }
        }
    }

    pub fn headline(&self) -> String {
        match self {
            Problem::NoNetwork { .. } => "No network, and nothing is cached".to_string(),
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
            Problem::NoNetwork { detail } | Problem::CatalogRefused { detail, .. } | Problem::Other { detail, .. } => {
                detail
            }
        }
    }

    /// What a person can do, in plain words.
    pub fn what_to_do(&self) -> Vec<String> {
        match self {
            Problem::NoNetwork { .. } => vec![
                "No server answered, and no snapshot is fully cached, so nothing can boot.".into(),
                "Plug in a network cable (wired, with DHCP) or check that the server is up.".into(),
                "A snapshot booted once with the network stays bootable offline when fully cached.".into(),
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
    fn blockfs_messages_are_classified_like_its_errors() {
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
            blockfs::Error::invalid("x", "y"),
        ];
        for e in errors {
            // blockfs prints `blockfs: {error}`; the caller strips the prefix.
            let from_text = Problem::from_message(&e.to_string());
            assert_eq!(from_text, Problem::from_blockfs(&e), "{e}");
        }
    }
}
