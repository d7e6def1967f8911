//! `zoe usage`: what users (or executions) used and reserved over a span, from `GET /usage`: a
//! table with the efficiency of each (used / reserved), or the server's JSON, or CSV.

use time::format_description::well_known::Rfc3339;
use time::{Date, OffsetDateTime};
use zoe_actors::logic::views::UsageRow;

use super::client::{CliError, Client};
use super::output::{show, table};
use crate::percent::encode;

/// How rows are grouped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    User,
    Execution,
}

/// How the report is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A time given on the command line, as Unix seconds at `now`: an age (`30d`, `12h`, `90m`,
/// `45s`, `2w`: that long ago), a Unix time in seconds, a date (`2026-12-01`, its start in UTC)
/// or an RFC 3339 time.
pub fn parse_time(s: &str, now: OffsetDateTime) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<i64>() {
        return Ok(t);
    }
    if let Some(unit) = s.chars().last().filter(|c| "smhdw".contains(*c)) {
        if let Ok(n) = s[..s.len() - 1].parse::<u32>() {
            let secs = i64::from(n)
                * match unit {
                    's' => 1,
                    'm' => 60,
                    'h' => 3600,
                    'd' => 86_400,
                    _ => 7 * 86_400,
                };
            return Ok(now.unix_timestamp() - secs);
        }
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Ok(t.unix_timestamp());
    }
    if let Ok(d) = Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")) {
        return Ok(d.midnight().assume_utc().unix_timestamp());
    }
    Err("not a time: use an age (30d, 12h, 90m, 2w), a Unix time in seconds, a date (2026-12-01) or an RFC 3339 time"
        .to_string())
}

/// `used / reserved` in percent, `-` without a reservation.
fn efficiency(used: f64, reserved: f64) -> String {
    if reserved > 0.0 {
        format!("{:.0}%", used / reserved * 100.0)
    } else {
        "-".to_string()
    }
}

fn hours(f: f64) -> String {
    format!("{f:.3}")
}

/// A CSV field: quoted when it holds a comma, a quote or a line break (quotes doubled), its
/// control characters escaped, and a leading `=`, `+`, `-` or `@` quoted with a `'` so that a
/// spreadsheet does not take it for a formula.
fn csv_field(s: &str) -> String {
    let s = show(s);
    let s = if s.starts_with(['=', '+', '-', '@']) { format!("'{s}") } else { s.into_owned() };
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The report printed as asked.
pub fn render(rows: &[UsageRow], by: By, format: Format) -> Result<String, CliError> {
    let per_execution = by == By::Execution;
    match format {
        Format::Json => serde_json::to_string_pretty(rows)
            .map(|s| crate::escape::json_controls(&s).into_owned() + "\n")
            .map_err(|e| CliError::Failed(format!("cannot print JSON: {e}"))),
        Format::Csv => {
            let mut out = String::from(if per_execution { "user,execution_id,execution_name," } else { "user," });
            out.push_str("executions,cpu_core_hours,reserved_core_hours,memory_gib_hours,reserved_memory_gib_hours\n");
            for r in rows {
                let mut cells = vec![csv_field(&r.user)];
                if per_execution {
                    cells.push(r.execution_id.map(|i| i.to_string()).unwrap_or_default());
                    cells.push(csv_field(r.execution_name.as_deref().unwrap_or("")));
                }
                cells.push(r.executions.to_string());
                for f in [r.cpu_core_hours, r.reserved_core_hours, r.memory_gib_hours, r.reserved_memory_gib_hours] {
                    cells.push(format!("{f}"));
                }
                out.push_str(&cells.join(","));
                out.push('\n');
            }
            Ok(out)
        }
        Format::Table => {
            let mut headers = if per_execution { vec!["ID", "NAME", "USER"] } else { vec!["USER", "EXECUTIONS"] };
            headers.extend(["CPU CORE-H", "RESERVED", "CPU EFF", "MEMORY GIB-H", "RESERVED", "MEMORY EFF"]);
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|r| {
                    let mut row = if per_execution {
                        vec![
                            r.execution_id.map(|i| i.to_string()).unwrap_or_default(),
                            r.execution_name.clone().unwrap_or_default(),
                            r.user.clone(),
                        ]
                    } else {
                        vec![r.user.clone(), r.executions.to_string()]
                    };
                    row.extend([
                        hours(r.cpu_core_hours),
                        hours(r.reserved_core_hours),
                        efficiency(r.cpu_core_hours, r.reserved_core_hours),
                        hours(r.memory_gib_hours),
                        hours(r.reserved_memory_gib_hours),
                        efficiency(r.memory_gib_hours, r.reserved_memory_gib_hours),
                    ]);
                    row
                })
                .collect();
            Ok(table(&headers, &cells))
        }
    }
}

