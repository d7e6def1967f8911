//! The log of a service, for the API (`GET /service/<id>/logs`) and the web pages alike: streamed
//! from its live container, or the tail kept under `<state-dir>/logs/` after its removal.

use actix_web::web;
use futures_util::stream::LocalBoxStream;
use futures_util::StreamExt;
use zoe_actors::logic::views;
use zoe_actors::protocol::ServiceLogs;
use zoe_actors::Caller;

use crate::error::{ApiError, HttpCode};
use crate::AppData;

/// A service's log, as the caller may read it.
pub enum ServiceLog {
    /// The live container's log, as Docker streams it.
    Live(LocalBoxStream<'static, Result<web::Bytes, actix_web::Error>>),
    /// The tail kept when its container was removed.
    Kept(Vec<u8>),
}

/// The log of service `id`, if the caller may see it: streamed from the live container (the
/// last `tail` lines, then what comes while `follow`), or the last `tail` lines kept after its
/// removal.
pub async fn service_log(
    data: &AppData,
    caller: Caller,
    id: u64,
    follow: bool,
    tail: Option<u64>,
) -> Result<ServiceLog, ApiError> {
    let source = views::log_source(&data.reader.now(), &caller, id)?;
    if let (true, Some(backend)) = (source.live, &data.backend) {
        // A followed stream holds one of the caller's few places until it ends or its client
        // goes away (the server notices a closed connection at once).
        let slot = if follow { Some(data.limits.follower(&caller)?) } else { None };
        let msg = ServiceLogs { container: source.container.clone(), follow, tail_lines: tail };
        if let Ok(Ok(rx)) = backend.logs.send(msg).await {
            let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
                rx.recv().await.map(|item| {
                    (item.map(web::Bytes::from).map_err(actix_web::error::ErrorInternalServerError), (rx, slot))
                })
            });
            return Ok(ServiceLog::Live(stream.boxed_local()));
        }
    }
    let path = data.config.log_dir().join(format!("{}.log", source.service_id));
    match web::block(move || std::fs::read(path)).await {
        Ok(Ok(bytes)) => Ok(ServiceLog::Kept(last_lines(bytes, tail))),
        _ => Err(ApiError::new(
            HttpCode::NotFound,
            format!("no log is kept for service {id}: its container never ran or left no output"),
        )),
    }
}

/// The last `tail` lines of a log (all of it without `tail`).
pub fn last_lines(bytes: Vec<u8>, tail: Option<u64>) -> Vec<u8> {
    let Some(n) = tail else { return bytes };
    if n == 0 {
        return Vec::new();
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
    let start = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, b)| **b == b'\n')
        .nth(usize::try_from(n).unwrap_or(usize::MAX).saturating_sub(1))
        .map_or(0, |(i, _)| i + 1);
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::last_lines;

    #[test]
    fn last_lines_of_a_kept_log() {
        let log = b"a\nb\nc\n".to_vec();
        assert_eq!(last_lines(log.clone(), None), log);
        assert_eq!(last_lines(log.clone(), Some(1)), b"c\n");
        assert_eq!(last_lines(log.clone(), Some(2)), b"b\nc\n");
        assert_eq!(last_lines(log.clone(), Some(9)), log);
        assert_eq!(last_lines(log, Some(0)), b"");
        assert_eq!(last_lines(b"x".to_vec(), Some(1)), b"x");
        assert_eq!(last_lines(b"a\nb\nc".to_vec(), Some(5)), b"a\nb\nc");
    }
}
