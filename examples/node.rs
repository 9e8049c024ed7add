//! One redhac member per process with a small HTTP API, for tests, containers
//! and Kubernetes.
//!
//! Configured only by the redhac environment variables (`HA_MODE`, `HA_HOSTS`,
//! `CACHE_*`, see the README) plus `NODE_HTTP_ADDR` (default `0.0.0.0:8080`)
//! and `NODE_CACHE_MAX_BYTES` (default 64 MiB). One cache, `default`, holds the
//! request bodies, bounded by that many bytes of keys and encoded values: size
//! the container's memory limit from it (the k8s manifests allow about 3x plus
//! 64 MiB).
//!
//! Two variables play another release of the application, for the multi-host
//! suite's rolling upgrade (never set them in production):
//! - `NODE_VALUE_VERSION=2` stores the bodies as release 2 of the value type
//!   (a field added in front, schema version 2) instead of release 1 (a
//!   `String`, schema version 1);
//! - `NODE_PROTOCOL_VERSIONS=LOW-HIGH` advertises that range of wire protocol
//!   versions instead of this build's.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /v1/cache/default/{key}?ack=none\|leader\|quorum\|all&ttl_ms=N`, body = value | 200; 503 without quorum; 504 on timeout |
//! | `GET /v1/cache/default/{key}[?remote=true]` | 200 with the value, 404 on a miss |
//! | `DELETE /v1/cache/default/{key}[?ack=..]`, `DELETE /v1/cache/default` | 200 |
//! | `GET /v1/status` | the node's status as JSON |
//! | `GET /health/ready` | 200 while the member serves reads, else 503 |
//! | `GET /health/live` | 200 while the node runs, 503 once its runtime died (restart it) |
//! | `GET /metrics` | Prometheus text format |
//!
//! Run: `cargo run --example node` (standalone), or see the README for three
//! members in three terminals.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use redhac::{AckLevel, Cache, CacheOptions, Config, Error, Redhac, WriteOptions};
use serde::{Deserialize, Serialize};

/// Release 2 of the stored value: a field added in front of the body, as an
/// application's type changes between releases. Release 1's reading of these
/// bytes as a `String` would be a body nobody wrote; the schema versions keep
/// the releases from decoding each other's values.
#[derive(Debug, Serialize, Deserialize)]
struct Revised {
    revision: u32,
    body: String,
}

/// The `default` cache, in the release this process plays.
#[derive(Clone)]
enum Bodies {
    V1(Cache<String>),
    V2(Cache<Revised>),
}

impl Bodies {
    const NAME: &str = "default";

    fn register(b: redhac::Builder, version: u32, max_bytes: u64) -> redhac::Builder {
        let options = CacheOptions::default()
            .schema_version(version)
            .max_bytes(max_bytes);
        match version {
            2 => b.cache::<Revised>(Self::NAME, options),
            _ => b.cache::<String>(Self::NAME, options),
        }
    }

    fn of(redhac: &Redhac, version: u32) -> Result<Self, Error> {
        Ok(match version {
            2 => Self::V2(redhac.cache(Self::NAME)?),
            _ => Self::V1(redhac.cache(Self::NAME)?),
        })
    }

    async fn put(&self, key: String, body: String, options: WriteOptions) -> Result<(), Error> {
        match self {
            Self::V1(c) => c.put_with(key, body, options).await,
            Self::V2(c) => {
                let value = Revised { revision: 2, body };
                c.put_with(key, value, options).await
            }
        }
    }

    async fn get(&self, key: &str, remote: bool) -> Result<Option<String>, Error> {
        Ok(match (self, remote) {
            (Self::V1(c), false) => c.get(key).map(|v| v.as_str().to_owned()),
            (Self::V1(c), true) => c.get_or_fetch(key).await?.map(|v| v.as_str().to_owned()),
            (Self::V2(c), false) => c.get(key).map(|v| v.body.clone()),
            (Self::V2(c), true) => c.get_or_fetch(key).await?.map(|v| v.body.clone()),
        })
    }

    async fn delete(&self, key: &str, options: WriteOptions) -> Result<(), Error> {
        match self {
            Self::V1(c) => c.delete_with(key, options).await,
            Self::V2(c) => c.delete_with(key, options).await,
        }
    }

    async fn clear(&self, options: WriteOptions) -> Result<(), Error> {
        match self {
            Self::V1(c) => c.clear_with(options).await,
            Self::V2(c) => c.clear_with(options).await,
        }
    }
}

#[derive(Clone)]
struct App {
    redhac: Redhac,
    cache: Bodies,
    metrics: PrometheusHandle,
}

