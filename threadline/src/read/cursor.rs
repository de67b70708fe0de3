//! Opaque keyset cursors, bound to the read and filter they were made for.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::Error;

/// Where the next page of a read starts: after the entry at `(time, id)`.
///
/// The string form is URL-safe (`0-9`, `a-f`, `.`, `-`) and carries a fingerprint of the
/// read and filter that made it; a cursor given to another read or filter is refused
/// with [`Error::InvalidCursor`]. Treat it as opaque: its form may change between
/// releases.
///
/// ```
/// use threadline::read::Cursor;
///
/// let bad = "not-a-cursor".parse::<Cursor>();
/// assert!(bad.is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cursor {
    micros: i64,
    id: i64,
    fingerprint: u64,
}

const VERSION: &str = "c1";

impl Cursor {
    pub(crate) fn new(at: DateTime<Utc>, id: i64, fingerprint: u64) -> Self {
        Cursor {
            micros: at.timestamp_micros(),
            id,
            fingerprint,
        }
    }

    /// The position, after checking that the cursor was made for `fingerprint`.
    pub(crate) fn position(&self, fingerprint: u64) -> Result<(DateTime<Utc>, i64), Error> {
        if self.fingerprint != fingerprint {
            return Err(Error::InvalidCursor(
                "the cursor was made for another read or filter; start again without it".into(),
            ));
        }
        let at = DateTime::from_timestamp_micros(self.micros)
            .ok_or_else(|| Error::InvalidCursor("the cursor's time is out of range".into()))?;
        Ok((at, self.id))
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{VERSION}.{}.{}.{:016x}", self.micros, self.id, self.fingerprint)
    }
}

impl FromStr for Cursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let malformed = || Error::InvalidCursor(format!("{:?} is not a cursor this release made", truncate(s)));
        let mut parts = s.split('.');
        let (Some(VERSION), Some(micros), Some(id), Some(fingerprint), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed());
        };
        if fingerprint.len() != 16 {
            return Err(malformed());
        }
        Ok(Cursor {
            micros: micros.parse().map_err(|_| malformed())?,
            id: id.parse().map_err(|_| malformed())?,
            fingerprint: u64::from_str_radix(fingerprint, 16).map_err(|_| malformed())?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// At most 64 characters of `s`, for error messages.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// FNV-1a: a stable 64-bit fingerprint of a read's canonical description.
pub(crate) fn fingerprint(description: &str) -> u64 {
    description.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_stay_bound_to_their_read() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let cursor = Cursor::new(at, 42, fingerprint("timeline|a"));
        let text = cursor.to_string();
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        );
        let back: Cursor = text.parse().unwrap();
        assert_eq!(back.position(fingerprint("timeline|a")).unwrap(), (at, 42));
        assert!(matches!(
            back.position(fingerprint("timeline|b")),
            Err(Error::InvalidCursor(_))
        ));
    }

    #[test]
    fn malformed_cursors_are_refused() {
        for bad in [
            "",
            "c1",
            "c1.1.2",
            "c1.x.2.0000000000000000",
            "c2.1.2.0000000000000000",
            "c1.1.2.00",
            "c1.1.2.000000000000000g",
            "c1.1.2.0000000000000000.9",
        ] {
            assert!(matches!(bad.parse::<Cursor>(), Err(Error::InvalidCursor(_))), "{bad}");
        }
    }
}
