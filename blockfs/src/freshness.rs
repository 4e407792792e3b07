//! Freshness: what "now" means when a catalog's `expires` is checked, and
//! which catalogs may pin a client (docs/FORMAT.md, "Freshness").
//!
//! A PC with a flat clock battery believes it is 1970 (or 2000), which would
//! make every expired catalog look valid. So the client bounds its clock from
//! below: effective now = max(system clock, the build time of this binary, the
//! `generated` time of the newest catalog it verified). A clock before the
//! build time is known to be wrong; it is reported, and then the client cannot
//! judge whether a catalog is from the future, so that check is skipped.

use time::OffsetDateTime;

use circular_format::signing::MAX_FUTURE_SKEW;

/// Seconds since 1970 when this binary's source was committed (or
/// `SOURCE_DATE_EPOCH`); see build.rs.
pub fn build_time() -> OffsetDateTime {
    let secs: i64 = env!("CIRCULAR_BUILD_TIME").parse().unwrap_or(0);
    OffsetDateTime::from_unix_timestamp(secs).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The clock as the trust rules see it.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// What the system clock says.
    pub system: OffsetDateTime,
    /// The build time of this binary.
    pub build: OffsetDateTime,
    /// The newest signed `generated` time this client trusts (its cached catalog's).
    pub newest_seen: Option<OffsetDateTime>,
}

impl Clock {
    /// The system clock now, with this binary's build time.
    pub fn system_now() -> Clock {
        Clock { system: OffsetDateTime::now_utc(), build: build_time(), newest_seen: None }
    }

    /// False when the system clock is before this binary was built: it is wrong.
    pub fn plausible(&self) -> bool {
        self.system + MAX_FUTURE_SKEW >= self.build
    }

    /// Whether a trusted catalog generated at `generated` may pin this client
    /// (count as newest seen, bound the clock): not when a plausible clock
    /// says it comes from the future.
    pub fn may_pin(&self, generated: OffsetDateTime) -> bool {
        !self.plausible() || generated <= self.system + MAX_FUTURE_SKEW
    }

    /// The lower bound: the build time and the newest signed time seen.
    pub fn floor(&self) -> OffsetDateTime {
        self.newest_seen.map_or(self.build, |g| g.max(self.build))
    }

    /// Effective now: max(system clock, floor).
    pub fn now(&self) -> OffsetDateTime {
        self.system.max(self.floor())
    }

    /// A sentence for people when the system clock is far behind the floor.
    pub fn note(&self) -> Option<String> {
        let floor = self.floor();
        if self.system + time::Duration::days(1) >= floor {
            return None;
        }
        let show = circular_format::catalog::rfc3339;
        Some(format!(
            "the PC's clock says {}: it is wrong (a flat clock battery?), since {} is known to have passed; \
             catalogs are judged as if it were {} (set the clock to fix it)",
            show(self.system),
            show(floor),
            show(floor)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_clock_in_1970_is_bounded_by_the_build_and_the_newest_catalog() {
        let mut c =
            Clock { system: datetime!(1970-01-02 0:00 UTC), build: datetime!(2026-11-01 0:00 UTC), newest_seen: None };
        assert!(!c.plausible());
        assert_eq!(c.now(), datetime!(2026-11-01 0:00 UTC));
        c.newest_seen = Some(datetime!(2026-11-22 0:00 UTC));
        assert_eq!(c.now(), datetime!(2026-11-22 0:00 UTC));
        assert!(c.note().is_some_and(|n| n.contains("1970-01-02")));
        // A clock that cannot be trusted cannot say what is in the future.
        assert!(c.may_pin(datetime!(2099-01-01 0:00 UTC)));
    }

    #[test]
    fn a_right_clock_is_used_and_refuses_pins_from_the_future() {
        let c = Clock {
            system: datetime!(2026-11-29 0:00 UTC),
            build: datetime!(2026-11-01 0:00 UTC),
            newest_seen: Some(datetime!(2026-11-22 0:00 UTC)),
        };
        assert!(c.plausible());
        assert_eq!(c.now(), c.system);
        assert!(c.note().is_none());
        assert!(c.may_pin(datetime!(2026-11-29 0:30 UTC)));
        assert!(!c.may_pin(datetime!(2099-01-01 0:00 UTC)));
    }

    #[test]
    fn a_clock_a_little_behind_the_build_is_still_plausible() {
        // The build machine's clock and the PC's differ a little: up to
        // MAX_FUTURE_SKEW behind the build time is a clock that may be right.
        let build = datetime!(2026-11-01 0:00 UTC);
        let second = time::Duration::seconds(1);
        let behind = |by| Clock { system: build - by, build, newest_seen: None };
        assert!(behind(MAX_FUTURE_SKEW - second).plausible());
        assert!(behind(MAX_FUTURE_SKEW).plausible());
        assert!(!behind(MAX_FUTURE_SKEW + second).plausible());
    }

    #[test]
    fn the_clock_note_is_for_a_clock_more_than_a_day_behind() {
        // Hours behind the newest catalog is a publisher in another time of day,
        // not a broken clock: no note. Days behind is worth a sentence.
        let floor = datetime!(2026-11-22 12:00 UTC);
        let at = |system| Clock { system, build: datetime!(2026-11-01 0:00 UTC), newest_seen: Some(floor) };
        assert!(at(floor - time::Duration::hours(12)).note().is_none());
        assert!(at(floor - time::Duration::days(1)).note().is_none());
        assert!(at(floor - time::Duration::hours(25)).note().is_some());
    }
}
