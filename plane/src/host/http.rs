//! The one small HTTP/1.1 server the processes share (hyper): the node's and the agent's
//! `/metrics`, the testnet endpoints' `/status` and `/chaos`. A handler gets the method, path
//! and body (at most [`HTTP_BODY_BYTES_MAX`]) and returns a complete response. And the one
//! small blocking client ([`request`]): the node scraping its endpoints' host metrics, the
//! testnet scripts talking to endpoints.

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

/// Largest response body [`request`] reads, bytes.
pub const HTTP_RESPONSE_BYTES_MAX: u64 = 4 * 1024 * 1024;

/// `http://HOST:PORT/PATH` split into the address and the path (`/` when absent).
///
/// # Errors
/// If it is not a plain `http://` URL.
pub fn split_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("{url:?} is not an http:// URL (e.g. http://10.0.0.5:9100/metrics)"))?;
    let (addr, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    if addr.is_empty() || !addr.contains(':') {
        anyhow::bail!("{url:?} has no HOST:PORT");
    }
    Ok((addr.to_owned(), path))
}

/// One blocking HTTP/1.0 request to `addr` (`HOST:PORT`) with a connect and read `timeout` (1.0,
/// so no server answers in chunks); the body of a 2xx answer (at most
/// [`HTTP_RESPONSE_BYTES_MAX`]).
///
/// # Errors
/// If the server does not answer in time, or answers anything but 2xx.
pub fn request(addr: &str, method: &str, path: &str, body: &str, timeout: Duration) -> anyhow::Result<String> {
    use std::io::{Read, Write};
    use std::net::ToSocketAddrs;
    let to = addr
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("{addr}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("{addr} resolves to no address"))?;
    let mut s = std::net::TcpStream::connect_timeout(&to, timeout)
        .map_err(|e| anyhow::anyhow!("{addr} does not answer: {e}"))?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.take(HTTP_RESPONSE_BYTES_MAX + 64 * 1024).read_to_end(&mut raw)?;
    let out = String::from_utf8_lossy(&raw);
    let (head, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    // Any 2xx: a created resource (201) or an empty answer (204) is a success too.
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if !(head.starts_with("HTTP/1.") && status.len() == 3 && status.starts_with('2')) {
        anyhow::bail!("{method} {path} at {addr}: {}", head.lines().next().unwrap_or("no answer"));
    }
    Ok(rest.to_owned())
}
