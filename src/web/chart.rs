//! Charts drawn on the server as SVG, for pages readable without JavaScript: a chart is a view,
//! like a table. [`svg`] is a pure function: lines of `(unix seconds, value)` points in, one
//! `<svg>` element out, with its axes labelled (time below, the unit on the left), each line
//! named in a legend, used solid and reserved dashed. Every text in it is escaped
//! ([`xml_escape`]), so a name can never become markup.

use std::fmt::Write;

/// What the values of a chart count, which decides how its axis is labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Cores in use at an instant (`1.5 cores`).
    Cores,
    /// Bytes in use at an instant (`512 MiB`).
    Bytes,
    /// Core-hours over a day (`3.2 core-h`).
    CoreHours,
    /// GiB-hours over a day (`12 GiB-h`).
    GibHours,
}

/// Whether a line is what was used or what was reserved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Used,
    Reserved,
}

/// One line of a chart: its name in the legend, and its points in time order.
#[derive(Clone, Debug, PartialEq)]
pub struct Line {
    pub name: String,
    pub kind: Kind,
    /// `(unix seconds, value)`, oldest first.
    pub points: Vec<(i64, f64)>,
}

/// A chart: a title, the unit of its values, the period it shows and its lines.
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    pub title: String,
    pub unit: Unit,
    /// The period shown, in unix seconds (`from < to`; a wider one is made when not).
    pub from: i64,
    pub to: i64,
    pub lines: Vec<Line>,
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 34.0;
/// Colours of the lines, in turn (used and reserved lines of one name share one).
const COLOURS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

