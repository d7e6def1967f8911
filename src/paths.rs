//! Request paths as 0.9.7's clients send them: a doubled slash (`//api/0.6/...`, from a `ZOE_URL`
//! that ends with `/`) or a trailing one is accepted. Only paths that need it are rewritten;
//! the others pass untouched (no pattern matching on every request).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::uri::{PathAndQuery, Uri};
use actix_web::middleware::Next;

/// The path with runs of slashes merged and the trailing slash trimmed, if that changes it.
pub fn normalized(path: &str) -> Option<String> {
    if !path.contains("//") && (path.len() <= 1 || !path.ends_with('/')) {
        return None;
    }
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    (out != path).then_some(out)
}

/// Middleware: rewrites a path that is not in its normal form.
pub async fn normalize(
    mut req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    // Proxied paths belong to the application behind the proxy: forwarded as they came.
    if req.path().starts_with(crate::apps::entry::PREFIX) {
        return next.call(req).await;
    }
    if let Some(path) = normalized(req.path()) {
        let head = req.head();
        let with_query = match head.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut parts = head.uri.clone().into_parts();
        if let Ok(pq) = PathAndQuery::try_from(with_query) {
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                req.match_info_mut().get_mut().update(&uri);
                req.head_mut().uri = uri;
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::normalized;

    #[test]
    fn only_paths_that_need_it_are_rewritten() {
        assert_eq!(normalized("/api/0.6/info"), None);
        assert_eq!(normalized("/"), None);
        assert_eq!(normalized("//api/0.6//info/"), Some("/api/0.6/info".to_string()));
        assert_eq!(normalized("/executions/"), Some("/executions".to_string()));
        assert_eq!(normalized("//"), Some("/".to_string()));
    }
}
