//! The OpenAPI 3 document of the REST API, served at `GET /api/0.6/openapi.json` without
//! credentials. The operations come from the `#[utoipa::path]` attributes on the handlers in
//! [`crate::api`] and [`crate::observability`]; the answers' schemas are the typed views the API
//! serializes (`zoe_actors::logic::views`, `crate::api`). The types here describe what requests
//! send (the handlers read bodies field by field, to name the field of each refusal).

// The request types are never built: they describe what clients send.
#![allow(dead_code)]

use actix_web::HttpResponse;
use utoipa::openapi::schema::Object;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The name of the basic-auth security scheme in the document.
pub const BASIC_AUTH: &str = "basic_auth";

/// The whole document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zoe",
        description = "Zoe analytics-as-a-service scheduler: the REST API of Zoe 0.9.7 (base path \
                       /api/0.6) plus the operators' endpoints. Errors are {\"message\", \"code\"}; \
                       match on `code`, it is stable. Bodies must be sent as application/json; requests a \
                       browser marks as sent by another site are refused.",
        license(name = "Apache-2.0")
    ),
    paths(
        crate::api::info,
        crate::api::create_user,
        crate::api::get_user,
        crate::api::update_user,
        crate::api::delete_user,
        crate::api::list_executions,
        crate::api::submit_execution,
        crate::api::get_execution,
        crate::api::terminate_execution,
        crate::api::get_service,
        crate::api::service_logs,
        crate::api::query,
        openapi_json,
        crate::observability::healthz,
        crate::observability::readyz,
        crate::observability::metrics,
    ),
    components(schemas(
        ErrorBody,
        crate::api::Info,
        NewUser,
        UserUpdate,
        NewExecution,
        ApplicationDescription,
        ServiceDescription,
        Resources,
        PortDescription,
        QueryRequest,
    )),
    modifiers(&BasicAuth),
    tags(
        (name = "users", description = "Accounts and roles"),
        (name = "executions", description = "Submitting, watching and terminating applications"),
        (name = "services", description = "The containers of an execution"),
        (name = "platform", description = "Version, queries, statistics"),
        (name = "operations", description = "Health, readiness and metrics; no credentials"),
    )
)]
pub struct ApiDoc;

/// Adds the HTTP basic-auth security scheme the API operations refer to.
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BASIC_AUTH,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("The user's name and password (realm \"zoe\")"))
                    .build(),
            ),
        );
    }
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// `GET /api/0.6/openapi.json`: this document; no credentials needed.
#[utoipa::path(
    get,
    path = "/api/0.6/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI 3 document of this API", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok().json(document())
}

/// Every error: `{"message", "code"}`.
#[derive(ToSchema)]
#[schema(example = json!({"message": "no such execution: 42", "code": "no_such_execution"}))]
pub struct ErrorBody {
    /// For people; may change.
    pub message: String,
    /// For programs; stable (see the README's error table).
    pub code: String,
}

/// The refusals every authenticated operation can give.
#[derive(utoipa::IntoResponses)]
pub enum AuthRefusals {
    /// `unauthorized`: missing or wrong credentials (with `WWW-Authenticate`)
    #[response(status = 401)]
    Unauthorized(ErrorBody),
    /// `too_many_failed_logins` (with `Retry-After`)
    #[response(status = 429)]
    Throttled(ErrorBody),
}

/// `POST /user`.
#[derive(ToSchema)]
pub struct NewUser {
    /// A lowercase DNS label (a-z, 0-9, '-').
    #[schema(example = "alice", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    pub role: zoe_checkpoints::Role,
    /// 1 to 1024 bytes.
    #[schema(min_length = 1, max_length = 1024)]
    pub password: String,
}

/// `PUT /user/{name}`: administrators change roles and passwords, users their own password.
/// Other keys are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    pub role: Option<zoe_checkpoints::Role>,
    #[schema(min_length = 1, max_length = 1024)]
    pub password: Option<String>,
}