/// `s` with the five characters XML gives a meaning to written as entities.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The step of an axis of `max` split in about four: 1, 2 or 5 times a power of ten.
fn nice_step(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let raw = max / 4.0;
    let power = 10f64.powf(raw.log10().floor());
    let f = raw / power;
    let nice = if f <= 1.0 {
        1.0
    } else if f <= 2.0 {
        2.0
    } else if f <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// A tick's value with as many decimals as its axis's `step` needs (`0.25`, `0.002`, `40`).
fn number(v: f64, step: f64) -> String {
    let decimals = (0..=6usize).find(|d| {
        let scaled = step * 10f64.powi(*d as i32);
        (scaled - scaled.round()).abs() < 1e-6 * scaled.max(1.0)
    });
    let s = format!("{:.*}", decimals.unwrap_or(6), v);
    if s.trim_start_matches('-').trim_matches(|c| c == '0' || c == '.').is_empty() {
        "0".to_string()
    } else {
        s
    }
}

/// The divisor and name that show values up to `max` of `unit` in a readable scale.
fn scale(unit: Unit, max: f64) -> (f64, &'static str) {
    match unit {
        Unit::Cores => (1.0, "cores"),
        Unit::CoreHours => (1.0, "core-h"),
        Unit::GibHours => (1.0, "GiB-h"),
        Unit::Bytes => {
            const NAMES: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
            let mut div = 1.0;
            let mut i = 0;
            while i + 1 < NAMES.len() && max / div >= 1024.0 {
                div *= 1024.0;
                i += 1;
            }
            (div, NAMES[i])
        }
    }
}

/// The step between two time ticks for a period of `span` seconds: at most six ticks.
fn time_step(span: i64) -> i64 {
    const STEPS: [i64; 14] =
        [10, 30, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400, 30 * 86400];
    STEPS.iter().copied().find(|s| span / s <= 6).unwrap_or(90 * 86400)
}

/// A time tick's label: `HH:MM` (`HH:MM:SS` under a minute's step) or, for steps of days, `MM-DD` (UTC).
fn time_label(t: i64, step: i64) -> String {
    let Ok(at) = time::OffsetDateTime::from_unix_timestamp(t) else { return String::new() };
    if step >= 86400 {
        format!("{:02}-{:02}", u8::from(at.month()), at.day())
    } else if step < 60 {
        format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
    } else {
        format!("{:02}:{:02}", at.hour(), at.minute())
    }
}

/// The chart as one `<svg>` element (to be put in a page as it is).
pub fn svg(chart: &Chart) -> String {
    let from = chart.from;
    let to = if chart.to > chart.from { chart.to } else { chart.from + 60 };
    let max =
        chart.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).filter(|v| v.is_finite()).fold(0.0f64, f64::max);
    let (div, unit_name) = scale(chart.unit, max);
    let step = nice_step(max / div);
    let top = (((max / div) / step).ceil().max(1.0)) * step;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |t: i64| LEFT + plot_w * ((t - from) as f64 / (to - from) as f64).clamp(0.0, 1.0);
    let y = |v: f64| TOP + plot_h * (1.0 - ((v / div) / top).clamp(0.0, 1.0));
    let title = xml_escape(&chart.title);

    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{title}">"#
    );
    let _ = write!(s, "<title>{title}</title>");
    let _ = write!(s, r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{title}</text>"#);
    // The value axis: lines across at each step, labelled with the unit.
    let ticks = (top / step).round() as usize;
    for i in 0..=ticks {
        let v = step * i as f64;
        let py = TOP + plot_h * (1.0 - v / top);
        let _ = write!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 6.0,
            py + 4.0,
            number(v, step)
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">{unit_name}</text>"#,
        LEFT - 6.0,
        TOP - 8.0
    );
    // The time axis: ticks on round instants (UTC).
    let tstep = time_step(to - from);
    let mut t = from.div_euclid(tstep) * tstep;
    if t < from {
        t += tstep;
    }
    while t <= to {
        let px = x(t);
        let _ = write!(
            s,
            r##"<line x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="#999"/><text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 4.0,
            TOP + plot_h + 17.0,
            time_label(t, tstep)
        );
        t += tstep;
    }
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/>"##,
        TOP + plot_h,
        TOP + plot_h,
        WIDTH - RIGHT,
        TOP + plot_h
    );
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end">UTC</text>"#,
        WIDTH - RIGHT,
        HEIGHT - 3.0
    );
    // The lines, and their legend above the plot (right-aligned, one entry after another).
    let mut names: Vec<&str> = Vec::new();
    let mut legend_x = WIDTH - RIGHT;
    for line in &chart.lines {
        if !names.contains(&line.name.as_str()) {
            names.push(&line.name);
        }
        let colour = COLOURS[names.iter().position(|n| *n == line.name).unwrap_or(0) % COLOURS.len()];
        let dash = if line.kind == Kind::Reserved { r#" stroke-dasharray="6 4""# } else { "" };
        let points: Vec<String> =
            line.points.iter().filter(|p| p.1.is_finite()).map(|&(t, v)| format!("{:.1},{:.1}", x(t), y(v))).collect();
        match points.as_slice() {
            [] => {}
            [one] => {
                let (cx, cy) = one.split_once(',').unwrap_or(("0", "0"));
                // A lone reserved point is a ring, a lone used one a dot.
                let fill = if line.kind == Kind::Reserved { "none" } else { colour };
                let _ = write!(s, r#"<circle cx="{cx}" cy="{cy}" r="3" fill="{fill}" stroke="{colour}"/>"#);
            }
            many => {
                let _ = write!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{}"/>"#,
                    many.join(" ")
                );
            }
        }
    }
    for line in chart.lines.iter().rev() {
        let colour = COLOURS[names.iter().position(|n| *n == line.name).unwrap_or(0) % COLOURS.len()];
        let dash = if line.kind == Kind::Reserved { r#" stroke-dasharray="6 4""# } else { "" };
        let what = if line.kind == Kind::Reserved { "reserved" } else { "used" };
        let label = if line.name.is_empty() { what.to_string() } else { format!("{} {what}", line.name) };
        let label = xml_escape(&label);
        // About 6.5 px a character at 11 px.
        let w = 26.0 + 6.5 * label.chars().count() as f64;
        legend_x -= w;
        let _ = write!(
            s,
            r#"<line x1="{legend_x:.1}" y1="23" x2="{:.1}" y2="23" stroke="{colour}" stroke-width="2"{dash}/><text x="{:.1}" y="27" font-size="11">{label}</text>"#,
            legend_x + 18.0,
            legend_x + 22.0
        );
    }
    if chart.lines.iter().all(|l| l.points.is_empty()) {
        let _ = write!(
            s,
            r##"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="middle" fill="#666">No samples in this period</text>"##,
            LEFT + plot_w / 2.0,
            TOP + plot_h / 2.0
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use super::*;

    fn snapshot(name: &str, svg: &str) {
        let mut settings = insta::Settings::clone_current();
        settings.set_snapshot_path(concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"));
        settings.set_prepend_module_to_snapshot(true);
        // One element a line, so a change reads as a diff of the elements it touches.
        let text = svg.replace("><", ">\n<");
        settings.bind(|| insta::assert_snapshot!(name.to_string(), text));
    }

    /// 2026-12-07 10:00 UTC.
    const T0: i64 = 1_796_637_600;

    #[test]
    fn cpu_used_against_reserved() {
        let used: Vec<(i64, f64)> =
            (0..=12).map(|i| (T0 + i * 300, [0.1, 0.9, 1.0, 0.95, 0.2][i as usize % 5])).collect();
        let chart = Chart {
            title: "CPU of execution 7".into(),
            unit: Unit::Cores,
            from: T0,
            to: T0 + 3600,
            lines: vec![
                Line { name: String::new(), kind: Kind::Used, points: used },
                Line { name: String::new(), kind: Kind::Reserved, points: vec![(T0, 1.5), (T0 + 3600, 1.5)] },
            ],
        };
        snapshot("cpu_used_against_reserved", &svg(&chart));
    }

    #[test]
    fn memory_in_a_readable_scale() {
        let mib = 1024.0 * 1024.0;
        let chart = Chart {
            title: "Memory of execution 7".into(),
            unit: Unit::Bytes,
            from: T0,
            to: T0 + 600,
            lines: vec![
                Line {
                    name: String::new(),
                    kind: Kind::Used,
                    points: vec![(T0, 10.0 * mib), (T0 + 300, 300.0 * mib), (T0 + 600, 180.0 * mib)],
                },
                Line {
                    name: String::new(),
                    kind: Kind::Reserved,
                    points: vec![(T0, 512.0 * mib), (T0 + 600, 512.0 * mib)],
                },
            ],
        };
        let out = svg(&chart);
        assert!(out.contains(">MiB<") && (out.contains(">500<") || out.contains(">600<")), "{out}");
        snapshot("memory_in_a_readable_scale", &out);
    }

    #[test]
    fn days_of_several_users() {
        let day = 86400;
        let d0 = T0 - T0 % day;
        let chart = Chart {
            title: "Core-hours a day".into(),
            unit: Unit::CoreHours,
            from: d0,
            to: d0 + 7 * day,
            lines: vec![
                Line {
                    name: "alice".into(),
                    kind: Kind::Used,
                    points: (0..7).map(|i| (d0 + i * day, i as f64)).collect(),
                },
                Line {
                    name: "alice".into(),
                    kind: Kind::Reserved,
                    points: (0..7).map(|i| (d0 + i * day, 8.0)).collect(),
                },
                Line { name: "bob".into(), kind: Kind::Used, points: vec![(d0 + 3 * day, 2.5)] },
            ],
        };
        snapshot("days_of_several_users", &svg(&chart));
    }

    #[test]
    fn names_are_escaped_and_an_empty_chart_says_so() {
        let chart = Chart {
            title: "<script>alert('x')</script> & \"co\"".into(),
            unit: Unit::Cores,
            from: T0,
            to: T0,
            lines: vec![Line { name: "</text><script>".into(), kind: Kind::Used, points: vec![] }],
        };
        let out = svg(&chart);
        assert!(!out.contains("<script"), "{out}");
        assert!(out.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;co&quot;"), "{out}");
        assert!(out.contains("&lt;/text&gt;&lt;script&gt; used"), "{out}");
        assert!(out.contains("No samples in this period"), "{out}");
        // Every element opened is closed: the document parses as XML would (a rough check).
        assert_eq!(out.matches("<svg").count(), 1);
        assert!(out.ends_with("</svg>"));
    }

    #[test]
    fn steps_and_numbers() {
        assert_eq!(nice_step(4.0), 1.0);
        assert_eq!(nice_step(1.0), 0.5);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
        assert_eq!(number(0.5, 0.5), "0.5");
        assert_eq!(number(2.0, 1.0), "2");
        assert_eq!(number(0.5, 0.25), "0.50");
        assert_eq!(number(0.75, 0.25), "0.75");
        assert_eq!(number(0.004, 0.002), "0.004");
        assert_eq!(number(0.0, 0.002), "0");
        assert_eq!(number(40.0, 10.0), "40");
        assert_eq!(scale(Unit::Bytes, 3.0 * 1024.0 * 1024.0 * 1024.0), (1024.0 * 1024.0 * 1024.0, "GiB"));
        assert_eq!(time_step(3600), 900);
        assert_eq!(time_step(7 * 86400), 2 * 86400);
        assert_eq!(time_label(T0, 900), "10:00");
        assert_eq!(time_label(T0, 86400), "12-07");
    }
}
