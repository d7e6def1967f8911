//! Control characters made visible. Text that tenants wrote (names, commands, errors that repeat
//! them, container logs) reaches people through terminals: the `zoe` client's output and the
//! master's log. A raw escape sequence there can set a terminal's title, move its cursor, erase
//! lines or forge a line that seems to come from Zoe; a raw carriage return or newline can
//! overwrite or fake a log line. So such characters are shown as escapes (`\u{1b}`, `\r`).

use std::borrow::Cow;

/// Whether `c` is shown escaped, with `keep` the characters let through as they are.
fn escaped(c: char, keep: &[char]) -> bool {
    c.is_control() && !keep.contains(&c)
}

fn escape_but<'a>(s: &'a str, keep: &[char]) -> Cow<'a, str> {
    if !s.chars().any(|c| escaped(c, keep)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c, keep) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Every control character escaped, newlines and tabs too: for one field on one line.
pub fn controls(s: &str) -> Cow<'_, str> {
    escape_but(s, &[])
}

/// Control characters escaped except newlines and tabs: for text of several lines.
pub fn controls_but_lines(s: &str) -> Cow<'_, str> {
    escape_but(s, &['\n', '\t'])
}

/// JSON text (as `serde_json` writes it) with the control characters it leaves raw in strings
/// (DEL and the C1 range, U+007F to U+009F) written as `\u` escapes: the same document, safe on a
/// terminal. Newlines between its lines are kept.
pub fn json_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| escaped(c, &['\n'])) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if escaped(c, &['\n']) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Escapes a stream of bytes (a container's log) piece by piece, keeping newlines and tabs:
/// control characters as in [`controls_but_lines`], bytes that are not UTF-8 as `\xNN`. A
/// character split between two pieces is put together first.
#[derive(Default)]
pub struct StreamEscaper {
    /// The start of a character whose end is in the next piece.
    pending: Vec<u8>,
}

impl StreamEscaper {
    /// Appends the escaped form of `bytes` to `out`.
    pub fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let joined;
        let mut rest: &[u8] = if self.pending.is_empty() {
            bytes
        } else {
            self.pending.extend_from_slice(bytes);
            joined = std::mem::take(&mut self.pending);
            &joined
        };
        loop {
            match std::str::from_utf8(rest) {
                Ok(text) => {
                    out.extend_from_slice(controls_but_lines(text).as_bytes());
                    return;
                }
                Err(e) => {
                    let (good, bad) = rest.split_at(e.valid_up_to());
                    // Valid UTF-8 up to here, by the error's own word.
                    out.extend_from_slice(controls_but_lines(&String::from_utf8_lossy(good)).as_bytes());
                    match e.error_len() {
                        Some(n) => {
                            for b in &bad[..n] {
                                out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
                            }
                            rest = &bad[n..];
                        }
                        None => {
                            // An incomplete character at the end: wait for the rest.
                            self.pending = bad.to_vec();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// The end of the stream: a character left incomplete is shown as its bytes.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        for b in std::mem::take(&mut self.pending) {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPOOF: &str = "\u{1b}]0;PWNED\u{7}\u{1b}[1A\u{1b}[2K\rzoe: all good";

    #[test]
    fn fields_show_every_control_character_escaped() {
        assert_eq!(controls(SPOOF), "\\u{1b}]0;PWNED\\u{7}\\u{1b}[1A\\u{1b}[2K\\rzoe: all good");
        assert_eq!(controls("a\nb\tc\u{0}\u{7f}\u{9b}"), "a\\nb\\tc\\u{0}\\u{7f}\\u{9b}");
        assert!(matches!(controls("plain, é and 日本"), Cow::Borrowed(_)));
        assert_eq!(controls_but_lines("a\nb\tc\r\n"), "a\nb\tc\\r\n");
    }

    #[test]
    fn json_stays_json() {
        let v = serde_json::json!({"command": SPOOF, "c1": "\u{9b}2J\u{7f}", "plain": "é"});
        let pretty = serde_json::to_string_pretty(&v).unwrap();
        let safe = json_controls(&pretty);
        assert!(!safe.chars().any(|c| c.is_control() && c != '\n'), "{safe}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&safe).unwrap(), v);
    }

    #[test]
    fn a_stream_is_escaped_across_its_pieces() {
        let text = format!("ok é\n{SPOOF}\n\u{9b}31m red\n");
        let bytes = [text.as_bytes(), b"\xff tail \xc3"].concat();
        let whole = {
            let mut out = Vec::new();
            let mut e = StreamEscaper::default();
            e.feed(&bytes, &mut out);
            e.finish(&mut out);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(whole, format!("ok é\n{}\n\\u{{9b}}31m red\n\\xff tail \\xc3", controls(SPOOF)));
        // Cut anywhere, even inside a character, the result is the same.
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            let mut e = StreamEscaper::default();
            e.feed(&bytes[..cut], &mut out);
            e.feed(&bytes[cut..], &mut out);
            e.finish(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), whole, "cut at {cut}");
        }
    }
}