/// `zoe usage`: `GET /usage?since=&until=&by=`, printed.
pub fn usage(c: &Client, since: Option<&str>, until: Option<&str>, by: By, format: Format) -> Result<String, CliError> {
    let now = OffsetDateTime::now_utc();
    let time = |flag: &str, v: &str| parse_time(v, now).map_err(|e| CliError::Usage(format!("{flag}: {e}")));
    let mut query = vec![format!("by={}", if by == By::User { "user" } else { "execution" })];
    if let Some(v) = since {
        query.push(format!("since={}", encode(&time("--since", v)?.to_string())));
    }
    if let Some(v) = until {
        query.push(format!("until={}", encode(&time("--until", v)?.to_string())));
    }
    let rows: Vec<UsageRow> = Client::typed(c.get(&format!("/usage?{}", query.join("&")))?)?;
    render(&rows, by, format)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(user: &str, cpu: f64, reserved: f64) -> UsageRow {
        UsageRow {
            user: user.into(),
            execution_id: Some(7),
            execution_name: Some("nb".into()),
            executions: 1,
            cpu_core_hours: cpu,
            memory_gib_hours: 0.5,
            reserved_core_hours: reserved,
            reserved_memory_gib_hours: 0.0,
        }
    }

    #[test]
    fn times_are_ages_unix_times_dates_or_rfc3339() {
        let now = OffsetDateTime::from_unix_timestamp(1_000_000).unwrap();
        assert_eq!(parse_time("30d", now), Ok(1_000_000 - 30 * 86_400));
        assert_eq!(parse_time("12h", now), Ok(1_000_000 - 12 * 3600));
        assert_eq!(parse_time("2w", now), Ok(1_000_000 - 14 * 86_400));
        assert_eq!(parse_time("90m", now), Ok(1_000_000 - 5400));
        assert_eq!(parse_time("1700000000", now), Ok(1_700_000_000));
        assert_eq!(parse_time("1970-01-02", now), Ok(86_400));
        assert_eq!(parse_time("1970-01-01T01:00:00Z", now), Ok(3600));
        for bad in ["", "d", "-3d", "yesterday", "3y", "1970-13-01"] {
            assert!(parse_time(bad, now).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_table_shows_the_efficiency_and_escapes_what_the_server_sent() {
        let text = render(&[row("alice", 1.0, 4.0), row("b\u{1b}[31m", 0.0, 0.0)], By::User, Format::Table).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("USER"), "{text}");
        assert!(lines[1].contains("alice") && lines[1].contains("25%"), "{text}");
        assert!(!text.contains('\u{1b}'), "{text:?}");
        assert!(lines[2].contains("b\\u{1b}[31m") && lines[2].contains(" - "), "{text}");
        let text = render(&[row("alice", 1.0, 4.0)], By::Execution, Format::Table).unwrap();
        assert!(text.lines().next().unwrap().starts_with("ID  NAME  USER"), "{text}");
        assert!(text.contains("7   nb    alice"), "{text}");
    }

    #[test]
    fn csv_quotes_and_defuses_what_a_spreadsheet_would_run() {
        let text = render(&[row("=cmd,x", 1.0, 2.0)], By::Execution, Format::Csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some(
                "user,execution_id,execution_name,executions,cpu_core_hours,reserved_core_hours,memory_gib_hours,\
                 reserved_memory_gib_hours"
            )
        );
        assert_eq!(lines.next(), Some("\"'=cmd,x\",7,nb,1,1,2,0.5,0"));
        let json = render(&[row("alice", 1.0, 2.0)], By::User, Format::Json).unwrap();
        assert_eq!(serde_json::from_str::<Vec<UsageRow>>(&json).unwrap()[0].user, "alice");
    }
}
