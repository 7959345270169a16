//! Exact amounts of money as the read store takes them: plain decimal text such as `10.5`.
//!
//! Amounts arrive as JSON numbers in events and as text in the `withBalance` route. Both are
//! read from their exact text (serde_json's `arbitrary_precision` keeps it), never through a
//! float, so `0.1 + 0.2` deposits make `0.30`. Scientific notation (`1.5e1`) is spelled out,
//! because the store's decimal columns take plain text only. Like the store's columns, an amount
//! has at most 2 fractional digits and 15 integer digits.

use std::fmt;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// A decimal in plain notation, without redundant zeros: `0`, `-10.5`, `1500`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Amount(String);

impl Amount {
    pub const MAX_INTEGER_DIGITS: usize = 15;
    pub const MAX_FRACTION_DIGITS: usize = 2;

    /// Reads a JSON number's text (`12.50`, `-3`, `1.25E1`) exactly.
    pub fn parse(text: &str) -> Result<Self, String> {
        let not_a_number = || format!("{text:?} is not a number");
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => {
                let digits = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
                if !is_digits(digits) {
                    return Err(not_a_number());
                }
                (mantissa, exponent.parse::<i64>().map_err(|_| not_a_number())?)
            }
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, "0"));
        if !is_digits(whole) || !is_digits(fraction) {
            return Err(not_a_number());
        }

        // The significant digits, and where the decimal point falls among them.
        let digits = format!("{whole}{fraction}");
        let leading_zeros = digits.len() - digits.trim_start_matches('0').len();
        let digits = digits.trim_matches('0');
        if digits.is_empty() {
            return Ok(Self("0".to_owned()));
        }
        // Lengths of texts are far below `i64::MAX`; only the exponent can be extreme.
        let point = (whole.len() as i64 - leading_zeros as i64).saturating_add(exponent);
        let integer_digits = usize::try_from(point).unwrap_or(0);
        let fraction_digits = (digits.len() as i64).saturating_sub(point);
        if integer_digits > Self::MAX_INTEGER_DIGITS {
            return Err(format!("{text} is too large: at most {} integer digits", Self::MAX_INTEGER_DIGITS));
        }
        if fraction_digits > Self::MAX_FRACTION_DIGITS as i64 {
            return Err(format!("{text} has more than {} decimal places", Self::MAX_FRACTION_DIGITS));
        }

        let sign = if negative { "-" } else { "" };
        let plain = if point <= 0 {
            format!("{sign}0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else if integer_digits >= digits.len() {
            format!("{sign}{digits}{}", "0".repeat(integer_digits - digits.len()))
        } else {
            let (whole, fraction) = digits.split_at(integer_digits);
            format!("{sign}{whole}.{fraction}")
        };
        Ok(Self(plain))
    }

    /// `-self`.
    pub fn negated(&self) -> Self {
        match self.0.strip_prefix('-') {
            Some(positive) => Self(positive.to_owned()),
            None if self.0 == "0" => self.clone(),
            None => Self(format!("-{}", self.0)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_digits(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Only a JSON number is an amount: `"10.5"` (a string) is refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        Self::parse(number.as_str()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn plain(text: &str) -> String {
        Amount::parse(text).unwrap_or_else(|e| panic!("{text}: {e}")).0
    }

    #[test]
    fn spells_numbers_out_exactly() {
        assert_eq!(plain("10.5"), "10.5");
        assert_eq!(plain("10.50"), "10.5");
        assert_eq!(plain("-0.30"), "-0.3");
        assert_eq!(plain("007"), "7");
        assert_eq!(plain("1500"), "1500");
        assert_eq!(plain("0.05"), "0.05");
        assert_eq!(plain("1.25E1"), "12.5");
        assert_eq!(plain("1e+3"), "1000");
        assert_eq!(plain("1055e-2"), "10.55");
        assert_eq!(plain("5e-2"), "0.05");
        assert_eq!(plain("-0.0"), "0");
        assert_eq!(plain("0e999999"), "0");
        assert_eq!(plain("999999999999999.99"), "999999999999999.99");
    }

    #[test]
    fn refuses_what_the_store_cannot_hold_exactly() {
        for text in ["", "-", "abc", "1.", ".5", "1e", "1e+", "+1", "1,5", " 1", "NaN", "0x10"] {
            assert!(Amount::parse(text).is_err(), "{text:?} should be refused");
        }
        assert!(Amount::parse("10.005").is_err_and(|e| e.contains("decimal places")));
        assert!(Amount::parse("1e-3").is_err_and(|e| e.contains("decimal places")));
        assert!(Amount::parse("1000000000000000").is_err_and(|e| e.contains("too large")));
        assert!(Amount::parse("1e99999999999999999999").is_err());
    }

    #[test]
    fn negates() {
        assert_eq!(Amount::parse("10.5").map(|a| a.negated().0), Ok("-10.5".to_owned()));
        assert_eq!(Amount::parse("-2").map(|a| a.negated().0), Ok("2".to_owned()));
        assert_eq!(Amount::parse("0").map(|a| a.negated().0), Ok("0".to_owned()));
    }

    #[test]
    fn is_a_json_number_only() {
        assert_eq!(serde_json::from_str::<Amount>("0.30").map(|a| a.0).ok(), Some("0.3".to_owned()));
        assert!(serde_json::from_str::<Amount>("\"0.30\"").is_err());
    }
}
