//! The OpenAPI 3 document of the REST API, served at `GET /api/0.6/openapi.json` without
//! credentials. The operations come from the `#[utoipa::path]` attributes on the handlers in
//! [`crate::api`], [`crate::datasets`] and [`crate::observability`], and utoipa collects the
//! schemas from the types those name (each with the schemas it holds); every schema is derived
//! from the type the code uses: the answers' from the typed views the API serializes
//! (`zoe_actors::logic::views`, `crate::api`, `crate::datasets`), the bodies' from the types the handlers read ([`crate::requests`]), the
//! application description's from the model the checkpoints keep
//! (`zoe_checkpoints::Application`), and the errors' from [`crate::error::ErrorBody`].

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The name of the basic-auth security scheme in the document.
pub const BASIC_AUTH: &str = "basic_auth";
/// The name of the API token scheme (`Authorization: Bearer <token>`, `POST /token`).
pub const BEARER_TOKEN: &str = "bearer_token";

/// The whole document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Zoe",
        description = "Zoe analytics-as-a-service scheduler: the REST API of Zoe 0.9.7 (base path \
                       /api/0.6) plus the operators' endpoints. Errors are {\"message\", \"code\"}; \
                       match on `code`, it is stable. Bodies must be sent as application/json (file uploads as application/octet-stream); requests a \
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
        crate::api::create_token,
        crate::api::list_tokens,
        crate::api::revoke_token,
        crate::api::audit,
        crate::usage::report,
        crate::datasets::list_datasets,
        openapi_json,
        crate::observability::healthz,
        crate::observability::readyz,
        crate::observability::metrics,
    ),
    nest((
        path = format!("{}{}", crate::api::BASE, crate::api::workspace::PREFIX),
        api = crate::api::workspace::WorkspaceApi,
        tags = ["workspace"]
    )),
    modifiers(&BasicAuth),
    tags(
        (name = "users", description = "Accounts and roles"),
        (name = "executions", description = "Submitting, watching and terminating applications"),
        (name = "services", description = "The containers of an execution"),
        (name = "platform", description = "Version, queries, statistics"),
        (name = "workspace", description = "The files of a user's workspace: bytes in and out (application/octet-stream), folders as JSON listings or tar archives"),
        (name = "operations", description = "Health, readiness and metrics; no credentials (with them, /metrics adds the usage the caller may see)"),
    )
)]
pub struct ApiDoc;

/// Adds the HTTP basic-auth and bearer-token security schemes, and requires one of them of every
/// operation that can answer `401` (those that name [`crate::responses::AuthRefusals`]); outside
/// the API (`/metrics`) credentials are optional (an empty requirement among them).
struct BasicAuth;

impl Modify for BasicAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let optional = !path.starts_with("/api/");
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete];
            for op in operations.into_iter().flatten() {
                if op.responses.responses.contains_key("401") {
                    let mut security = vec![
                        SecurityRequirement::new::<_, _, String>(BASIC_AUTH, []),
                        SecurityRequirement::new::<_, _, String>(BEARER_TOKEN, []),
                    ];
                    if optional {
                        security.insert(0, SecurityRequirement::default());
                    }
                    op.security = Some(security);
                }
            }
        }
        let components = openapi.components.get_or_insert_with(Default::default);
        let schemes = [
            (BASIC_AUTH, HttpAuthScheme::Basic, "The user's name and password (realm \"zoe\")"),
            (
                BEARER_TOKEN,
                HttpAuthScheme::Bearer,
                "An API token of `POST /api/0.6/token`, accepted wherever basic auth is",
            ),
        ];
        for (name, scheme, description) in schemes {
            let http = HttpBuilder::new().scheme(scheme).description(Some(description)).build();
            components.add_security_scheme(name, SecurityScheme::Http(http));
        }
    }
}

/// The document as JSON.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Registers the API's two resources outside its scope, `GET /api/0.6/openapi.json` (this
/// document) and `GET /api/0.6/datasets`, guarded as the API's routes are; before
/// [`crate::api::configure`], whose scope would take their paths otherwise.
pub fn configure(cfg: &mut web::ServiceConfig) {
    crate::origin::get_only(cfg, "/api/0.6/openapi.json", web::get().to(openapi_json));
    crate::origin::get_only(cfg, "/api/0.6/datasets", web::get().to(crate::datasets::list_datasets));
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
        ("POST", "/api/0.6/token"),
        ("GET", "/api/0.6/token"),
        ("DELETE", "/api/0.6/token/{name}"),
        ("GET", "/api/0.6/audit"),
        ("GET", "/api/0.6/usage"),
        ("GET", "/api/0.6/workspace/{path}"),
        ("PUT", "/api/0.6/workspace/{path}"),
        ("DELETE", "/api/0.6/workspace/{path}"),
        ("GET", "/api/0.6/datasets"),
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
        // endpoints and the document itself do not (`/metrics` takes credentials optionally).
        assert!(doc["components"]["securitySchemes"][super::BASIC_AUTH]["scheme"] == "basic");
        for (method, path) in ROUTES {
            let op = &doc["paths"][path][method.to_lowercase()];
            let security = op["security"].as_array().cloned().unwrap_or_default();
            let optional = security.first().is_some_and(|s| s == &serde_json::json!({}));
            assert_eq!(optional, *path == "/metrics", "{method} {path}: security {}", op["security"]);
            let secured = !security.is_empty() && !optional;
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
        // The description a request sends is the model the checkpoints keep, its optional fields
        // not required.
        let schemas = &doc["components"]["schemas"];
        assert_eq!(schemas["NewExecution"]["properties"]["application"]["$ref"], "#/components/schemas/Application");
        let required = |name: &str| schemas[name]["required"].as_array().cloned().unwrap_or_default();
        for (schema, optional) in [
            ("ServiceDescription", &["environment", "command", "volumes", "networks", "datasets"][..]),
            ("PortDescription", &["path", "expose", "secret_header"][..]),
            ("Resources", &["cores"][..]),
        ] {
            for field in optional {
                assert!(!required(schema).iter().any(|r| r == field), "{schema}.{field} is optional");
            }
        }
        assert_eq!(required("Application").len(), 6, "{}", schemas["Application"]);
        // No passwords or hashes in the examples.
        assert!(!text.contains("argon2") && !text.contains("changeme") && !text.contains("s3cret"));
    }

    /// The list above against what `configure` really registers: each listed route is matched
    /// (not the empty 404 of an unknown path), and each API resource allows exactly the listed
    /// methods (its 405 `Allow` header).
    #[actix_web::test]
    async fn the_list_matches_the_registered_routes() {
        let app = web_test::init_service(
            App::new()
                .configure(crate::observability::configure)
                .configure(super::configure)
                .configure(crate::api::configure),
        )
        .await;
        let concrete = |p: &str| p.replace("{name}", "alice").replace("{id}", "1").replace("{path}", "a/b.txt");
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
