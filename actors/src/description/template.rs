//! Template variables in environment values and commands of an application description.
//!
//! The syntax is that of Python's `str.format`, as in Zoe 0.9.7: `{name}` is replaced by the
//! value of a variable, and `{{` and `}}` stand for literal braces. Only plain variable names
//! are allowed (no format specs, conversions, attributes or positional fields), and only those
//! in [`VARIABLES`].
//!
//! Unlike 0.9.7, where an unknown variable was only noticed when the execution started (and in
//! a command gave a 500 and a stuck execution), descriptions are checked with [`check`] when
//! they are submitted, and [`expand`] accepts exactly the texts that [`check`] accepts.

/// The variables a template may use.
pub const VARIABLES: [&str; 7] =
    ["execution_name", "user_name", "deployment_name", "index", "execution_id", "proxy_path", "proxy_secret"];

/// The longest a variable name is quoted in an error message, in characters.
const MAX_QUOTED: usize = 64;

/// The values of the template variables for one service instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Vars<'a> {
    /// The execution's name (its own label, not the full name).
    pub execution_name: &'a str,
    /// The owner's name.
    pub user_name: &'a str,
    /// The deployment's name.
    pub deployment_name: &'a str,
    /// Which instance of the service, from 0.
    pub index: u32,
    /// The execution's id.
    pub execution_id: u64,
    /// The link on the master to this instance's ports: `/proxy/<execution-id>/<instance>`
    /// (port N under `<proxy_path>/N/`), which signs the browser in to the port's own host and
    /// sends it there; the application itself is served at `/` of that host.
    pub proxy_path: &'a str,
    /// The execution's secret (see `PortDescription::secret_header`), empty when it has none.
    pub proxy_secret: &'a str,
}

/// Checks that `text` is a valid template: every `{` starts a known variable `{name}` or is
/// doubled, and every `}` ends one or is doubled.
pub fn check(text: &str) -> Result<(), String> {
    walk(text, |_| {})
}

/// Replaces the variables of `text` with their values and undoubles literal braces.
///
/// Fails, with the same message as [`check`], on a text that [`check`] rejects.
pub fn expand(text: &str, vars: &Vars) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    walk(text, |piece| match piece {
        Piece::Text(s) => out.push_str(s),
        Piece::Var(name) => match name {
            "execution_name" => out.push_str(vars.execution_name),
            "user_name" => out.push_str(vars.user_name),
            "deployment_name" => out.push_str(vars.deployment_name),
            "index" => out.push_str(&vars.index.to_string()),
            "execution_id" => out.push_str(&vars.execution_id.to_string()),
            "proxy_path" => out.push_str(vars.proxy_path),
            "proxy_secret" => out.push_str(vars.proxy_secret),
            // `walk` only emits names from VARIABLES.
            _ => {}
        },
    })?;
    Ok(out)
}

/// Whether a valid template uses variable `name`.
pub fn uses(text: &str, name: &str) -> bool {
    let mut found = false;
    let _ = walk(text, |piece| found |= matches!(piece, Piece::Var(v) if v == name));
    found
}

/// A part of a template.
enum Piece<'t> {
    /// Literal text, braces already undoubled.
    Text(&'t str),
    /// A known variable.
    Var(&'t str),
}

/// Parses `text`, handing each piece to `emit` in order, or fails on the first error.
fn walk<'t>(text: &'t str, mut emit: impl FnMut(Piece<'t>)) -> Result<(), String> {
    // Byte offset where the pending literal text starts.
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '{' && c != '}' {
            continue;
        }
        emit(Piece::Text(&text[start..i]));
        // A doubled brace is the brace itself.
        if chars.next_if(|&(_, next)| next == c).is_some() {
            emit(Piece::Text(&text[i..i + 1]));
            start = i + 2;
            continue;
        }
        if c == '}' {
            return Err(format!("single '}}' at character {}; write '}}}}' for a literal '}}'", position(text, i)));
        }
        let rest = &text[i + 1..];
        let Some(len) = rest.find('}') else {
            return Err(format!("unclosed '{{' at character {}; write '{{{{' for a literal '{{'", position(text, i)));
        };
        let name = &rest[..len];
        if name.is_empty() {
            return Err(format!(
                "empty variable '{{}}' at character {}; use one of {}, or write \
                 '{{{{}}}}' for literal braces",
                position(text, i),
                allowed()
            ));
        }
        if !VARIABLES.contains(&name) {
            return Err(format!(
                "unknown template variable {{{}}}; allowed: {} (write '{{{{' and \
                 '}}}}' for literal braces)",
                quote(name),
                allowed()
            ));
        }
        emit(Piece::Var(name));
        // Skip the name and the closing brace (all ASCII up to there).
        let end = i + 1 + len + 1;
        while chars.next_if(|&(j, _)| j < end).is_some() {}
        start = end;
    }
    emit(Piece::Text(&text[start..]));
    Ok(())
}

