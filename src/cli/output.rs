//! Formatting for people: aligned tables, short times, sizes and endpoints of the API's views.
//! Every cell and value is shown with its control characters escaped ([`show`]): what the server
//! sends may have been written by a tenant.

use std::borrow::Cow;

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use zoe_actors::description::units::show_bytes;
use zoe_actors::logic::views::ServiceView;

/// A string from the server, shown on one line: every control character escaped (`\u{1b}`,
/// `\r`, `\n`).
pub fn show(s: &str) -> Cow<'_, str> {
    crate::escape::controls(s)
}

/// Columns separated by two spaces, each as wide as its widest cell; the last one is not
/// padded. Cells are [`show`]n.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows.iter().map(|r| r.iter().map(|c| show(c).into_owned()).collect()).collect();
    let rows = rows.as_slice();
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

/// Lines `key: value` with the values aligned, indented by `indent` spaces; values are [`show`]n.
pub fn fields(indent: usize, pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.chars().count() + 1).max().unwrap_or(0);
    let mut out = String::new();
    for (k, v) in pairs {
        out.push_str(&format!("{:indent$}{:<width$} {}\n", "", format!("{k}:"), show(v)));
    }
    out
}

/// A time as `2024-05-01 12:34` (UTC), `-` when absent.
pub fn short_time(t: Option<&OffsetDateTime>) -> String {
    t.and_then(|t| t.to_offset(UtcOffset::UTC).format(format_description!("[year]-[month]-[day] [hour]:[minute]")).ok())
        .unwrap_or_else(|| "-".to_string())
}

/// A time as `2024-05-01 12:34:56 UTC`, `-` when absent.
pub fn long_time(t: Option<&OffsetDateTime>) -> String {
    t.and_then(|t| {
        t.to_offset(UtcOffset::UTC)
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC"))
            .ok()
    })
    .unwrap_or_else(|| "-".to_string())
}

/// Bytes in binary units, `-` when unknown.
pub fn bytes(n: Option<u64>) -> String {
    n.map(show_bytes).unwrap_or_else(|| "-".to_string())
}

/// A number without a useless `.0`, `-` when unknown.
pub fn number(f: Option<f64>) -> String {
    match f {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e15 => format!("{}", f as i64),
        Some(f) => format!("{f:.2}"),
        None => "-".to_string(),
    }
}

/// A value or `-`.
pub fn or_dash<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".to_string())
}

/// The addresses of each port of a service: for an exposed port, its link through the master's
/// proxy (`<master>/proxy/...`), followed by where it was published on a host, if it was; for
/// others, the container's first IP address.
pub fn endpoints(service: &ServiceView, master: &str) -> Vec<(String, String)> {
    let first_ip = service.ip_address.values().next();
    service
        .ports
        .iter()
        .map(|p| {
            let (protocol, path, port) = (&p.port.protocol, &p.port.path, p.port.port_number);
            let published = p.port.host_endpoint.as_ref().map(|host| format!("{protocol}://{host}{path}"));
            let address = match (&p.proxy_url, published, first_ip) {
                (Some(proxy), Some(published), _) => format!("{master}{proxy} (published: {published})"),
                (Some(proxy), None, _) => format!("{master}{proxy}"),
                (None, Some(published), _) => published,
                (None, None, Some(ip)) => format!("{protocol}://{ip}:{port}{path}"),
                (None, None, None) => format!("{protocol}://(no address yet):{port}{path}"),
            };
            (p.port.name.clone(), address)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let t = OffsetDateTime::parse("2024-05-01T12:34:56.789+02:00", &time::format_description::well_known::Rfc3339)
            .unwrap();
        assert_eq!(short_time(Some(&t)), "2024-05-01 10:34");
        assert_eq!(long_time(Some(&t)), "2024-05-01 10:34:56 UTC");
        assert_eq!(short_time(None), "-");
    }

    #[test]
    fn sizes_and_numbers_read_well() {
        assert_eq!(bytes(Some(67108864)), "64 MiB");
        assert_eq!(bytes(Some(512)), "512 bytes");
        assert_eq!(bytes(None), "-");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(Some(0.25)), "0.25");
    }

    #[test]
    fn endpoints_go_through_the_proxy_and_say_where_they_were_published() {
        let s: ServiceView = serde_json::from_value(serde_json::json!({
            "id": 4, "name": "web-x-alice-dev", "service_name": "web", "docker_id": null, "is_monitor": true,
            "owner": "alice", "execution_id": 3, "status": "running", "exit_code": null, "oom_killed": false,
            "ip_address": {"net": "10.0.0.2"}, "ports": [
            {"name": "web", "protocol": "http", "port_number": 80, "path": "/ui", "is_main_endpoint": true, "expose": true, "host_endpoint": "127.0.0.1:32768", "proxy_url": "/proxy/3/web/80/ui"},
            {"name": "ssh", "protocol": "tcp", "port_number": 22, "path": "", "is_main_endpoint": false, "expose": false, "host_endpoint": null},
        ]}))
        .unwrap();
        assert_eq!(
            endpoints(&s, "https://zoe.example"),
            vec![
                (
                    "web".to_string(),
                    "https://zoe.example/proxy/3/web/80/ui (published: http://127.0.0.1:32768/ui)".to_string()
                ),
                ("ssh".to_string(), "tcp://10.0.0.2:22".to_string())
            ]
        );
    }
}
