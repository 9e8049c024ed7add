//! One redhac member per process with a small HTTP API, for tests, containers
//! and Kubernetes.
//!
//! Configured only by the redhac environment variables (`HA_MODE`, `HA_HOSTS`,
//! `CACHE_*`, see the README) plus `NODE_HTTP_ADDR` (default `0.0.0.0:8080`).
//! One cache, `default`, holds `String` values.
//!
//! | request | answer |
//! |---|---|
//! | `PUT /v1/cache/default/{key}?ack=none\|leader\|quorum\|all&ttl_ms=N`, body = value | 200; 503 without quorum; 504 on timeout |
//! | `GET /v1/cache/default/{key}[?remote=true]` | 200 with the value, 404 on a miss |
//! | `DELETE /v1/cache/default/{key}[?ack=..]`, `DELETE /v1/cache/default` | 200 |
//! | `GET /v1/status` | the node's status as JSON |
//! | `GET /health/ready` | 200 while the member serves reads, else 503 |
//! | `GET /health/live` | 200 |
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
use serde::Deserialize;

#[derive(Clone)]
struct App {
    redhac: Redhac,
    cache: Cache<String>,
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
    app.cache.put_with(key, body, write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn read(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let hit = if q.remote.unwrap_or(false) {
        app.cache.get_or_fetch(&key).await?
    } else {
        app.cache.get(&key)
    };
    Ok(match hit {
        Some(v) => (StatusCode::OK, v.as_str().to_owned()).into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    })
}

async fn delete(
    State(app): State<App>,
    Path(key): Path<String>,
    Query(q): Query<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    app.cache.delete_with(&key, write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn clear(
    State(app): State<App>,
    Query(q): Query<WriteQuery>,
) -> Result<StatusCode, ApiError> {
    app.cache.clear_with(write_options(&q)?).await?;
    Ok(StatusCode::OK)
}

async fn status(State(app): State<App>) -> Json<redhac::Status> {
    Json(app.redhac.status())
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
    let metrics = PrometheusBuilder::new().install_recorder()?;
    let http: SocketAddr = std::env::var("NODE_HTTP_ADDR")
        .unwrap_or_else(|_| "0.0.0.0:8080".into())
        .parse()
        .map_err(|e| format!("NODE_HTTP_ADDR is not an address like 0.0.0.0:8080: {e}"))?;

    let redhac = Redhac::builder()
        .config(Config::from_env()?)
        .cache::<String>("default", CacheOptions::default())
        .start()
        .await?;
    let cache = redhac.cache::<String>("default")?;
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
        .route("/health/live", get(|| async { StatusCode::OK }))
        .route("/metrics", get(render_metrics))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(app);

    let listener = tokio::net::TcpListener::bind(http).await?;
    tracing::info!(%http, "HTTP API listening");
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            terminated().await;
            tracing::info!("shutting down");
        })
        .await?;
    redhac.shutdown().await?;
    Ok(())
}
