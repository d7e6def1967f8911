//! Naming rules (design rule 7): every Docker-visible name is built from the hierarchy, specific
//! to generic, as in DNS.
//!
//! - service instance: `<service>` when the service has one instance, else `<service>-<index>`;
//! - container name and host name: `<instance>-<execution>-<owner>-<deployment>`;
//! - execution: `<execution>-<owner>-<deployment>`;
//! - user, and the user's Docker network: `<owner>-<deployment>`.
//!
//! Every part is a lowercase DNS label ([`check_dns_label`]), and a container host name must fit
//! in one DNS label ([`MAX_HOST_NAME`]), so no valid request can produce an invalid or colliding
//! Docker name. These are pure functions: no I/O, no state.

/// The longest a container host name may be: it is a single DNS label.
pub const MAX_HOST_NAME: usize = 63;

/// What a DNS label may look like, as told to users in error messages.
const DNS_LABEL_RULE: &str = "must be a lowercase DNS label (a-z, 0-9 and '-', starting and ending \
                              with a letter or digit, at most 63 characters)";

/// The longest a rejected value is quoted in an error message, in characters.
const MAX_QUOTED: usize = 80;

/// Checks that `s` is a lowercase DNS label: 1 to 63 characters of `[a-z0-9-]`, starting and
/// ending with a letter or digit.
///
/// `what` names the thing being checked in the error message, e.g. `execution name`, giving
/// `execution name "My_App": must be a lowercase DNS label (...)`.
pub fn check_dns_label(what: &str, s: &str) -> Result<(), String> {
    if zoe_checkpoints::is_dns_label(s) {
        Ok(())
    } else {
        Err(format!("{what} \"{}\": {DNS_LABEL_RULE}", quote(s)))
    }
}

/// The name of one instance of a service: `<service>` when the service has a single instance,
/// else `<service>-<index>` (index from 0).
pub fn service_instance_name(service: &str, index: u32, total_count: u32) -> String {
    if total_count == 1 {
        service.to_string()
    } else {
        format!("{service}-{index}")
    }
}

/// The path under which the master's proxy serves an instance's ports:
/// `/proxy/<execution-id>/<instance>`; port N is at `<that>/N/`.
pub fn proxy_base(execution_id: u64, instance: &str) -> String {
    format!("/proxy/{execution_id}/{instance}")
}

/// The proxy's path of port `port` of an instance, with its trailing slash.
pub fn proxy_path(execution_id: u64, instance: &str, port: u16) -> String {
    format!("{}/{port}/", proxy_base(execution_id, instance))
}

/// The host name label under `apps-domain` at which the master serves port `port` of an instance
/// of execution `execution_id`: `<port>-<instance>-<id>` (e.g. `8888-notebook-12`), one DNS
/// label, so one wildcard certificate (`*.<apps-domain>`) covers every application. Each port of
/// each instance is an origin of its own.
///
/// A label longer than 63 characters (a long instance name and a large id) keeps the port, the
/// start of the instance name and the id, with a digest of the whole instance name in between,
/// so that it stays one label and different instances get different labels.
pub fn app_host_label(execution_id: u64, instance: &str, port: u16) -> String {
    let label = format!("{port}-{instance}-{execution_id}");
    if label.len() <= MAX_HOST_NAME {
        return label;
    }
    let digest = format!("{:012x}", fnv1a(instance.as_bytes()) & 0xffff_ffff_ffff);
    let fixed = format!("{port}-").len() + 1 + digest.len() + 1 + execution_id.to_string().len();
    let head = instance[..MAX_HOST_NAME.saturating_sub(fixed).min(instance.len())].trim_end_matches('-');
    format!("{port}-{head}-{digest}-{execution_id}")
}

/// The execution id and port named by an application host label (see [`app_host_label`]), if it
/// has that form. The instance is not parsed back: a label is checked against the one computed
/// for the instance it should name.
pub fn parse_app_host_label(label: &str) -> Option<(u64, u16)> {
    let (port, rest) = label.split_once('-')?;
    let (_, id) = rest.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(port) || !digits(id) {
        return None;
    }
    Some((id.parse().ok()?, port.parse().ok()?))
}