/// `POST /execution`.
#[derive(ToSchema)]
pub struct NewExecution {
    /// Unique among the owner's active executions; part of the container names (a lowercase
    /// DNS label).
    #[schema(example = "hello", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    pub application: ApplicationDescription,
}

/// An application description, format version 2, validated strictly: types must be right and
/// unknown keys are refused.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplicationDescription {
    #[schema(max_length = 128, example = "hello")]
    pub name: String,
    /// Must be 2.
    #[schema(minimum = 2, maximum = 2, example = 2)]
    pub version: u32,
    pub will_end: bool,
    pub requires_binary: bool,
    #[schema(minimum = 0, maximum = 1024, example = 512)]
    pub priority: u32,
    /// 1 to 64 services, at least one a monitor, with unique names; at most 256 containers.
    #[schema(min_items = 1, max_items = 64)]
    pub services: Vec<ServiceDescription>,
}

/// One service of an application description.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDescription {
    /// A lowercase DNS label, unique in the application.
    #[schema(example = "main", pattern = "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
    pub name: String,
    #[schema(max_length = 255, example = "busybox:latest")]
    pub docker_image: String,
    /// When a monitor service ends, its execution ends.
    pub monitor: bool,
    #[schema(minimum = 1, maximum = 64, example = 1)]
    pub total_count: u32,
    /// 0 to `total_count`.
    #[schema(minimum = 0, maximum = 64, example = 1)]
    pub essential_count: u32,
    #[schema(minimum = 0, maximum = 1000, example = 0)]
    pub startup_order: u32,
    #[schema(max_items = 32)]
    pub ports: Vec<PortDescription>,
    pub required_resources: Resources,
    /// `[name, value]` pairs; values may use template variables.
    #[schema(max_items = 256, value_type = Option<Vec<Vec<String>>>)]
    pub environment: Option<Vec<Vec<String>>>,
    /// A shell-style command line; may use the template variables `{execution_name}`,
    /// `{user_name}`, `{deployment_name}`, `{index}`, `{execution_id}`.
    #[schema(max_length = 4096, example = "sh -c 'echo hello from {execution_name}'")]
    pub command: Option<String>,
    /// Refused unless empty.
    #[schema(max_items = 0)]
    pub volumes: Option<Vec<Object>>,
    /// Refused unless empty.
    #[schema(max_items = 0)]
    pub networks: Option<Vec<String>>,
}

/// What a service needs.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Memory limit in bytes, 6 MiB to 1 TiB.
    #[schema(minimum = 6291456, maximum = 1099511627776_u64, example = 67108864)]
    pub memory: u64,
    /// CPU limit in cores, more than 0 and at most 256; absent means no limit.
    #[schema(maximum = 256)]
    pub cores: Option<f64>,
}

/// A port of a service description.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PortDescription {
    #[schema(max_length = 128, example = "http")]
    pub name: String,
    /// A lowercase URL scheme.
    #[schema(max_length = 16, example = "http")]
    pub protocol: String,
    #[schema(minimum = 1, maximum = 65535, example = 8080)]
    pub port_number: u16,
    pub is_main_endpoint: bool,
    /// Empty or starting with '/'.
    #[schema(max_length = 1024, example = "/")]
    pub path: Option<String>,
    /// Serve the port through the master's proxy, on a host name of its own (and publish it on
    /// the host with `publish-ports`).
    pub expose: Option<bool>,
    /// A header the proxy adds to every request to this exposed port, `Name: value` with
    /// `{secret}` for the execution's secret (e.g. `Authorization: token {secret}`).
    #[schema(max_length = 256, example = "Authorization: token {secret}")]
    pub secret_header: Option<String>,
}

/// `POST /query`.
#[derive(ToSchema)]
pub struct QueryRequest {
    pub what: zoe_actors::logic::views::QueryWhat,
    /// `{attribute: value}`; all must match exactly.
    #[schema(value_type = Option<Object>)]
    pub filters: Option<serde_json::Map<String, serde_json::Value>>,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test fails by panicking
mod tests {
    use std::collections::BTreeSet;

