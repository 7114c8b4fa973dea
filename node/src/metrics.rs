//! `/metrics` over HTTP: the node's Prometheus registry (`prometheus-client`, OpenMetrics text)
//! served by hyper on the node's tokio runtime.

use std::sync::Arc;

use anyhow::{Context, Result};
use hashmesh_plane::host::http::{self, reply};
use hyper::{Method, StatusCode};
use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// The OpenMetrics text content type.
pub const CONTENT_TYPE: &str = http::OPENMETRICS;

fn respond(
    method: &Method,
    path: &str,
    registry: &Registry,
) -> hyper::Response<http_body_util::Full<hyper::body::Bytes>> {
    if method != Method::GET || path != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "try GET /metrics\n".into());
    }
    let mut text = String::new();
    match encode(&mut text, registry) {
        Ok(()) => reply(StatusCode::OK, CONTENT_TYPE, text),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, "text/plain", format!("encoding metrics: {e}\n")),
    }
}

/// Bind `addr` and serve `registry` on `/metrics` from tasks on `rt`.
///
/// # Errors
/// If the address cannot be bound.
pub fn serve(
    rt: &tokio::runtime::Handle,
    addr: std::net::SocketAddr,
    registry: Arc<Registry>,
) -> Result<std::net::SocketAddr> {
    let std_listener = std::net::TcpListener::bind(addr)
        .with_context(|| format!("binding metrics on {addr}; is another node using it? (metrics_listen)"))?;
    std_listener.set_nonblocking(true)?;
    let local = std_listener.local_addr()?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    rt.spawn(http::serve(listener, move |method, path, _body| {
        let registry = Arc::clone(&registry);
        async move { respond(&method, &path, &registry) }
    }));
    Ok(local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_the_registry_and_nothing_else() {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let mut r = Registry::default();
        let c = Counter::<u64>::default();
        r.register("hashmesh_test_things", "Things", c.clone());
        c.inc_by(3);
        let addr = serve(rt.handle(), "127.0.0.1:0".parse().unwrap(), Arc::new(r)).unwrap();
        let ok = get(addr, "/metrics");
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(ok.contains("hashmesh_test_things_total 3"), "{ok}");
        assert!(ok.contains("# EOF"), "{ok}");
        assert!(get(addr, "/other").starts_with("HTTP/1.1 404"));
    }
}
