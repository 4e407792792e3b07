//! How far a snapshot's start has come, from the mount's live figures: the boot
//! working set (the profile prefetch) when the snapshot has a profile, else the
//! bytes fetched since the start began.

use std::time::Duration;

use blockfs::catalog::Snapshot;
use blockfs::status::Status;

use crate::format;
use crate::state::Target;

/// How long to wait for blockfs to announce a profile prefetch before
/// launching anyway (QEMU's own reads then drive the fetching).
pub const PREFETCH_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// 0.0 to 1.0.
    pub ratio: f64,
    pub label: String,
    /// The boot working set is all here (or nothing more will come).
    pub complete: bool,
    /// The prefetch of the profile is what is measured.
    pub from_profile: bool,
}

pub fn progress(status: Option<&Status>, target: &Target, snapshot: &Snapshot, fetched_at_start: u64) -> Progress {
    let Some(status) = status else {
        return Progress {
            ratio: 0.0,
            label: "waiting for blockfs's figures".to_string(),
            complete: false,
            from_profile: false,
        };
    };
    if let Some(p) = status
        .prefetch
        .as_ref()
        .filter(|p| p.distribution == target.distribution && p.date == target.date && p.total_blocks > 0)
    {
        let ratio = p.done_blocks as f64 / p.total_blocks as f64;
        let mut label =
            format!("boot working set: {} of {} blocks ({})", p.done_blocks, p.total_blocks, format::percent(ratio));
        if let Some(why) = &p.stopped {
            label.push_str(&format!("; stopped: {why}"));
        }
        return Progress {
            ratio: ratio.min(1.0),
            label,
            complete: p.done_blocks >= p.total_blocks || p.stopped.is_some(),
            from_profile: true,
        };
    }
    let snap = status.snapshot(&target.distribution, &target.date);
    if snap.is_some_and(|s| s.fully_cached()) {
        return Progress {
            ratio: 1.0,
            label: "every block is cached: boots without the network".to_string(),
            complete: true,
            from_profile: false,
        };
    }
    let fetched = status.fetched_bytes.saturating_sub(fetched_at_start);
    let ratio = if snapshot.stored_bytes == 0 { 0.0 } else { (fetched as f64 / snapshot.stored_bytes as f64).min(1.0) };
    let mut label = format!("fetched {} of at most {}", format::bytes(fetched), format::bytes(snapshot.stored_bytes));
    if let Some(f) = snap.and_then(|s| s.cached_fraction()) {
        label.push_str(&format!(" · {} cached", format::percent(f)));
    }
    Progress { ratio, label, complete: false, from_profile: false }
}

/// Whether a start may hand over to QEMU: the image answered its first read,
/// and either there is no profile to wait for, the working set is here, or
/// blockfs did not announce a prefetch in time.
pub fn ready_to_launch(
    image_ready: bool,
    has_profile: bool,
    prefetch_seen: bool,
    p: &Progress,
    waited: Duration,
) -> bool {
    image_ready && (!has_profile || p.complete || (!prefetch_seen && waited >= PREFETCH_WAIT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::tests::{snapshot, status};
    use blockfs::status::PrefetchStatus;

    fn target() -> Target {
        Target {
            distribution: "bookworm".into(),
            title: "Debian 12".into(),
            date: "2026-11-22".into(),
            via_latest: false,
        }
    }

    #[test]
    fn profile_prefetch_is_the_measure_when_known() {
        let mut s = status(true, &[]);
        s.prefetch = Some(PrefetchStatus {
            distribution: "bookworm".into(),
            date: "2026-11-22".into(),
            done_blocks: 30,
            total_blocks: 120,
            stopped: None,
        });
        let p = progress(Some(&s), &target(), &snapshot("2026-11-22", ""), 0);
        assert!(p.from_profile && !p.complete);
        assert_eq!(p.ratio, 0.25);
        assert!(p.label.contains("30 of 120 blocks (25%)"), "{}", p.label);
    }

    #[test]
    fn else_bytes_fetched_since_the_start() {
        let s = status(true, &[("bookworm", "2026-11-22", 10, 100)]);
        // 120 MiB fetched in all, 100 MiB of them before this start.
        let p = progress(Some(&s), &target(), &snapshot("2026-11-22", ""), 100 << 20);
        assert!(!p.from_profile);
        assert!(p.label.contains("fetched 20 MiB of at most 850 MiB"), "{}", p.label);
        assert!(p.label.contains("10% cached"), "{}", p.label);
        let full = status(true, &[("bookworm", "2026-11-22", 100, 100)]);
        assert!(progress(Some(&full), &target(), &snapshot("2026-11-22", ""), 0).complete);
    }

    #[test]
    fn launch_rules() {
        let p = Progress { ratio: 0.5, label: String::new(), complete: false, from_profile: true };
        assert!(!ready_to_launch(false, false, false, &p, Duration::ZERO), "image first");
        assert!(ready_to_launch(true, false, false, &p, Duration::ZERO), "no profile: go");
        assert!(!ready_to_launch(true, true, true, &p, Duration::from_secs(60)), "prefetch under way");
        assert!(!ready_to_launch(true, true, false, &p, Duration::from_secs(1)));
        assert!(ready_to_launch(true, true, false, &p, PREFETCH_WAIT), "no prefetch announced");
        let done = Progress { complete: true, ..p };
        assert!(ready_to_launch(true, true, true, &done, Duration::ZERO));
    }
}