/// 64-bit FNV-1a: a stable digest for names (not a secret, not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// The container name, which is also its host name:
/// `<instance>-<execution>-<owner>-<deployment>`, where `<instance>` is
/// [`service_instance_name`].
pub fn container_name(
    service: &str,
    index: u32,
    total_count: u32,
    execution: &str,
    owner: &str,
    deployment: &str,
) -> String {
    format!(
        "{}-{}",
        service_instance_name(service, index, total_count),
        execution_full_name(execution, owner, deployment)
    )
}

/// The full name of an execution: `<execution>-<owner>-<deployment>`.
pub fn execution_full_name(execution: &str, owner: &str, deployment: &str) -> String {
    format!("{execution}-{}", user_network_name(owner, deployment))
}

/// The full name of a user, which is also the name of the user's Docker network:
/// `<owner>-<deployment>`.
pub fn user_network_name(owner: &str, deployment: &str) -> String {
    format!("{owner}-{deployment}")
}

/// `s` shortened for quoting in an error message, so that a huge input gives a short message.
fn quote(s: &str) -> String {
    shorten(s, MAX_QUOTED)
}

/// `s` cut to `max` characters (with `…` when cut), for quoting untrusted input in messages.
pub fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut short: String = s.chars().take(max).collect();
        short.push('…');
        short
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_labels() {
        for s in ["a", "0", "spark-master", "a-b-c", "x1", "1x", "a--b", &"a".repeat(63)] {
            assert_eq!(check_dns_label("name", s), Ok(()), "{s}");
        }
    }

    #[test]
    fn invalid_labels() {
        let long = "a".repeat(64);
        for s in ["", "-a", "a-", "-", "A", "My_App", "a_b", "a.b", "a b", " a", "é", "a\n", &long] {
            assert!(check_dns_label("name", s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn error_message_says_what_to_fix() {
        assert_eq!(
            check_dns_label("execution name", "My_App"),
            Err("execution name \"My_App\": must be a lowercase DNS label (a-z, 0-9 and '-', \
                 starting and ending with a letter or digit, at most 63 characters)"
                .to_string())
        );
    }

    #[test]
    fn huge_input_gives_a_short_message() {
        let huge = "X".repeat(100_000);
        let msg = check_dns_label("user name", &huge).err().unwrap_or_default();
        assert!(msg.len() < 300, "{}", msg.len());
        assert!(msg.starts_with("user name \"XXXX"));
        assert!(msg.contains("…\""));
    }

    #[test]
    fn instance_names() {
        assert_eq!(service_instance_name("jupyter", 0, 1), "jupyter");
        assert_eq!(service_instance_name("spark-worker", 0, 3), "spark-worker-0");
        assert_eq!(service_instance_name("spark-worker", 2, 3), "spark-worker-2");
    }

    #[test]
    fn app_host_labels_are_one_dns_label_per_port_instance_and_execution() {
        assert_eq!(app_host_label(12, "notebook", 8888), "8888-notebook-12");
        assert_eq!(app_host_label(7, "spark-worker-2", 8081), "8081-spark-worker-2-7");
        assert_eq!(parse_app_host_label("8081-spark-worker-2-7"), Some((7, 8081)));
        for bad in ["notebook-12", "8888-12", "8888-nb-x", "x-nb-12", "8888--12x", "99999-nb-1"] {
            assert_eq!(parse_app_host_label(bad), None, "{bad}");
        }
        // Long instance names and ids still give one label, distinct per instance.
        let long = "a".repeat(57);
        let (one, two) = (
            app_host_label(u64::MAX, &format!("{long}-0"), 65535),
            app_host_label(u64::MAX, &format!("{long}-1"), 65535),
        );
        for l in [&one, &two] {
            assert!(check_dns_label("label", l).is_ok() && l.len() <= MAX_HOST_NAME, "{l}");
            assert_eq!(parse_app_host_label(l), Some((u64::MAX, 65535)), "{l}");
        }
        assert_ne!(one, two);
        assert!(one.starts_with("65535-aaaa"), "{one}");
    }

    #[test]
    fn composed_names() {
        assert_eq!(container_name("jupyter", 0, 1, "lab", "alice", "prod"), "jupyter-lab-alice-prod");
        assert_eq!(container_name("spark-worker", 1, 3, "lab", "alice", "prod"), "spark-worker-1-lab-alice-prod");
        assert_eq!(execution_full_name("lab", "alice", "prod"), "lab-alice-prod");
        assert_eq!(user_network_name("alice", "prod"), "alice-prod");
    }
}
