//! Sign-in through a directory: a real OpenLDAP slapd of the test's own (`common::slapd`), with
//! people in an administrators' `groupOfNames` and a guests' `posixGroup`.

use serde_json::{json, Value};

use crate::common::slapd::{self, Slapd};
use crate::common::{temp_dir, Master, ADMIN};

const ALICE: (&str, &str) = ("alice", "alice-secret");
const BOB: (&str, &str) = ("bob", "bob-secret");
const CAROL: (&str, &str) = ("carol", "carol-secret");
const MALLORY: (&str, &str) = ("mallory", "mallory-secret");

/// A master signing users in through `url`, verifying each password again after a second.
fn master_of(tag: &str, url: &str, extra: &[&str]) -> Master {
    let mut args = vec![
        "--no-docker",
        "--auth-cache-seconds",
        "1",
        "--ldap-url",
        url,
        "--ldap-bind-dn",
        slapd::SERVICE_DN,
        "--ldap-bind-password",
        slapd::SERVICE_PASSWORD,
        "--ldap-base-dn",
        slapd::BASE_DN,
        "--ldap-admin-group",
        slapd::ADMIN_GROUP,
        "--ldap-guest-group",
        slapd::GUEST_GROUP,
        "--ldap-timeout",
        "3",
    ];
    args.extend(extra);
    Master::start_in(&temp_dir(tag), &args)
}

fn user(m: &Master, name: &str) -> Value {
    let (s, v) = m.get(&format!("/api/0.6/user/{name}"), ADMIN);
    assert_eq!(s, 200, "{name}: {v}");
    v
}

/// Waits out the credential cache, so that the next request is verified again.
fn after_the_cache() {
    std::thread::sleep(std::time::Duration::from_millis(1200));
}

