//! A UDP relay that delays every datagram: the WAN for the plane's QUIC links between nodes.
//!
//! Toxiproxy carries TCP only and this kernel has no `netem`, so `testnet/up --wan` runs this
//! relay (`hashmesh-testnet wan-relay`, one process for every plane link) in front of each
//! other pool's plane. Each client address gets its own socket towards the upstream; each
//! datagram, in either direction, is sent `latency ± jitter` ms after it arrived (so, like a real
//! path with jitter, datagrams can be reordered; QUIC copes). Nothing is dropped on purpose; a
//! datagram the kernel drops is QUIC's to resend.
//!
//! The delay is pure ([`Delay`]); the sockets are a thin tokio driver ([`serve`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::UdpSocket;

/// The largest datagram relayed (QUIC's are ≤ 1 500 bytes on loopback; this leaves room).
const DATAGRAM_BYTES_MAX: usize = 65_535;
/// A client that sent nothing for this long loses its upstream socket.
const IDLE: Duration = Duration::from_secs(120);

/// One relayed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relay {
    /// Where clients send.
    pub listen: SocketAddr,
    /// Where their datagrams go.
    pub upstream: SocketAddr,
    /// One-way delay, ms.
    pub latency_ms: u32,
    /// Spread around it, ms.
    pub jitter_ms: u32,
}

/// Each datagram's delay: `latency ± jitter`, from the testnet's seeded generator.
#[derive(Debug, Clone)]
pub struct Delay {
    latency_ms: u32,
    jitter_ms: u32,
    rng: crate::rng::Rng,
}

impl Delay {
    /// A delay of `latency_ms ± jitter_ms`, drawn from `seed` (any value).
    #[must_use]
    pub fn new(latency_ms: u32, jitter_ms: u32, seed: u64) -> Self {
        Self { latency_ms, jitter_ms, rng: crate::rng::Rng(seed) }
    }

    /// The next datagram's delay.
    pub fn draw(&mut self) -> Duration {
        let (lo, hi) = (self.latency_ms.saturating_sub(self.jitter_ms), self.latency_ms + self.jitter_ms);
        self.rng.millis(u64::from(lo), u64::from(hi))
    }
}

/// Send `data` to `to` on `socket` after `after`.
fn send_later(socket: Arc<UdpSocket>, data: Vec<u8>, to: Option<SocketAddr>, after: Duration) {
    tokio::spawn(async move {
        tokio::time::sleep(after).await;
        // A send that fails is a lost datagram, as on a real path.
        let _ = match to {
            Some(to) => socket.send_to(&data, to).await,
            None => socket.send(&data).await,
        };
    });
}

/// Relay one link until the process ends.
///
/// # Errors
/// If the listen address cannot be bound.
pub async fn serve(relay: Relay, seed: u64) -> Result<()> {
    let front = Arc::new(UdpSocket::bind(relay.listen).await.with_context(|| format!("binding {}", relay.listen))?);
    let mut delay = Delay::new(relay.latency_ms, relay.jitter_ms, seed);
    let mut clients: HashMap<SocketAddr, (Arc<UdpSocket>, tokio::time::Instant)> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
    loop {
        let (n, from) = front.recv_from(&mut buf).await?;
        let now = tokio::time::Instant::now();
        clients.retain(|_, (_, seen)| now.duration_since(*seen) < IDLE);
        let back = match clients.get_mut(&from) {
            Some((socket, seen)) => {
                *seen = now;
                Arc::clone(socket)
            }
            None => {
                let socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
                socket.connect(relay.upstream).await?;
                // Upstream → this client, delayed the same way.
                let (up, front, mut back_delay) = (Arc::clone(&socket), Arc::clone(&front), delay.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; DATAGRAM_BYTES_MAX];
                    while let Ok(n) = up.recv(&mut buf).await {
                        send_later(Arc::clone(&front), buf[..n].to_vec(), Some(from), back_delay.draw());
                    }
                });
                clients.insert(from, (Arc::clone(&socket), now));
                socket
            }
        };
        send_later(back, buf[..n].to_vec(), None, delay.draw());
    }
}

/// Relay every link in `relays` until the process ends; prints `ready` once all are bound.
///
/// # Errors
/// If a listen address cannot be bound.
pub async fn serve_all(relays: Vec<Relay>) -> Result<()> {
    let mut tasks = Vec::new();
    for (k, r) in relays.into_iter().enumerate() {
        // Bind here so `ready` means every port is bound.
        let probe = std::net::UdpSocket::bind(r.listen).with_context(|| format!("binding {}", r.listen))?;
        drop(probe);
        tasks.push(tokio::spawn(serve(r, 0x9e37_79b9_7f4a_7c15 ^ k as u64)));
    }
    println!("ready");
    for t in tasks {
        t.await.context("a relay task panicked")??;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_within_the_jitter_and_spread_over_it() {
        let mut d = Delay::new(50, 10, 7);
        let ms: Vec<u128> = (0..2_000).map(|_| d.draw().as_millis()).collect();
        assert!(ms.iter().all(|m| (40..=60).contains(m)), "{:?}", ms.iter().min());
        assert!(ms.contains(&40) && ms.contains(&60), "the whole spread is used");
        let mean = ms.iter().sum::<u128>() as f64 / ms.len() as f64;
        assert!((mean - 50.0).abs() < 1.0, "mean {mean}");
        assert_eq!(Delay::new(0, 0, 1).draw(), Duration::ZERO);
    }

    #[tokio::test]
    async fn datagrams_cross_both_ways_after_the_delay() {
        let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let listen = std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let relay = Relay { listen, upstream: upstream.local_addr().unwrap(), latency_ms: 40, jitter_ms: 0 };
        let task = tokio::spawn(serve(relay, 1));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let t = tokio::time::Instant::now();
        client.send_to(b"ping", listen).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, via) =
            tokio::time::timeout(Duration::from_secs(5), upstream.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!(&buf[..n], b"ping");
        assert!(t.elapsed() >= Duration::from_millis(40), "{:?}", t.elapsed());
        upstream.send_to(b"pong", via).await.unwrap();
        let (n, from) =
            tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf)).await.unwrap().unwrap();
        assert_eq!((&buf[..n], from), (&b"pong"[..], listen));
        assert!(t.elapsed() >= Duration::from_millis(80), "{:?}", t.elapsed());
        task.abort();
    }
}
