//! Every request's id: the client's `X-Request-Id` when it sent a usable one, else one
//! made here. It goes back on the response, into the request's log line and into any
//! problem it answers with, so that a client's report of a failure and the server's log
//! of it can be matched.

use std::sync::Arc;

use axum::http::HeaderMap;

/// The header, in both directions.
pub(crate) const HEADER: &str = "x-request-id";

/// Longest id taken from a client: enough for any UUID or trace id, short enough for a
/// log line.
const LONGEST: usize = 128;

tokio::task_local! {
    /// The id of the request being answered, for what answers it (a problem's body).
    static CURRENT: Arc<str>;
}

/// The id a request goes by: the client's, if it is 1 to 128 visible ASCII characters
/// (no spaces, nothing a log or a header could be split on), else a fresh one.
pub(crate) fn of(headers: &HeaderMap) -> Arc<str> {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| (1..=LONGEST).contains(&id.len()))
        .filter(|id| id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh, Arc::from)
}

/// 128 random bits, in hex.
fn fresh() -> Arc<str> {
    let mut bytes = [0u8; 16];
    // Without the system's randomness the id is still unique enough within a log: the
    // time in nanoseconds.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_be_bytes();
    }
    hex::encode(bytes).into()
}

/// Answer a request with `id` as its id.
pub(crate) async fn scope<F: Future>(id: Arc<str>, answer: F) -> F::Output {
    CURRENT.scope(id, answer).await
}

/// The id of the request being answered, if any.
pub(crate) fn current() -> Option<Arc<str>> {
    CURRENT.try_with(Arc::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            HEADER,
            HeaderValue::from_str(value).expect("a header value"),
        );
        h
    }

    #[test]
    fn a_usable_client_id_is_kept_and_any_other_replaced() {
        assert_eq!(&*of(&with("req-42.a/b")), "req-42.a/b");
        let fresh = of(&HeaderMap::new());
        assert_eq!(fresh.len(), 32);
        assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(fresh, of(&HeaderMap::new()), "each fresh id is new");
        for bad in ["two words", "", &"x".repeat(129)] {
            assert_eq!(of(&with(bad)).len(), 32, "`{bad}` is replaced");
        }
    }
}