#[test]
fn directory_users_sign_in_with_their_groups_roles_and_uids_and_nobody_else_does() {
    let mut dir = Slapd::start("signin");
    let m = master_of("ldap-signin", &dir.url(), &[]);

    // The first sign-in creates the user: role from the groups, uid from uidNumber.
    for (who, role, uid) in [(ALICE, "admin", Some(10_001)), (BOB, "guest", Some(10_002)), (CAROL, "user", None)] {
        let (s, v) = m.get("/api/0.6/info", who);
        assert_eq!(s, 200, "{}: {v}\n{}", who.0, m.log_text());
        let u = user(&m, who.0);
        assert_eq!(u["role"], role, "{u}");
        match uid {
            Some(uid) => assert_eq!(u["uid"], uid, "{u}"),
            None => assert!(u["uid"].as_u64().unwrap() >= 200_000, "{u}"),
        }
    }
    // A uidNumber of 0 never makes anyone root: the user gets a uid of Zoe's.
    assert_eq!(m.get("/api/0.6/info", MALLORY).0, 200);
    assert!(user(&m, "mallory")["uid"].as_u64().unwrap() >= 200_000);
    // The administrator of the directory is one of Zoe's.
    assert_eq!(m.get("/api/0.6/user/bob", ALICE).0, 200);

    // Wrong, empty and injected credentials sign nobody in.
    for who in [
        ("alice", "wrong"),
        ("alice", ""),
        ("*", "alice-secret"),
        ("*", ""),
        ("alice)(uid=*", "alice-secret"),
        ("alice)(|(uid=*", ""),
        ("a*", "alice-secret"),
        ("nobody", "nobody-secret"),
        // The directory's entry named zoeadmin does not take over Zoe's local administrator.
        ("zoeadmin", "zoeadmin-secret"),
    ] {
        let (s, v) = m.get("/api/0.6/info", who);
        assert_eq!((s, v["code"].as_str()), (401, Some("unauthorized")), "{who:?}: {v}");
    }
    assert_eq!(m.get("/api/0.6/info", ADMIN).0, 200);
    for name in ["*", "nobody", "zoeadmin"] {
        let (_, v) = m.get(&format!("/api/0.6/user/{name}"), ADMIN);
        assert_ne!(v["uid"], 10_009, "{v}");
    }
    // Their passwords are the directory's.
    let (s, v) = m.call("PUT", "/api/0.6/user/alice", Some(ADMIN), Some(&json!({"password": "zoe-pass"}).to_string()));
    assert_eq!((s, v["code"].as_str()), (409, Some("directory_user")), "{v}");
    assert_eq!(m.call("PUT", "/api/0.6/user/bob", Some(BOB), Some(r#"{"password": "x"}"#)).0, 409);

    // Group changes take effect at the next verification.
    dir.modify(&format!(
        "dn: {}\nchangetype: modify\nadd: member\nmember: uid=carol,ou=people,{}\n-\ndelete: member\nmember: uid=alice,ou=people,{}\n",
        slapd::ADMIN_GROUP,
        slapd::BASE_DN,
        slapd::BASE_DN
    ));
    dir.modify(&format!("dn: {}\nchangetype: modify\ndelete: memberUid\nmemberUid: bob\n", slapd::GUEST_GROUP));
    after_the_cache();
    for (who, role) in [(CAROL, "admin"), (ALICE, "user"), (BOB, "user")] {
        let (s, v) = m.get(&format!("/api/0.6/user/{}", who.0), who);
        assert_eq!((s, v["role"].as_str()), (200, Some(role)), "{}: {v}", who.0);
    }
    assert_eq!(user(&m, "alice")["uid"], 10_001, "the uid stays");

    // The directory down: its users get 503 auth_unavailable (never 401), local users sign in.
    dir.stop();
    after_the_cache();
    for who in [ALICE, ("alice", "wrong"), ("dave", "dave-secret")] {
        let (s, h, v) = m.call_full("GET", "/api/0.6/info", Some(who), None);
        assert_eq!((s, v["code"].as_str()), (503, Some("auth_unavailable")), "{who:?}: {v}");
        assert!(h.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after")), "{h:?}");
    }
    assert_eq!(m.get("/api/0.6/info", ADMIN).0, 200);
    assert_eq!(m.get("/api/0.6/user/alice", ADMIN).0, 200);
    // An empty password is refused before the directory is asked: 401 even while it is down.
    assert_eq!(m.get("/api/0.6/info", ("alice", "")).0, 401);

    // And back.
    dir.resume();
    assert_eq!(m.get("/api/0.6/info", ALICE).0, 200);
    assert_eq!(m.get("/api/0.6/info", ("alice", "wrong")).0, 401);
    assert!(!m.log_text().contains("alice-secret"), "a password in the log");
}

#[test]
fn the_directory_over_tls_must_show_a_certificate_of_the_configured_authority() {
    let dir = Slapd::start("tls");
    let ca = dir.ca();
    let ca = ca.to_str().unwrap();
    let ldaps = master_of("ldap-ldaps", &dir.tls_url(), &["--ldap-tls-ca", ca]);
    assert_eq!(ldaps.get("/api/0.6/info", ALICE).0, 200);
    assert_eq!(ldaps.get("/api/0.6/info", ("alice", "wrong")).0, 401);
    let starttls = master_of("ldap-starttls", &dir.url(), &["--ldap-starttls", "--ldap-tls-ca", ca]);
    assert_eq!(starttls.get("/api/0.6/info", BOB).0, 200);
    assert_eq!(user(&starttls, "bob")["role"], "guest");

    // Without ldap-tls-ca, the system's authorities, which never signed the test CA's certificate.
    let system = master_of("ldap-system-cas", &dir.tls_url(), &[]);
    let (s, v) = system.get("/api/0.6/info", ALICE);
    assert_eq!((s, v["code"].as_str()), (503, Some("auth_unavailable")), "{v}");
    // Another authority's certificate: the directory cannot be trusted, so it cannot say.
    let other = temp_dir("other-ca");
    slapd::make_certificates(&other, "another-ca");
    let other_ca = other.join("ca.pem");
    for (tag, url, starttls) in [("ldap-wrong-ca", dir.tls_url(), false), ("ldap-wrong-ca-starttls", dir.url(), true)] {
        let mut extra = vec!["--ldap-tls-ca", other_ca.to_str().unwrap()];
        if starttls {
            extra.push("--ldap-starttls");
        }
        let m = master_of(tag, &url, &extra);
        let (s, v) = m.get("/api/0.6/info", ALICE);
        assert_eq!((s, v["code"].as_str()), (503, Some("auth_unavailable")), "{tag}: {v}");
        assert_eq!(m.get("/api/0.6/info", ADMIN).0, 200);
    }
}

#[test]
fn directory_settings_that_cannot_work_stop_the_master_at_start() {
    let base = ["--no-docker", "--ldap-base-dn", slapd::BASE_DN];
    for (case, extra) in [
        ("no scheme", vec!["--ldap-url", "localhost:389"]),
        ("http", vec!["--ldap-url", "http://localhost"]),
        ("a bind DN without its password", vec!["--ldap-url", "ldap://localhost", "--ldap-bind-dn", slapd::SERVICE_DN]),
        (
            "an empty bind password",
            vec!["--ldap-url", "ldap://localhost", "--ldap-bind-dn", slapd::SERVICE_DN, "--ldap-bind-password", ""],
        ),
        ("a filter without {username}", vec!["--ldap-url", "ldap://localhost", "--ldap-user-filter", "(uid=alice)"]),
        ("StartTLS on ldaps", vec!["--ldap-url", "ldaps://localhost", "--ldap-starttls"]),
    ] {
        let mut args = base.to_vec();
        args.extend(extra);
        assert!(Master::try_start_in(&temp_dir("ldap-config"), &args).is_err(), "{case}: started");
    }
    let no_base = ["--no-docker", "--ldap-url", "ldap://localhost"];
    assert!(Master::try_start_in(&temp_dir("ldap-config"), &no_base).is_err(), "no base DN: started");
}

#[test]
fn directory_users_sign_in_on_the_sign_in_page_and_their_sessions_outlive_the_directory() {
    use crate::web::request;
    let mut dir = Slapd::start("form");
    let m = master_of("ldap-form", &dir.url(), &[]);
    let sign_in = |who: (&str, &str)| {
        request(&m, "POST", "/login", None, Some(&[("username", who.0), ("password", who.1), ("next", "/")]), &[])
    };
    // The first sign-in creates the user, with the role of their groups.
    let ok = sign_in(BOB);
    assert_eq!(ok.status, 303, "{}\n{}", ok.body, m.log_text());
    assert_eq!(user(&m, "bob")["role"], "guest");
    let set = ok.header("set-cookie").unwrap();
    let cookie = set.split(';').next().unwrap().to_string();
    let page = request(&m, "GET", "/executions", None, None, &[("Cookie", &cookie)]);
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("bob <span class=\"role\">guest</span>");
    // Wrong and injected credentials: the form again, 401, the same words.
    for who in [("bob", "wrong"), ("*", "bob-secret"), ("bob)(uid=*", "bob-secret"), ("bob", "")] {
        let p = sign_in(who);
        assert_eq!(p.status, 401, "{who:?}: {}", p.body);
        assert!(p.header("set-cookie").is_none(), "{who:?}");
    }
    // The directory down: its users cannot sign in (503, said on the form), a session made
    // before keeps working, the local administrator signs in.
    dir.stop();
    after_the_cache();
    let down = sign_in(ALICE);
    assert_eq!(down.status, 503, "{}", down.body);
    down.assert_contains("not available right now");
    assert_eq!(request(&m, "GET", "/executions", None, None, &[("Cookie", &cookie)]).status, 200);
    assert_eq!(sign_in(ADMIN).status, 303);
}