#[derive(Debug, Deserialize)]
struct WriteQuery {
    ack: Option<String>,
    ttl_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct ReadQuery {
    remote: Option<bool>,
}

/// An error as JSON with the status code that fits it.
struct ApiError(StatusCode, String);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NoQuorum | Error::ShutDown => StatusCode::SERVICE_UNAVAILABLE,
            Error::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            Error::InvalidKey { .. } | Error::Store(_) => StatusCode::BAD_REQUEST,
            Error::ValueTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.1, "status": self.0.as_u16() });
        (self.0, Json(body)).into_response()
    }
}

fn write_options(q: &WriteQuery) -> Result<WriteOptions, ApiError> {
    let ack = match q.ack.as_deref() {
        None | Some("quorum") => AckLevel::Quorum,
        Some("none") => AckLevel::None,
        Some("leader") => AckLevel::Leader,
        Some("all") => AckLevel::All,
        Some(other) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                format!("ack={other:?}: use none, leader, quorum or all"),
            ));
        }
    };
    let mut options = WriteOptions::default().ack(ack);
    match q.ttl_ms {
        Some(0) => {
            return Err(ApiError(
                StatusCode::BAD_REQUEST,
                "ttl_ms=0: use at least 1".into(),
            ));
        }
        Some(ms) => options = options.ttl(Duration::from_millis(ms)),
        None => {}
    }
    Ok(options)
}

async fn put(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<WriteQuery>,
    body: String,
) -> Result<StatusCode, ApiError> {
    app.cache.put(key, body, write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn read(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let hit = app.cache.get(&key, q.remote.unwrap_or(false)).await?;
    Ok(match hit {
        Some(v) => (StatusCode::OK, v).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn delete(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    app.cache.delete(&key, write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn clear(
    State(app): State<App>,
    Query(q): Query<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    app.cache.clear(write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn status(State(app): State<App>) -> Json<redhac::Status> {
    Json(app.redhac.status())
}

async fn live(State(app): State<App>) -> StatusCode {
    if app.redhac.is_running() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn ready(State(app): State<App>) -> StatusCode {
    if app.redhac.status().serving {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    }
}

async fn render_metrics(State(app): State<App>) -> String {
    app.metrics.render()
}

/// SIGINT (Ctrl-C) or SIGTERM (Kubernetes, docker stop).
async fn terminated() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the node");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let metrics = PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(redhac::metrics::WRITE_SECONDS.into()),
            redhac::metrics::WRITE_SECONDS_BUCKETS,
        )?
        .install_recorder()?;
    let http: SocketAddr = std::env::var("NODE_HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".into())
        .parse()
        .map_err(|e| format!("NODE_HTTP_ADDR is not an address like 0.0.0.0:8080: {e}"))?;

    let version: u32 = match std::env::var("NODE_VALUE_VERSION") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|v| matches!(v, 1 | 2))
            .ok_or_else(|| format!("NODE_VALUE_VERSION is {v:?}; use 1 or 2"))?,
        Err(_) => 1,
    };
    let max_bytes: u64 = match std::env::var("NODE_CACHE_MAX_BYTES") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("NODE_CACHE_MAX_BYTES is {v:?}; use a number of bytes"))?,
        Err(_) => 64 << 20,
    };
    let config = Config::from_env()?;
    let mut builder = Bodies::register(Redhac::builder().config(config), version, max_bytes);
    if let Ok(range) = std::env::var("NODE_PROTOCOL_VERSIONS") {
        let parsed = range
            .split_once('-')
            .and_then(|(lo, hi)| Some((lo.parse::<u32>().ok()?, hi.parse::<u32>().ok()?)))
            .filter(|(lo, hi)| lo <= hi);
        let (lo, hi) = parsed.ok_or_else(|| {
            format!("NODE_PROTOCOL_VERSIONS is {range:?}; use LOW-HIGH, e.g. 2-3")
        })?;
        tracing::warn!(
            lo,
            hi,
            "advertising protocol versions {lo}..={hi} (a test setting)"
        );
        builder = builder.protocol_versions(lo..=hi);
    }
    let redhac = builder.start().await?;
    let cache = Bodies::of(&redhac, version)?;
    // Bodies up to the value limit reach redhac, which answers 413 above it
    // (the body, postcard-encoded, is a few bytes longer than itself).
    let body_limit = redhac.config().max_value_size;
    let app = App {
        redhac: redhac.clone(),
        cache,
        metrics,
    };
    let router = Router::new()
        .route("/v1/cache/default/{key}", get(read).put(put).delete(delete))
        .route("/v1/cache/default", axum::routing::delete(clear))
        .route("/v1/status", get(status))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/metrics", get(render_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(http).await?;
    tracing::info!(%http, "HTTP API listening");
    let stepping_down = redhac.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            terminated().await;
            tracing::info!("shutting down");
            // Leadership moves while requests still drain: a write in
            // between waits for the next leader instead of failing.
            if let Err(e) = stepping_down.step_down().await {
                tracing::warn!(error = %e, "leadership not handed over before the drain");
            }
        })
        .await?;
    redhac.shutdown().await?;
    Ok(())
}
