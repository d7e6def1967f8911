//! Formatting for people: aligned tables, short times, sizes, and reading fields of the
//! server's JSON without failing on a missing one.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

/// A text field, or `-` when missing or null.
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        None | Some(Value::Null) => "-".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// A string field, or `""`.
pub fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Columns separated by two spaces, each as wide as its widest cell; the last one is not
/// padded.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let last = row.len().saturating_sub(1);
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            if i < last {
                let width = widths.get(i).copied().unwrap_or(0);
                line.extend(std::iter::repeat_n(' ', width.saturating_sub(cell.chars().count())));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Lines `key: value` with the values aligned, indented by `indent` spaces.
pub fn fields(indent: usize, pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&format!("{:indent$}{:<width$} {v}\n", "", format!("{k}:")));
    }
    out
}

fn parse_time(v: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(v.as_str()?, &Rfc3339).ok().map(|t| t.to_offset(UtcOffset::UTC))
}

/// An RFC 3339 time as `2024-05-01 12:34` (UTC), `-` when absent, as is when unparsable.
pub fn short_time(v: &Value) -> String {
    match parse_time(v) {
        Some(t) => {
            t.format(format_description!("[year]-[month]-[day] [hour]:[minute]")).unwrap_or_else(|_| v.to_string())
        }
        None => raw_or_dash(v),
    }
}

/// An RFC 3339 time as `2024-05-01 12:34:56 UTC`, `-` when absent, as is when unparsable.
pub fn long_time(v: &Value) -> String {
    match parse_time(v) {
        Some(t) => t
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
            .unwrap_or_else(|_| v.to_string()),
        None => raw_or_dash(v),
    }
}

fn raw_or_dash(v: &Value) -> String {
    match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Bytes in binary units: `64.0 MiB`.
pub fn bytes(v: &Value) -> String {
    let Some(n) = v.as_f64() else {
        return "-".to_string();
    };
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit.min(UNITS.len() - 1)])
    }
}

/// A number without a useless `.0`.
pub fn number(v: &Value) -> String {
    match v.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f:.2}"),
        None => "-".to_string(),
    }
}

/// The addresses of each port of a service: `http://127.0.0.1:32768/path` from the published
/// host endpoint when there is one, else from the container's first IP address.
pub fn endpoints(service: &Value) -> Vec<(String, String)> {
    let first_ip =
        service.get("ip_address").and_then(Value::as_object).and_then(|m| m.values().find_map(Value::as_str));
    let ports = service.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]);
    ports
        .iter()
        .map(|p| {
            let protocol = str_of(p, "protocol");
            let path = str_of(p, "path");
            let address = match (p.get("host_endpoint").and_then(Value::as_str), first_ip) {
                (Some(host), _) => format!("{protocol}://{host}{path}"),
                (None, Some(ip)) => {
                    format!("{protocol}://{ip}:{}{path}", number(&p["port_number"]))
                }
                (None, None) => format!("{protocol}://(no address yet):{}{path}", number(&p["port_number"])),
            };
            (str_of(p, "name").to_string(), address)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_and_do_not_pad_the_last_one() {
        let t = table(
            &["ID", "NAME", "X"],
            &[vec!["1".into(), "long-name".into(), "a".into()], vec!["22".into(), "b".into(), "".into()]],
        );
        assert_eq!(t, "ID  NAME       X\n1   long-name  a\n22  b\n");
    }

    #[test]
    fn times_are_shortened_in_utc() {
        assert_eq!(short_time(&json!("2024-05-01T12:34:56.789+02:00")), "2024-05-01 10:34");
        assert_eq!(long_time(&json!("2024-05-01T12:34:56Z")), "2024-05-01 12:34:56 UTC");
        assert_eq!(short_time(&Value::Null), "-");
        assert_eq!(short_time(&json!("yesterday")), "yesterday");
    }

    #[test]
    fn sizes_and_numbers_read_well() {
        assert_eq!(bytes(&json!(67108864)), "64.0 MiB");
        assert_eq!(bytes(&json!(512)), "512 B");
        assert_eq!(number(&json!(2.0)), "2");
        assert_eq!(number(&json!(0.25)), "0.25");
    }

    #[test]
    fn endpoints_prefer_the_published_address() {
        let s = json!({"ip_address": {"net": "10.0.0.2"}, "ports": [
            {"name": "web", "protocol": "http", "port_number": 80, "path": "/ui", "host_endpoint": "127.0.0.1:32768"},
            {"name": "ssh", "protocol": "tcp", "port_number": 22, "path": "", "host_endpoint": null},
        ]});
        assert_eq!(
            endpoints(&s),
            vec![
                ("web".to_string(), "http://127.0.0.1:32768/ui".to_string()),
                ("ssh".to_string(), "tcp://10.0.0.2:22".to_string())
            ]
        );
    }
}
