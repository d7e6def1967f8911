//! Percent-encoding of the parts of URLs Zoe writes (RFC 3986), with the `percent-encoding`
//! crate: one set of characters for the client's paths and queries, the listing's `Link`, the web
//! pages' redirects and the application hosts' sign-in links.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but RFC 3986's unreserved characters (letters, digits, `-._~`).
const RESERVED: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
/// The same, but `/`: a path given as a query value stays readable.
const RESERVED_BUT_SLASH: &AsciiSet = &RESERVED.remove(b'/');

/// Percent-encodes a path segment or a query value: everything but unreserved characters.
pub fn encode(s: &str) -> String {
    utf8_percent_encode(s, RESERVED).to_string()
}

/// Percent-encodes a path as a query value, keeping its slashes.
pub fn encode_path(s: &str) -> String {
    utf8_percent_encode(s, RESERVED_BUT_SLASH).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_pass() {
        assert_eq!(encode("alice-2"), "alice-2");
        assert_eq!(encode("cleaning up"), "cleaning%20up");
        assert_eq!(encode("a/b?c"), "a%2Fb%3Fc");
        assert_eq!(encode("a&b=c d"), "a%26b%3Dc%20d");
        assert_eq!(encode_path("/lab?a=1&b=é"), "/lab%3Fa%3D1%26b%3D%C3%A9");
    }
}
