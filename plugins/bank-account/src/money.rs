//! Money: an exact decimal amount with at most two fractional digits.
//!
//! The seed kept balances in a `double`; here every amount is a [`Decimal`] read from the JSON
//! number text as written (serde_json's `arbitrary_precision` keeps it), so `0.1 + 0.2` is
//! `0.3`. Parsing is where bad amounts are refused: non-numbers, more than two decimal places,
//! and magnitudes beyond [`Money::MAX`], which keeps all arithmetic on balances exact.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An exact amount of money, written as a JSON number: `10.5`, `0.30`, `1e3`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Money(Decimal);

impl Money {
    pub const ZERO: Money = Money(Decimal::ZERO);

    /// Fractional digits an amount may have.
    pub const DECIMAL_PLACES: u32 = 2;

    /// The largest amount (and balance), 999 999 999 999 999.99: 15 integer digits, as in a
    /// SQL `DECIMAL(17, 2)`. Far inside `Decimal`'s range, so the sum or difference of two
    /// amounts is always exact. (Mantissa 10^17 - 1 = 0x0163_4578_5D89_FFFF, scale 2.)
    pub const MAX: Money = Money(Decimal::from_parts(0x5D89_FFFF, 0x0163_4578, 0, false, 2));

    pub fn is_positive(self) -> bool {
        self.0 > Decimal::ZERO
    }

    pub fn is_negative(self) -> bool {
        self.0 < Decimal::ZERO
    }

    /// `self + other`, or `None` beyond [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::within_bounds(self.0 + other.0)
    }

    /// `self - other`, or `None` beyond [`Money::MAX`].
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::within_bounds(self.0 - other.0)
    }

    fn within_bounds(value: Decimal) -> Option<Money> {
        (value.abs() <= Money::MAX.0).then_some(Money(value))
    }
}

/// Why a text is not an amount of money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoneyError {
    /// Not a number, or a number `Decimal` cannot hold exactly.
    NotExact(String),
    /// More fractional digits than [`Money::DECIMAL_PLACES`].
    TooManyDecimalPlaces(String),
    /// Larger in magnitude than [`Money::MAX`].
    TooLarge(String),
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotExact(text) => write!(f, "{text} is not an exact amount of money"),
            Self::TooManyDecimalPlaces(text) => write!(
                f,
                "{text} has too many decimal places: an amount of money has at most {} decimal places",
                Money::DECIMAL_PLACES
            ),
            Self::TooLarge(text) => {
                write!(f, "{text} is too large: an amount of money is at most {}", Money::MAX)
            }
        }
    }
}

impl std::error::Error for MoneyError {}

impl FromStr for Money {
    type Err = MoneyError;

    /// Reads decimal or scientific notation (`12.5`, `1.25E1`) exactly, never through a float.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut value = exact_decimal(text).ok_or_else(|| MoneyError::NotExact(text.to_owned()))?;
        if value.scale() > Money::DECIMAL_PLACES {
            // `10.500` is `10.5`: only digits that change the value count.
            value = value.normalize();
            if value.scale() > Money::DECIMAL_PLACES {
                return Err(MoneyError::TooManyDecimalPlaces(text.to_owned()));
            }
        }
        if value.is_zero() {
            value.set_sign_positive(true);
        }
        Money::within_bounds(value).ok_or_else(|| MoneyError::TooLarge(text.to_owned()))
    }
}

