//! The one small HTTP/1.1 server the processes share (hyper): the node's and the agent's
//! `/metrics`, the testnet endpoints' `/status` and `/chaos`. A handler gets the method, path
//! and body (at most [`HTTP_BODY_BYTES_MAX`]) and returns a complete response.

use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};

/// The OpenMetrics text content type.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Largest request body read, bytes.
pub const HTTP_BODY_BYTES_MAX: usize = 4096;
/// Most time a client may take to send its request head.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// A complete response with this status, content type and body.
#[must_use]
pub fn reply(status: StatusCode, kind: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", kind)
        .body(Full::new(Bytes::from(body)))
        .expect("a static response builds")
}

/// Serve `handler` on `listener` until the runtime stops; one task per connection.
pub async fn serve<F, Fut>(listener: tokio::net::TcpListener, handler: F)
where
    F: Fn(Method, String, Bytes) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "http: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handler = handler.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = req.into_parts();
                    let body = match Limited::new(body, HTTP_BODY_BYTES_MAX).collect().await {
                        Ok(b) => b.to_bytes(),
                        Err(_) => {
                            let msg = format!("the body must be at most {HTTP_BODY_BYTES_MAX} bytes\n");
                            return Ok::<_, Infallible>(reply(StatusCode::PAYLOAD_TOO_LARGE, "text/plain", msg));
                        }
                    };
                    Ok(handler(parts.method, parts.uri.path().to_owned(), body).await)
                }
            });
            let conn = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(peer = %peer, error = %e, "http connection ended");
            }
        });
    }
}
