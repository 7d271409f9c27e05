//! Cohort's HTTP API (`cohort serve`): REST and JSON over the membership engine for
//! the platforms that integrate with it.
//!
//! Everything under `/v1` needs a bearer token ([`auth`]); errors are
//! `application/problem+json` ([`problem`]); POSTs honour `Idempotency-Key`
//! ([`idempotency`]); change events go out to webhooks ([`webhooks`]) and to a change
//! feed. The OpenAPI document is generated from the handlers' annotations and served
//! at `/openapi.json`. The engine is synchronous; handlers call it on tokio's blocking
//! pool so that a long run never stalls the event loop.

mod api;
pub mod auth;
mod config;
mod console;
mod dry_runs;
mod etag;
mod idempotency;
mod limits;
mod metrics;
mod problem;
mod request_id;
pub mod staff;
mod targets;
pub mod webhooks;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use cohort_engine::Engine;
use cohort_model::Timestamp;
use cohort_store::{Access, RunStatus, Trigger};
use utoipa::openapi::OpenApi;

pub use config::{Config, ConfigError, LimitsConfig, LogFormat, WebhookConfig};
pub use problem::Problem;

use crate::auth::Caller;
use crate::metrics::Metrics;

/// What every handler shares.
pub struct AppState {
    engine: Arc<Engine>,
    /// Tokens, webhooks and idempotency: the store's part that is the server's own.
    access: Arc<dyn Access>,
    config: Config,
    metrics: Metrics,
    /// Idempotency keys whose first request is still being handled, by token id.
    inflight: Mutex<HashSet<(i64, String)>>,
    /// What each token may still request (see `limits.rs`).
    buckets: limits::Buckets,
    /// False once shutdown has begun: `/readyz` tells load balancers to move on.
    ready: AtomicBool,
    /// This server among those sharing the store, as the holder of webhook leases.
    holder: String,
    /// The changes of dry runs that did not wait, for paging.
    dry_runs: dry_runs::DryRuns,
}

type Shared = Arc<AppState>;

fn now() -> Timestamp {
    chrono::Utc::now().timestamp()
}

/// The router and the OpenAPI document it was built with.
pub fn app(
    engine: Arc<Engine>,
    access: Arc<dyn Access>,
    config: Config,
) -> (Router, OpenApi, Shared) {
    let state = Arc::new(AppState {
        engine,
        access,
        config,
        metrics: Metrics::default(),
        inflight: Mutex::new(HashSet::new()),
        buckets: limits::Buckets::default(),
        dry_runs: dry_runs::DryRuns::default(),
        ready: AtomicBool::new(true),
        holder: holder(),
    });
    let (router, doc) = api::router(state.clone());
    (router, doc, state)
}

/// A name for this server that no other has: its host, process and start.
fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{host}:{}:{nanos:x}", std::process::id())
}

/// The OpenAPI document alone, for `cohort openapi`.
pub fn openapi() -> OpenApi {
    api::document()
}

/// Count and log every request, by the route it matched.
async fn observe(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = request_id::of(req.headers());
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let mut response = request_id::scope(id.clone(), next.run(req)).await;
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert(request_id::HEADER, value);
    }
    let took = started.elapsed();
    let status = response.status().as_u16();
    state.metrics.request(&method, &route, status, took);
    let caller = response
        .extensions()
        .get::<Caller>()
        .map_or("-", |c| c.name.as_str());
    tracing::info!(
        %method,
        %path,
        %route,
        status,
        micros = took.as_micros() as u64,
        caller,
        request_id = %id,
        "request"
    );
    response
}

/// Run the server until Ctrl-C or SIGTERM: the API, the webhook workers, and the
/// clock that runs due schedules and announces windows that opened or closed.
/// `listening` is told the bound address (useful with port 0).
pub async fn serve(
    engine: Arc<Engine>,
    access: Arc<dyn Access>,
    config: Config,
    listening: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener.local_addr()?;
    let (router, _, state) = app(engine, access, config);
    let workers = tokio::spawn(webhooks::supervise(state.clone()));
    let clock = tokio::spawn(tick(state.clone()));
    listening(addr);
    tracing::info!(%addr, "listening");
    let shutdown_state = state.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown().await;
            shutdown_state.ready.store(false, Ordering::SeqCst);
            tracing::info!("shutting down");
        })
        .await?;
    workers.abort();
    clock.abort();
    // Another server sharing the store may deliver at once, not a lease later.
    let released = tokio::task::spawn_blocking(move || webhooks::release(&state)).await;
    if let Ok(Err(e)) = released {
        tracing::warn!(error = %e, "cannot give up the webhooks' leases");
    }
    Ok(())
}

async fn shutdown() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Run due schedules and announce windows that opened or closed, every tick.
async fn tick(state: Shared) {
    let every = Duration::from_secs(state.config.tick_seconds.max(1));
    loop {
        let s = state.clone();
        let done = tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let at = now();
            s.access
                .forget_responses(at - cohort_store::IDEMPOTENCY_KEY_LIFETIME)?;
            for outcome in s.engine.tick(at)?.runs {
                match outcome {
                    Ok(run) => s.metrics.run(Trigger::Periodic, run.status),
                    Err(e) => {
                        tracing::warn!(error = %e, "a scheduled run failed");
                        s.metrics.run(Trigger::Periodic, RunStatus::Failed);
                    }
                }
            }
            Ok(())
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the clock's work failed; retrying next tick"),
            Err(e) => tracing::warn!(error = %e, "the clock's work failed; retrying next tick"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Install the log subscriber: text or JSON lines on stderr, filtered by `RUST_LOG`
/// (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

pub(crate) fn layered(router: Router<Shared>, state: Shared) -> Router {
    router
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}