    use actix_web::http::{Method, StatusCode};
    use actix_web::{test as web_test, App};
    use serde_json::Value;

    use super::document;

    /// Every route `api::configure` and `observability::configure` register, as in the README.
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/api/0.6/info"),
        ("POST", "/api/0.6/user"),
        ("GET", "/api/0.6/user/{name}"),
        ("PUT", "/api/0.6/user/{name}"),
        ("DELETE", "/api/0.6/user/{name}"),
        ("GET", "/api/0.6/execution"),
        ("POST", "/api/0.6/execution"),
        ("GET", "/api/0.6/execution/{id}"),
        ("DELETE", "/api/0.6/execution/{id}"),
        ("GET", "/api/0.6/service/{id}"),
        ("GET", "/api/0.6/service/{id}/logs"),
        ("POST", "/api/0.6/query"),
        ("GET", "/api/0.6/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
    ];

    fn json() -> Value {
        let text = document().to_json().unwrap();
        serde_json::from_str(&text).unwrap()
    }

    #[test]
    fn the_document_is_openapi_3_and_lists_exactly_the_routes() {
        let doc = json();
        assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")), "{}", doc["openapi"]);
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let expected: BTreeSet<_> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        assert_eq!(documented, expected);
        // The API operations need basic auth and document the error body; the operators'
        // endpoints and the document itself do not.
        assert!(doc["components"]["securitySchemes"][super::BASIC_AUTH]["scheme"] == "basic");
        for (method, path) in ROUTES {
            let op = &doc["paths"][path][method.to_lowercase()];
            let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
            let public = !path.starts_with("/api/") || path.ends_with("openapi.json");
            assert_eq!(secured, !public, "{method} {path}: security {}", op["security"]);
            if !public {
                let unauthorized = &op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(unauthorized, "#/components/schemas/ErrorBody", "{method} {path}");
            }
        }
        // Every schema an operation refers to is in the document.
        let text = doc.to_string();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(doc["components"]["schemas"].get(name).is_some(), "{name} is referred to but not defined");
        }
        for view in ["User", "Execution", "Service", "ExecutionStatus", "QueryAnswer", "Application"] {
            assert!(doc["components"]["schemas"].get(view).is_some(), "the view {view} is documented");
        }
        // No passwords or hashes in the examples.
        assert!(!text.contains("argon2") && !text.contains("changeme") && !text.contains("s3cret"));
    }

    /// The list above against what `configure` really registers: each listed route is matched
    /// (not the empty 404 of an unknown path), and each API resource allows exactly the listed
    /// methods (its 405 `Allow` header).
    #[actix_web::test]
    async fn the_list_matches_the_registered_routes() {
        let app = web_test::init_service(
            App::new().configure(crate::observability::configure).configure(crate::api::configure),
        )
        .await;
        let concrete = |p: &str| p.replace("{name}", "alice").replace("{id}", "1");
        for (method, path) in ROUTES {
            let req = web_test::TestRequest::default()
                .method(Method::from_bytes(method.as_bytes()).unwrap())
                .uri(&concrete(path))
                .to_request();
            let resp = web_test::call_service(&app, req).await;
            assert_ne!(resp.status(), StatusCode::NOT_FOUND, "{method} {path} is not registered");
            assert_ne!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not registered");
            if path.starts_with("/api/") {
                let req = web_test::TestRequest::default().method(Method::PATCH).uri(&concrete(path)).to_request();
                let resp = web_test::call_service(&app, req).await;
                assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "PATCH {path}");
                let allow = resp.headers().get("allow").unwrap().to_str().unwrap();
                let allowed: BTreeSet<&str> = allow.split(", ").collect();
                let listed: BTreeSet<&str> = ROUTES.iter().filter(|(_, p)| p == path).map(|(m, _)| *m).collect();
                assert_eq!(allowed, listed, "methods of {path}");
            }
        }
    }
}
