//! Byte sizes as people write them (`512M`, `4G`, `262144`) and as they read
//! them (`1.5 GiB`). Binary units throughout: disks, blocks and caches are sized
//! in powers of two. The one parser and formatter of the workspace: command
//! lines, the menu, `image-build` reports and `blockfs status` all use these.

/// Why a text is not a size. The message says what a size looks like.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSizeError {
    /// No number where the size should start (`G`, `ten`, `-1G`).
    #[error("{0:?} is not a size (examples: 262144, 512M, 4G)")]
    NotASize(String),
    /// A number followed by something that is not a unit (`5X`).
    #[error("{0:?} has an unknown unit (use K, M, G or T)")]
    UnknownUnit(String),
    /// More than 2^64 - 1 bytes.
    #[error("{0:?} is too large")]
    TooLarge(String),
}

/// Parses a size in bytes: a whole number with an optional unit `K`, `M`, `G`
/// or `T`, powers of 1024. Case does not matter, and `B`, `KB`, `KiB`, `MB`,
/// `MiB`, … are accepted and mean the same (`10MB` is 10 MiB). Spaces around
/// the text and between number and unit are allowed.
///
/// # Errors
/// [`ParseSizeError`] when there is no number, the unit is unknown, or the
/// size does not fit in a `u64`.
pub fn parse_size(text: &str) -> Result<u64, ParseSizeError> {
    let t = text.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    if number.is_empty() {
        return Err(ParseSizeError::NotASize(text.to_string()));
    }
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(ParseSizeError::UnknownUnit(text.to_string())),
    };
    // Only digits are left, so a parse failure is an overflow.
    let number: u64 = number.parse().map_err(|_| ParseSizeError::TooLarge(text.to_string()))?;
    number.checked_mul(1u64 << shift).ok_or_else(|| ParseSizeError::TooLarge(text.to_string()))
}

/// A byte count for people: `512 B`, `12 KiB`, `1.5 GiB`. One decimal below
/// 10 of a unit, none above, so it stays short on an 80-column screen.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256K"), Ok(262_144));
        assert_eq!(parse_size("1k"), Ok(1024));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1536M"), Ok(1536 << 20));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert_eq!(parse_size(" 4 G "), Ok(4 << 30));
        assert_eq!(parse_size("512B"), Ok(512));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        for bad in ["ten", "G", "-1G", ""] {
            assert_eq!(parse_size(bad), Err(ParseSizeError::NotASize(bad.to_string())), "{bad}");
        }
        assert_eq!(parse_size("5X"), Err(ParseSizeError::UnknownUnit("5X".into())));
        assert_eq!(parse_size("5IB"), Err(ParseSizeError::UnknownUnit("5IB".into())));
        assert!(matches!(parse_size("99999999999T"), Err(ParseSizeError::TooLarge(_))));
        assert!(matches!(parse_size("99999999999999999999999"), Err(ParseSizeError::TooLarge(_))));
        assert_eq!(parse_size("5X").unwrap_err().to_string(), "\"5X\" has an unknown unit (use K, M, G or T)");
    }

    #[test]
    fn sizes_format_short() {
        assert_eq!(format_size(0), "0 B");
        assert_eq!(format_size(512), "512 B");
        assert_eq!(format_size(1023), "1023 B");
        assert_eq!(format_size(1536), "1.5 KiB");
        assert_eq!(format_size(300 << 20), "300 MiB");
        assert_eq!(format_size(2 << 30), "2.0 GiB");
        assert_eq!(format_size(3 << 50), "3.0 PiB");
    }
}
