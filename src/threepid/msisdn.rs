//! Phone numbers: what we accept and the normal form we store (E.164 digits without `+`),
//! with libphonenumber's rules (the `phonenumber` crate).

use std::str::FromStr;

use phonenumber::{Mode, PhoneNumber, Type, country};

use crate::config::CostlyNumberType;
use crate::error::{Error, ErrorKind, Result};

/// A checked phone number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msisdn {
    /// E.164 digits without `+`, e.g. `447911123456`: the stored and hashed form.
    pub digits: String,
    /// International format for people, e.g. `+44 7911 123456`.
    pub international: String,
    /// The country calling code, e.g. 44.
    pub calling_code: u16,
    /// The ISO 3166 alpha-2 region of the number, when the metadata knows it.
    pub region: Option<String>,
    /// Whether it is a premium-rate, shared-cost or UAN number (SMS pumping targets them).
    pub costly: Option<CostlyNumberType>,
}

/// Longest accepted `phone_number` input.
const MAX_INPUT: usize = 64;

/// Parses `phone_number` as dialled from `country` (ISO 3166 alpha-2) and requires a valid
/// number: 400 `M_INVALID_ADDRESS` otherwise (400 `M_INVALID_PARAM` for a bad country code).
pub fn normalise(country: &str, phone_number: &str) -> Result<Msisdn> {
    let bad = |why: &str| {
        Error::new(
            ErrorKind::InvalidAddress,
            format!("Invalid phone number: {why}"),
        )
    };
    let country = country.trim().to_ascii_uppercase();
    let id = country::Id::from_str(&country).map_err(|_| {
        Error::new(
            ErrorKind::InvalidParam,
            "Invalid country: use a two-letter ISO 3166 code such as GB",
        )
    })?;
    if phone_number.len() > MAX_INPUT || phone_number.chars().any(char::is_control) {
        return Err(bad("it is too long or has control characters"));
    }
    let number: PhoneNumber =
        phonenumber::parse(Some(id), phone_number).map_err(|e| bad(&e.to_string()))?;
    if number.extension().is_some() {
        return Err(bad("extensions cannot receive SMS"));
    }
    if !phonenumber::is_valid(&number) {
        return Err(bad("it is not a number in use"));
    }
    let e164 = number.format().mode(Mode::E164).to_string();
    let costly = match number.number_type(&phonenumber::metadata::DATABASE) {
        Type::PremiumRate => Some(CostlyNumberType::PremiumRate),
        Type::SharedCost => Some(CostlyNumberType::SharedCost),
        Type::Uan => Some(CostlyNumberType::Uan),
        _ => None,
    };
    Ok(Msisdn {
        digits: e164.trim_start_matches('+').to_string(),
        international: number.format().mode(Mode::International).to_string(),
        calling_code: number.code().value(),
        region: number.country().id().map(|id| format!("{id:?}")),
        costly,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_normalised_to_e164_digits() {
        for (country, input, digits, intl) in [
            ("GB", "07911 123456", "447911123456", "+44 7911 123456"),
            ("gb", "+44 7911 123456", "447911123456", "+44 7911 123456"),
            ("US", "(415) 555-2671", "14155552671", "+1 415-555-2671"),
            ("US", "+1 234 567 8910", "12345678910", "+1 234-567-8910"),
            ("FR", "06 12 34 56 78", "33612345678", "+33 6 12 34 56 78"),
            ("DE", "0151 23456789", "4915123456789", "+49 1512 3456789"),
            // Dialled from GB, an international number keeps its own country.
            (
                "GB",
                "+33 6 12 34 56 78",
                "33612345678",
                "+33 6 12 34 56 78",
            ),
            (
                "GB",
                "0033 6 12 34 56 78",
                "33612345678",
                "+33 6 12 34 56 78",
            ),
        ] {
            let m = normalise(country, input).unwrap_or_else(|e| panic!("{country} {input}: {e}"));
            assert_eq!(
                (m.digits.as_str(), m.international.as_str()),
                (digits, intl),
                "{country} {input}"
            );
        }
        let fr = normalise("GB", "+33612345678").unwrap();
        assert_eq!((fr.calling_code, fr.region.as_deref()), (33, Some("FR")));
    }

    #[test]
    fn crown_dependencies_share_44_but_have_their_own_regions() {
        // What config.example.yaml says next to allowedCountries: [GB] refuses these.
        for (input, region) in [
            ("+44 7400 123456", "GB"),
            ("+44 20 7946 0018", "GB"),
            ("+44 7781 123456", "GG"), // Guernsey mobile
            ("+44 7911 123456", "GG"), // 07911 1x is Guernsey's too
            ("+44 7797 123456", "JE"), // Jersey mobile
            ("+44 7624 123456", "IM"), // Isle of Man mobile
        ] {
            let m = normalise("GB", input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(
                (m.calling_code, m.region.as_deref()),
                (44, Some(region)),
                "{input}"
            );
        }
    }

    #[test]
    fn premium_rate_shared_cost_and_uan_numbers_are_recognised() {
        use CostlyNumberType::*;
        for (country, input, costly) in [
            ("GB", "0909 879 0000", Some(PremiumRate)), // Ofcom's drama range for 09
            ("GB", "+44 901 234 5678", Some(PremiumRate)),
            ("GB", "0871 234 5678", Some(PremiumRate)),
            ("FR", "08 91 12 34 56", Some(PremiumRate)),
            ("DE", "0900 1234567", Some(PremiumRate)),
            ("FR", "08 84 01 23 45", Some(SharedCost)),
            ("DE", "01801 2345", Some(SharedCost)),
            ("GB", "0300 123 4567", Some(Uan)),
            ("FR", "08 06 12 34 56", Some(Uan)),
            ("GB", "07911 123456", None),
            ("GB", "020 7946 0000", None),
            ("US", "(415) 555-2671", None),
            ("FR", "06 12 34 56 78", None),
            ("GB", "0800 123 4567", None), // toll free: costs the sender nothing extra
        ] {
            let m = normalise(country, input).unwrap_or_else(|e| panic!("{country} {input}: {e}"));
            assert_eq!(m.costly, costly, "{country} {input}");
        }
    }

    #[test]
    fn invalid_numbers_are_refused() {
        for (country, input) in [
            ("US", "12"),
            ("GB", "abc"),
            ("GB", "07700 900001"), // Ofcom's drama range: never assigned
            ("US", "555-0100"),
            ("GB", "07911 123456 ext. 12"),
            ("GB", "07911\n123456"),
        ] {
            assert_eq!(
                normalise(country, input).unwrap_err().kind(),
                ErrorKind::InvalidAddress,
                "{country} {input}"
            );
        }
        assert_eq!(
            normalise("XX", "0612345678").unwrap_err().kind(),
            ErrorKind::InvalidParam
        );
        assert_eq!(
            normalise("GBR", "07911123456").unwrap_err().kind(),
            ErrorKind::InvalidParam
        );
    }
}
