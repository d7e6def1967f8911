//! The directory (LDAP) that signs users in besides Zoe's own: a search for the user with a
//! service account, their groups, then a bind with their password.
//!
//! Every sign-in opens its own connection: nothing is shared between users, and a directory that
//! restarted costs nothing. Each step has a time limit (`ldap-timeout`) and at most
//! `ldap-max-calls` sign-ins talk to the directory at once; the others wait their turn for as
//! long as one step may take. A directory that cannot be reached, does not answer in time or
//! refuses the service account makes the sign-in [`Verdict::Unavailable`] (503, never 401: the
//! password may well be right); only the directory's own "no" is a [`Verdict::Refused`].
//!
//! What never reaches the directory: an empty password (a simple bind with one is an anonymous
//! bind, which "succeeds"), a password longer than Zoe accepts, a name that is not a Zoe user
//! name. Names are escaped in filters anyway (RFC 4515).

use std::sync::Arc;
use std::time::Duration;

use ldap3::{ldap_escape, Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use zoe_checkpoints::Role;

use crate::config::MasterConfig;

/// Result code of a bind with a wrong password (or an unknown DN).
const INVALID_CREDENTIALS: u32 = 49;

/// Users a search may find before it is a misconfigured filter: a name matches one entry.
const MAX_ENTRIES: i32 = 2;

/// What the directory says of a user name and password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right: the user's role from the groups, and their `uidNumber`.
    Accepted { role: Role, uid: Option<u32> },
    /// No such user, or a wrong password.
    Refused,
    /// The directory could not say (why, for the log and the answer; never a secret).
    Unavailable(String),
}

/// The directory's settings, checked, and its turns.
pub struct Directory {
    url: String,
    starttls: bool,
    tls: Option<Arc<rustls::ClientConfig>>,
    bind: Option<(String, String)>,
    base_dn: String,
    user_filter: String,
    admin_group: Option<String>,
    guest_group: Option<String>,
    timeout: Duration,
    turns: tokio::sync::Semaphore,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory").field("url", &self.url).field("base_dn", &self.base_dn).finish_non_exhaustive()
    }
}

/// The filter that finds `name`: `{username}` replaced by the name, escaped (RFC 4515), so that
/// `*` or `)(` in a name are characters of a name, never parts of the filter.
pub fn user_filter(template: &str, name: &str) -> String {
    template.replace("{username}", &ldap_escape(name))
}

impl Directory {
    /// The directory of `config`, if `ldap-url` is set; a setting that cannot work is an error
    /// at start, not at the first sign-in.
    pub fn from_config(config: &MasterConfig) -> Result<Option<Directory>, String> {
        let Some(url) = config.ldap_url.clone() else { return Ok(None) };
        let secure = if let Some(rest) = url.strip_prefix("ldaps://") {
            if config.ldap_starttls {
                return Err("ldap-starttls is for ldap:// URLs; an ldaps:// URL is TLS from the start".into());
            }
            rest
        } else if let Some(rest) = url.strip_prefix("ldap://") {
            rest
        } else {
            return Err(format!("ldap-url {url:?} must start with ldap:// or ldaps://"));
        };
        if secure.trim_end_matches('/').is_empty() || secure.trim_end_matches('/').contains('/') {
            return Err(format!("ldap-url {url:?} must name only a host and a port (ldap://host:389)"));
        }
        let tls_used = url.starts_with("ldaps://") || config.ldap_starttls;
        if !tls_used {
            tracing::warn!(
                "ldap-url {url} is plain LDAP without ldap-starttls: passwords cross the network in clear text"
            );
        }
        let base_dn = config.ldap_base_dn.clone().filter(|b| !b.is_empty()).ok_or("ldap-url needs ldap-base-dn")?;
        if !config.ldap_user_filter.contains("{username}") {
            return Err("ldap-user-filter must contain {username}".into());
        }
        let bind = match (&config.ldap_bind_dn, &config.ldap_bind_password) {
            (None, _) => None,
            // An empty password would make the service account's bind an anonymous one.
            (Some(_), None) => return Err("ldap-bind-dn needs ldap-bind-password (ZOE_LDAP_BIND_PASSWORD)".into()),
            (Some(_), Some(p)) if p.is_empty() => return Err("ldap-bind-password must not be empty".into()),
            (Some(dn), Some(p)) => Some((dn.clone(), p.clone())),
        };
        let tls = match &config.ldap_tls_ca {
            Some(ca) if tls_used => Some(client_config(Some(ca))?),
            Some(_) => return Err("ldap-tls-ca is for ldaps:// URLs or ldap-starttls".into()),
            None if tls_used => Some(client_config(None)?),
            None => None,
        };
        if config.ldap_timeout == 0 || config.ldap_max_calls == 0 {
            return Err("ldap-timeout and ldap-max-calls must be at least 1".into());
        }
        Ok(Some(Directory {
            url,
            starttls: config.ldap_starttls,
            tls,
            bind,
            base_dn,
            user_filter: config.ldap_user_filter.clone(),
            admin_group: config.ldap_admin_group.clone().filter(|g| !g.is_empty()),
            guest_group: config.ldap_guest_group.clone().filter(|g| !g.is_empty()),
            timeout: Duration::from_secs(config.ldap_timeout),
            turns: tokio::sync::Semaphore::new(config.ldap_max_calls),
        }))
    }