/// `mantissa × 10^exponent` as a `Decimal`, or `None` when it cannot be held exactly.
fn exact_decimal(text: &str) -> Option<Decimal> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((mantissa, exponent)) => (mantissa, exponent.parse::<i64>().ok()?),
        None => (text, 0),
    };
    let mut value = Decimal::from_str_exact(mantissa).ok()?;
    let scale = i64::from(value.scale()).checked_sub(exponent)?;
    if scale >= 0 {
        value.set_scale(u32::try_from(scale).ok()?).ok()?;
    } else {
        // Scale the mantissa up by the rest of the power of ten; past 28 digits nothing but
        // zero fits, so the loop ends at the first overflow.
        value.set_scale(0).ok()?;
        let mut power = scale.unsigned_abs();
        while power > 0 && !value.is_zero() {
            value = value.checked_mul(Decimal::TEN)?;
            power -= 1;
        }
    }
    Some(value)
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        rust_decimal::serde::arbitrary_precision::serialize(&self.0, serializer)
    }
}

impl schemars::JsonSchema for Money {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Money".into()
    }

    /// What [`Deserialize`] reads: a JSON number within [`Money::MAX`] either way (at most two
    /// decimal places, which a schema of binary numbers cannot say exactly).
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "number",
            "minimum": -999_999_999_999_999.99_f64,
            "maximum": 999_999_999_999_999.99_f64,
            "description": "An amount with at most two decimal places.",
        })
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Only a JSON number is money: `"10.5"` (a string) or `true` is refused.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let number = serde_json::Number::deserialize(deserializer)?;
        number.as_str().parse().map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn parse(text: &str) -> Result<String, MoneyError> {
        text.parse::<Money>().map(|money| money.to_string())
    }

    #[test]
    fn max_is_fifteen_integer_digits_and_two_decimal_places() {
        assert_eq!(Money::MAX.to_string(), "999999999999999.99");
    }

    #[test]
    fn reads_plain_and_scientific_notation_exactly() {
        assert_eq!(parse("10.5"), Ok("10.5".to_owned()));
        assert_eq!(parse("-10.50"), Ok("-10.50".to_owned()));
        assert_eq!(parse("10.500"), Ok("10.5".to_owned()));
        assert_eq!(parse("1.0E7"), Ok("10000000".to_owned()));
        assert_eq!(parse("1e+2"), Ok("100".to_owned()));
        assert_eq!(parse("1055e-2"), Ok("10.55".to_owned()));
        assert_eq!(parse("0e999"), Ok("0".to_owned()));
        assert_eq!(parse("-0.0"), Ok("0.0".to_owned()));
        assert_eq!(parse("999999999999999.99"), Ok("999999999999999.99".to_owned()));
    }

    #[test]
    fn refuses_what_is_not_exact_money() {
        assert_eq!(parse("10.005"), Err(MoneyError::TooManyDecimalPlaces("10.005".to_owned())));
        assert_eq!(parse("1e-3"), Err(MoneyError::TooManyDecimalPlaces("1e-3".to_owned())));
        assert_eq!(parse("1000000000000000"), Err(MoneyError::TooLarge("1000000000000000".to_owned())));
        assert_eq!(parse("-1e15"), Err(MoneyError::TooLarge("-1e15".to_owned())));
        assert_eq!(parse("1e29"), Err(MoneyError::NotExact("1e29".to_owned())));
        assert_eq!(parse("1e-99999999999999999999"), Err(MoneyError::NotExact("1e-99999999999999999999".to_owned())));
        assert_eq!(parse("abc"), Err(MoneyError::NotExact("abc".to_owned())));
    }

    #[test]
    fn arithmetic_stays_within_bounds() {
        let cent = Money(Decimal::new(1, 2));
        assert_eq!(Money::MAX.checked_add(cent), None);
        assert_eq!(Money::ZERO.checked_sub(Money::MAX), Some(Money(-Money::MAX.0)));
        assert_eq!(Money(Decimal::new(1, 1)).checked_add(Money(Decimal::new(2, 1))), Some(Money(Decimal::new(3, 1))));
    }

    #[test]
    fn is_a_json_number_both_ways() {
        let money: Money = serde_json::from_str("0.30").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_string(&money).ok(), Some("0.30".to_owned()));
        assert!(serde_json::from_str::<Money>("\"0.30\"").is_err());
    }
}
