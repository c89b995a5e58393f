//! The request id that ends every non-zero `errmsg`: ` rid: XXXXXXXX-XXXXXXXX-XXXXXXXX`.

use std::fmt;
use std::str::FromStr;

/// A request id: three groups of 8 lowercase hex digits, the first being the
/// request's Unix time in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rid {
    time: u32,
    a: u32,
    b: u32,
}

impl Rid {
    /// A rid for a request made at `unix_secs`, with two random groups.
    #[must_use]
    pub const fn new(unix_secs: u32, a: u32, b: u32) -> Rid {
        Rid {
            time: unix_secs,
            a,
            b,
        }
    }

    /// The Unix time (seconds) the request was made at.
    #[must_use]
    pub const fn unix_secs(self) -> u32 {
        self.time
    }

    /// Finds the rid at the end of an `errmsg` (`"... rid: 5f0b1b2c-1a2b3c4d-5e6f7a8b"`).
    #[must_use]
    pub fn from_errmsg(errmsg: &str) -> Option<Rid> {
        let (_, tail) = errmsg.rsplit_once(" rid: ")?;
        tail.parse().ok()
    }
}

impl fmt::Display for Rid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Every failed call and every logged one formats a rid: by hand, not through
        // `{:08x}` three times.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut text = [b'-'; 26];
        for (group, value) in [self.time, self.a, self.b].into_iter().enumerate() {
            for digit in 0..8 {
                let nibble = (value >> (28 - 4 * digit)) & 0xf;
                text[group * 9 + digit] = HEX[nibble as usize];
            }
        }
        // Only ASCII hex digits and dashes were written.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// The reason a string is not a rid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RidParseError;

impl fmt::Display for RidParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a rid is three groups of 8 lowercase hex digits joined by '-'")
    }
}

impl std::error::Error for RidParseError {}

impl FromStr for Rid {
    type Err = RidParseError;

    fn from_str(s: &str) -> Result<Rid, RidParseError> {
        let mut groups = s.split('-');
        let mut next = || -> Result<u32, RidParseError> {
            let group = groups.next().ok_or(RidParseError)?;
            let hex = group.len() == 8
                && group
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !hex {
                return Err(RidParseError);
            }
            u32::from_str_radix(group, 16).map_err(|_| RidParseError)
        };
        let rid = Rid {
            time: next()?,
            a: next()?,
            b: next()?,
        };
        if groups.next().is_some() {
            return Err(RidParseError);
        }
        Ok(rid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses() {
        let rid = Rid::new(0x5f0b_1b2c, 0x1a2b_3c4d, 0x0000_0001);
        assert_eq!(rid.to_string(), "5f0b1b2c-1a2b3c4d-00000001");
        assert_eq!("5f0b1b2c-1a2b3c4d-00000001".parse::<Rid>(), Ok(rid));
        assert_eq!(
            Rid::from_errmsg("invalid url rid: 5f0b1b2c-1a2b3c4d-00000001"),
            Some(rid)
        );
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "",
            "5f0b1b2c-1a2b3c4d",
            "5F0B1B2C-1a2b3c4d-00000001",
            "5f0b1b2c-1a2b3c4d-00000001-00000001",
            "5f0b1b2-1a2b3c4d-000000012",
            "+f0b1b2c-1a2b3c4d-00000001",
        ] {
            assert!(bad.parse::<Rid>().is_err(), "{bad}");
        }
    }
}