/// The allowed variables, as told to users: `{execution_name}, {user_name}, ...`.
fn allowed() -> String {
    VARIABLES.map(|v| format!("{{{v}}}")).join(", ")
}

/// The 1-based character position of byte offset `byte` in `text`.
fn position(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(0, |s| s.chars().count()) + 1
}

/// `s` shortened for quoting in an error message.
fn quote(s: &str) -> String {
    crate::description::naming::shorten(s, MAX_QUOTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VARS: Vars<'static> = Vars {
        execution_name: "lab",
        user_name: "alice",
        deployment_name: "prod",
        index: 2,
        execution_id: 42,
        proxy_path: "/proxy/42/worker-2",
        proxy_secret: "s3cr3t",
    };

    #[test]
    fn valid_templates() {
        for t in [
            "",
            "plain text",
            "{execution_name}",
            "{user_name}{deployment_name}{index}{execution_id}",
            "{{}}",
            "{{execution_name}}",
            "{{{index}}}",
            "a}}b{{c",
            "ünïcödé {index} ✓",
        ] {
            assert_eq!(check(t), Ok(()), "{t:?}");
        }
    }

    #[test]
    fn expands_every_variable() {
        assert_eq!(
            expand("spark://spark-master-{execution_name}-{user_name}-{deployment_name}:7077", &VARS),
            Ok("spark://spark-master-lab-alice-prod:7077".to_string())
        );
        assert_eq!(expand("w{index}/e{execution_id}", &VARS), Ok("w2/e42".to_string()));
        assert_eq!(
            expand("--base-url={proxy_path}/8888/", &VARS),
            Ok("--base-url=/proxy/42/worker-2/8888/".to_string())
        );
        assert_eq!(expand("--token={proxy_secret}", &VARS), Ok("--token=s3cr3t".to_string()));
        assert!(uses("a {proxy_secret} b", "proxy_secret"));
        assert!(!uses("a {{proxy_secret}} {index}", "proxy_secret"), "literal braces are no use");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(expand("{{}}", &VARS), Ok("{}".to_string()));
        assert_eq!(expand("{{index}}", &VARS), Ok("{index}".to_string()));
        assert_eq!(expand("{{{index}}}", &VARS), Ok("{2}".to_string()));
        assert_eq!(expand("awk '{{print $1}}' é{index}é", &VARS), Ok("awk '{print $1}' é2é".to_string()));
        assert_eq!(expand("no braces", &VARS), Ok("no braces".to_string()));
    }

    #[test]
    fn unknown_variable_is_named_with_the_allowed_ones() {
        let e = check("x {name_prefix} y").err().unwrap_or_default();
        assert!(e.contains("unknown template variable {name_prefix}"), "{e}");
        for v in VARIABLES {
            assert!(e.contains(&format!("{{{v}}}")), "{e}");
        }
        // Python format specs, conversions and positional fields are not supported.
        for t in ["{index:03d}", "{index!r}", "{0}", "{user_name.x}", "{ index }", "{a{b}"] {
            let e = check(t).err().unwrap_or_default();
            assert!(e.starts_with("unknown template variable"), "{t}: {e}");
        }
    }

    #[test]
    fn malformed_templates() {
        let e = check("ab{index").err().unwrap_or_default();
        assert!(e.starts_with("unclosed '{' at character 3"), "{e}");
        let e = check("é{").err().unwrap_or_default();
        assert!(e.starts_with("unclosed '{' at character 2"), "{e}");
        let e = check("a}b").err().unwrap_or_default();
        assert!(e.starts_with("single '}' at character 2"), "{e}");
        let e = check("{index}}").err().unwrap_or_default();
        assert!(e.starts_with("single '}' at character 8"), "{e}");
        let e = check("x{}").err().unwrap_or_default();
        assert!(e.starts_with("empty variable '{}' at character 2"), "{e}");
    }

    #[test]
    fn expand_fails_like_check() {
        for t in ["{nope}", "{", "}", "{}", "{{{", "}}}"] {
            assert!(check(t).is_err(), "{t}");
            assert_eq!(expand(t, &VARS).err(), check(t).err(), "{t}");
        }
    }

    #[test]
    fn huge_unknown_name_gives_a_short_message() {
        let t = format!("{{{}}}", "x".repeat(100_000));
        let e = check(&t).err().unwrap_or_default();
        assert!(e.len() < 400, "{}", e.len());
    }
}
