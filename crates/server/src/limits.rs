//! Rate limits per token: each token may make `rate_per_second` requests a second on
//! average, in bursts of up to `burst`; past that it is answered 429 with
//! `Retry-After`. A token bucket per token, kept by each server for its own requests
//! (servers sharing a store each allow the rate), and none when the rate is 0.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::Shared;
use crate::auth::Caller;
use crate::problem::Problem;

/// Each token's bucket: the requests it may still make, as of when.
#[derive(Debug, Default)]
pub struct Buckets {
    buckets: Mutex<HashMap<i64, (f64, Instant)>>,
}

impl Buckets {
    /// Take one request from `token`'s bucket, refilled at `rate` a second up to
    /// `burst`; if it is empty, the whole seconds until it holds one again.
    pub fn take(&self, token: i64, rate: f64, burst: f64, now: Instant) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let (left, since) = buckets.entry(token).or_insert((burst, now));
        let refilled =
            (*left + now.saturating_duration_since(*since).as_secs_f64() * rate).min(burst);
        *since = now;
        if refilled >= 1.0 {
            *left = refilled - 1.0;
            Ok(())
        } else {
            *left = refilled;
            Err(((1.0 - refilled) / rate).ceil().max(1.0) as u64)
        }
    }
}

/// Refuse a request whose token has used up its rate (after `authenticate`).
pub async fn limit(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let limits = &state.config.limits;
    if limits.rate_per_second <= 0.0 {
        return next.run(req).await;
    }
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let burst = limits.burst.max(1) as f64;
    match state
        .buckets
        .take(caller.token, limits.rate_per_second, burst, Instant::now())
    {
        Ok(()) => next.run(req).await,
        Err(wait) => {
            let mut response = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "token `{}` made more than {} requests a second (bursts of {}); retry in {wait} s",
                    caller.name, limits.rate_per_second, limits.burst
                ),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(wait));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let buckets = Buckets::default();
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(buckets.take(1, 2.0, 3.0, t0), Ok(()));
        }
        assert_eq!(
            buckets.take(1, 2.0, 3.0, t0),
            Err(1),
            "the burst is used up"
        );
        assert_eq!(
            buckets.take(2, 2.0, 3.0, t0),
            Ok(()),
            "tokens have their own"
        );
        let later = t0 + Duration::from_millis(500);
        assert_eq!(
            buckets.take(1, 2.0, 3.0, later),
            Ok(()),
            "refilled at 2 a second"
        );
        assert_eq!(buckets.take(1, 2.0, 3.0, later), Err(1));
        let idle = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(
                buckets.take(1, 2.0, 3.0, idle),
                Ok(()),
                "never past the burst"
            );
        }
        assert_eq!(buckets.take(1, 2.0, 3.0, idle), Err(1));
        assert_eq!(
            buckets
                .take(3, 0.1, 1.0, t0)
                .and(buckets.take(3, 0.1, 1.0, t0)),
            Err(10),
            "a slow rate asks for a longer wait"
        );
    }
}