    /// Verifies `name` and `password` with the directory. The caller has already refused an
    /// empty or overlong password and a name that is not a Zoe user name.
    pub async fn verify(&self, name: &str, password: &str) -> Verdict {
        if password.is_empty() || !zoe_checkpoints::is_dns_label(name) {
            return Verdict::Refused;
        }
        let Ok(Ok(_turn)) = tokio::time::timeout(self.timeout, self.turns.acquire()).await else {
            return Verdict::Unavailable("too many sign-ins are waiting for the directory".into());
        };
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout).set_starttls(self.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        // Connecting, and the StartTLS or TLS handshake, within the time limit.
        let (conn, mut ldap) =
            match tokio::time::timeout(self.timeout * 2, LdapConnAsync::with_settings(settings, &self.url)).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => return Verdict::Unavailable(format!("cannot connect to the directory: {e}")),
                Err(_) => return Verdict::Unavailable("the directory did not answer in time".into()),
            };
        let driver = Driver(actix_web::rt::spawn(async move {
            if let Err(e) = conn.drive().await {
                tracing::debug!("directory connection: {e}");
            }
        }));
        let verdict = self.verify_on(&mut ldap, name, password).await;
        let _ = tokio::time::timeout(self.timeout, ldap.unbind()).await;
        drop(driver);
        verdict
    }

    async fn verify_on(&self, ldap: &mut Ldap, name: &str, password: &str) -> Verdict {
        let unavailable =
            |what: &str, e: &dyn std::fmt::Display| Verdict::Unavailable(format!("the directory {what}: {e}"));
        if let Some((dn, pw)) = &self.bind {
            match ldap.with_timeout(self.timeout).simple_bind(dn, pw).await {
                Ok(r) if r.rc == 0 => {}
                Ok(r) => return unavailable("refused the service account (ldap-bind-dn)", &r),
                Err(e) => return unavailable("did not take the service account's bind", &e),
            }
        }
        let filter = user_filter(&self.user_filter, name);
        let found = ldap
            .with_timeout(self.timeout)
            .with_search_options(ldap3::SearchOptions::new().sizelimit(MAX_ENTRIES))
            .search(&self.base_dn, Scope::Subtree, &filter, vec!["uidNumber"])
            .await;
        let entries = match found {
            // 4: the size limit was reached, i.e. more than one entry: not a user name's filter.
            Ok(r) if r.1.rc == 0 || r.1.rc == 4 => r.0,
            Ok(r) => return unavailable("refused the search for the user", &r.1),
            Err(e) => return unavailable("did not answer the search for the user", &e),
        };
        let mut entries: Vec<SearchEntry> = entries.into_iter().map(SearchEntry::construct).collect();
        if entries.len() != 1 {
            if entries.len() > 1 {
                tracing::warn!("ldap-user-filter finds several entries for one user name; nobody signs in with it");
            }
            return Verdict::Refused;
        }
        let Some(entry) = entries.pop() else { return Verdict::Refused };
        let uid = entry.attrs.get("uidNumber").and_then(|v| v.first()).and_then(|v| v.trim().parse::<u32>().ok());
        let mut role = Role::User;
        for (group, group_role) in [(&self.guest_group, Role::Guest), (&self.admin_group, Role::Admin)] {
            let Some(group) = group else { continue };
            match self.member_of(ldap, group, &entry.dn, name).await {
                Ok(true) => role = group_role,
                Ok(false) => {}
                Err(e) => return e,
            }
        }
        // The password last, bound as the user themself: nothing after it is asked as them.
        match ldap.with_timeout(self.timeout).simple_bind(&entry.dn, password).await {
            Ok(r) if r.rc == 0 => Verdict::Accepted { role, uid },
            Ok(r) if r.rc == INVALID_CREDENTIALS => Verdict::Refused,
            Ok(r) => {
                tracing::info!("the directory refused a sign-in of {name}: {r}");
                Verdict::Refused
            }
            Err(e) => unavailable("did not answer the user's bind", &e),
        }
    }

    /// Whether the entry `dn` (user `name`) is a member of `group`: a `groupOfNames` with
    /// `member: <dn>` or a `posixGroup` with `memberUid: <name>`. A group that does not exist
    /// has no members.
    async fn member_of(&self, ldap: &mut Ldap, group: &str, dn: &str, name: &str) -> Result<bool, Verdict> {
        let filter = format!("(|(member={})(memberUid={}))", ldap_escape(dn), ldap_escape(name));
        match ldap.with_timeout(self.timeout).search(group, Scope::Base, &filter, vec!["1.1"]).await {
            Ok(r) if r.1.rc == 0 => Ok(!r.0.is_empty()),
            // noSuchObject
            Ok(r) if r.1.rc == 32 => {
                tracing::warn!("the directory has no group {group}");
                Ok(false)
            }
            Ok(r) => Err(Verdict::Unavailable(format!("the directory refused the search of group {group}: {}", r.1))),
            Err(e) => {
                Err(Verdict::Unavailable(format!("the directory did not answer the search of group {group}: {e}")))
            }
        }
    }
}

/// Stops a connection's task when the sign-in is done with it, however it ends.
struct Driver(actix_web::rt::task::JoinHandle<()>);

impl Drop for Driver {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// TLS with the directory: its certificate must be signed by the `ldap-tls-ca` authority (else
/// one of the system's) and name the URL's host. Always Zoe's own rustls settings (its `ring`
/// provider), never a library's defaults.
fn client_config(ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            let (added, _) = roots.add_parsable_certificates(crate::tls::load_certs(ca, "ldap-tls-ca")?);
            if added == 0 {
                return Err(format!("ldap-tls-ca {}: no certificate authority in it", ca.display()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("the system has no certificate authorities for the directory; give ldap-tls-ca".into());
            }
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_the_filter() {
        for (template, name, filter) in [
            ("(uid={username})", "alice", "(uid=alice)"),
            ("(uid={username})", "*", "(uid=\\2a)"),
            ("(uid={username})", "alice)(uid=*", "(uid=alice\\29\\28uid=\\2a)"),
            ("(&(objectClass=person)(uid={username}))", "a\\b\0", "(&(objectClass=person)(uid=a\\5cb\\00))"),
        ] {
            assert_eq!(user_filter(template, name), filter, "{template} with {name:?}");
        }
    }
}
