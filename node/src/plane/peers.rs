//! The node-to-node channel: when a cross-pool route becomes active, the lending pool's node
//! (owner of a target endpoint) sends the borrowing pool's node (owner of the group) worker
//! credentials for its endpoints; the borrower checks them against committed state and hands
//! them to its plane, which forwards them inside its agents' instructions. Peers are pinned by
//! their committed pool keys. Credentials live only in node-local databases, plane messages and
//! agents' state — never on chain.
//!
//! Ahead of any loan, the lender also sends every other pool a *standby credential* for each of
//! its open offers (worker `<borrower id 12 hex>.standby`); the borrower keeps them and sends its
//! agents the offered endpoints, cheapest first, as their fallback: when every endpoint of a
//! group's route and every own standby is down, miners move there at once, before the borrow
//! commits. Work under a standby credential is measured but settled by no loan (the agents mark
//! it); the loan's own credentials replace it.
//!
//! Lender-side keys in the plane database: `c:` borrower ‖ directive ‖ endpoint → (group,
//! credential) still to deliver; `s:` endpoint ‖ 0 ‖ group ‖ 0 ‖ opened height → the loan's
//! worker password. Each loan (a new opening height) gets a new worker name
//! (`hashmesh_scheduler::loans::loan_worker`) and password: credentials rotate when a loan ends.
//! `t:` endpoint ‖ 0 ‖ pool → the standby password of an open offer for that pool (forgotten
//! when the offer closes: a new offer, a new password); `u:` pool ‖ endpoint → a standby
//! credential still to deliver. Borrower side: `f:` endpoint → the lender's standby credential.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hashmesh_abci::core::Assignment;
use hashmesh_plane::transport::endpoint::connect;
use hashmesh_plane::transport::frame::{read_frame, write_frame};
use hashmesh_plane::transport::identity::TlsIdentity;
use hashmesh_plane::transport::tls::{Role, Trust, ALPN};
use hashmesh_protocol::plane::{PlaneMsg, WorkerCredential, FALLBACK_ENDPOINTS_MAX, PLANE_MSG_BYTES_MAX};
use hashmesh_protocol::{codec, DirectiveId, EndpointId, GroupId, PoolId};
use tracing::{info, warn};

use hashmesh_scheduler::loans::loan_worker;

use super::store::{key, PlaneStore};

/// What the plane may read of committed state.
pub trait ChainView: Send + Sync {
    /// Every pool's key.
    fn pools(&self) -> Vec<PoolId>;
    /// Owner of a group.
    fn group_owner(&self, g: &GroupId) -> Option<PoolId>;
    /// Owner of an endpoint.
    fn endpoint_owner(&self, e: &EndpointId) -> Option<PoolId>;
    /// A group's current assignment.
    fn assignment(&self, g: &GroupId) -> Option<Assignment>;
    /// Whether an endpoint is drained.
    fn drained(&self, e: &EndpointId) -> bool;
    /// The height the open loan of `e` to `g` opened at (a new loan: new credentials).
    fn loan_opened(&self, g: &GroupId, e: &EndpointId) -> Option<u64>;
    /// Every open offer on an endpoint that is not drained.
    fn offers(&self) -> Vec<OpenOffer>;
}

/// An open offer in committed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenOffer {
    /// The offered endpoint.
    pub endpoint: EndpointId,
    /// Its owner (the lender).
    pub owner: PoolId,
    /// Fee, basis points of the lent work.
    pub fee_bp: u16,
}

/// Settings of the node-to-node channel.
pub struct PeerConfig {
    /// This pool.
    pub me: PoolId,
    /// Other pools' plane addresses.
    pub addrs: BTreeMap<PoolId, SocketAddr>,
    /// Committed state.
    pub chain: Arc<dyn ChainView>,
    /// This node's TLS identity (for outgoing connections).
    pub identity: TlsIdentity,
}

/// How long a borrower waits for its own commit of a route a lender sent credentials for.
const COMMIT_WAIT: Duration = Duration::from_millis(1_500);

/// A credential a lender still has to deliver: the route, the borrower's group, the credential.
pub type CredentialToSend = (DirectiveId, GroupId, WorkerCredential);

/// A credential a lending pool's node sent, checked against committed state, for the plane to
/// forward to the group's agents; `stored` answers once it is durable.
pub struct ReceivedCredential {
    /// The route; `None` for an offer's standby credential (for every agent's fallback list).
    pub directive: Option<DirectiveId>,
    /// The credential.
    pub credential: WorkerCredential,
    /// Answered when the plane has kept it.
    pub stored: tokio::sync::oneshot::Sender<()>,
}

/// Lender side: the worker password of the loan of `endpoint` to `group` opened at `opened`
/// (created on first use). Each loan has its own, and creating it forgets the pair's former
/// loans' passwords: credentials rotate when a loan ends.
fn loan_secret(store: &PlaneStore, endpoint: &EndpointId, group: &GroupId, opened: u64) -> Result<String> {
    let pair = key(b"s:", &[endpoint.as_str().as_bytes(), &[0], group.as_str().as_bytes(), &[0]]);
    let k = key(&pair, &[&opened.to_be_bytes()]);
    if let Some(v) = store.db().get(&k)? {
        return Ok(String::from_utf8_lossy(&v).into_owned());
    }
    for old in store.db().scan_prefix(&pair).keys() {
        store.db().remove(old?)?;
    }
    let secret = hex::encode(&hashmesh_plane::host::keyfile::random_seed()[..16]);
    store.db().insert(k, secret.as_bytes())?;
    Ok(secret)
}

/// Lender side: queue credentials for our endpoints in `a` if its group belongs to another pool.
///
/// # Errors
/// On storage errors.
pub(crate) fn queue_for(store: &PlaneStore, cfg: &PeerConfig, a: &Assignment) -> Result<bool> {
    let Some(owner) = cfg.chain.group_owner(&a.group) else { return Ok(false) };
    if owner == cfg.me {
        return Ok(false);
    }
    let mut queued = false;
    for t in &a.targets {
        if cfg.chain.endpoint_owner(&t.endpoint) == Some(cfg.me) {
            let Some(opened) = cfg.chain.loan_opened(&a.group, &t.endpoint) else { continue };
            let c = WorkerCredential {
                endpoint: t.endpoint.clone(),
                user: loan_worker(&owner, &a.group, opened),
                password: loan_secret(store, &t.endpoint, &a.group, opened)?,
            };
            let k = key(b"c:", &[owner.as_bytes(), a.directive.as_bytes(), c.endpoint.as_str().as_bytes()]);
            store.db().insert(k, codec::encode(&(a.group.clone(), c)))?;
            queued = true;
        }
    }
    if queued {
        store.db().flush()?;
    }
    Ok(queued)
}

/// Lender side: give every other pool we can reach the standby credential of each of our open
/// offers (queued until acknowledged), and forget those of endpoints no longer offered, so a new
/// offer gets a new password. Returns whether any was queued.
///
/// # Errors
/// On storage errors.
pub(crate) fn queue_standby(store: &PlaneStore, cfg: &PeerConfig) -> Result<bool> {
    let offered: Vec<EndpointId> =
        cfg.chain.offers().into_iter().filter(|o| o.owner == cfg.me).map(|o| o.endpoint).collect();
    let mut touched = false;
    for r in store.db().scan_prefix(b"t:") {
        let (k, _) = r?;
        let rest = k.get(2..).context("short key")?;
        let nul = rest.iter().position(|b| *b == 0).context("standby key without a separator")?;
        let (endpoint, pool) = (&rest[..nul], &rest[nul + 1..]);
        if !offered.iter().any(|e| e.as_str().as_bytes() == endpoint) {
            store.db().remove(&k)?;
            store.db().remove(key(b"u:", &[pool, endpoint]))?;
            touched = true;
        }
    }
    let mut queued = false;
    for e in &offered {
        for pool in cfg.addrs.keys().filter(|p| **p != cfg.me) {
            let k = key(b"t:", &[e.as_str().as_bytes(), &[0], pool.as_bytes()]);
            if store.db().get(&k)?.is_some() {
                continue;
            }
            let secret = hex::encode(&hashmesh_plane::host::keyfile::random_seed()[..16]);
            store.db().insert(k, secret.as_bytes())?;
            let c = WorkerCredential { endpoint: e.clone(), user: standby_worker(pool), password: secret };
            store.db().insert(key(b"u:", &[pool.as_bytes(), e.as_str().as_bytes()]), codec::encode(&c))?;
            queued = true;
        }
    }
    if queued || touched {
        store.db().flush()?;
    }
    Ok(queued)
}

/// Lender side: standby credentials still to deliver, per pool.
///
/// # Errors
/// On storage errors.
pub fn standby_to_send(store: &PlaneStore) -> Result<BTreeMap<PoolId, Vec<WorkerCredential>>> {
    let mut out: BTreeMap<PoolId, Vec<_>> = BTreeMap::new();
    for r in store.db().scan_prefix(b"u:") {
        let (k, v) = r?;
        let pool = PoolId(k.get(2..34).context("short key")?.try_into().expect("32 bytes"));
        out.entry(pool).or_default().push(codec::decode_trusted(&v).context("stored standby credential")?);
    }
    Ok(out)
}

/// Borrower side: keep a lender's standby credential (the latest for its endpoint).
///
/// # Errors
/// On storage errors.
pub(crate) fn keep_standby(store: &PlaneStore, c: &WorkerCredential) -> Result<()> {
    store.db().insert(key(b"f:", &[c.endpoint.as_str().as_bytes()]), codec::encode(c))?;
    store.db().flush()?;
    Ok(())
}

/// Borrower side: the agents' fallback list — the kept standby credentials of other pools'
/// open offers, cheapest first (then by name), at most [`FALLBACK_ENDPOINTS_MAX`].
///
/// # Errors
/// On storage errors.
pub(crate) fn fallback_list(store: &PlaneStore, me: &PoolId, offers: &[OpenOffer]) -> Result<Vec<WorkerCredential>> {
    let mut list: Vec<(u16, WorkerCredential)> = Vec::new();
    for r in store.db().scan_prefix(b"f:") {
        let (_, v) = r?;
        let c: WorkerCredential = codec::decode_trusted(&v).context("kept standby credential")?;
        if let Some(o) = offers.iter().find(|o| o.endpoint == c.endpoint && o.owner != *me) {
            list.push((o.fee_bp, c));
        }
    }
    list.sort_by(|a, b| (a.0, &a.1.endpoint).cmp(&(b.0, &b.1.endpoint)));
    Ok(list.into_iter().take(FALLBACK_ENDPOINTS_MAX).map(|(_, c)| c).collect())
}

/// Lender side: credentials still to deliver, per borrowing pool.
///
/// # Errors
/// On storage errors.
pub fn credentials_to_send(store: &PlaneStore) -> Result<BTreeMap<PoolId, Vec<CredentialToSend>>> {
    let mut out: BTreeMap<PoolId, Vec<_>> = BTreeMap::new();
    for r in store.db().scan_prefix(b"c:") {
        let (k, v) = r?;
        let pool = PoolId(k.get(2..34).context("short key")?.try_into().expect("32 bytes"));
        let directive = DirectiveId(k.get(34..66).context("short key")?.try_into().expect("32 bytes"));
        let (group, c): (GroupId, WorkerCredential) = codec::decode_trusted(&v).context("stored credential")?;
        out.entry(pool).or_default().push((directive, group, c));
    }
    Ok(out)
}

/// Lender side: deliver queued credentials until each borrower has acknowledged them; `wake`
/// is notified when new ones are queued.
pub(crate) async fn sender_loop(store: PlaneStore, cfg: Arc<PeerConfig>, wake: Arc<tokio::sync::Notify>) {
    loop {
        match credentials_to_send(&store).and_then(|c| Ok((c, standby_to_send(&store)?))) {
            Ok((mut loans, mut standby)) => {
                let pools: std::collections::BTreeSet<PoolId> = loans.keys().chain(standby.keys()).copied().collect();
                for pool in pools {
                    let items = loans.remove(&pool).unwrap_or_default();
                    let spare = standby.remove(&pool).unwrap_or_default();
                    let Some(addr) = cfg.addrs.get(&pool) else {
                        warn!(pool = %pool, "no [plane.peers] address for a borrowing pool; credentials wait");
                        continue;
                    };
                    if let Err(e) = deliver(&store, &cfg, pool, *addr, &items, &spare).await {
                        warn!(pool = %pool, error = %format!("{e:#}"), "delivering credentials; will retry");
                    }
                }
            }
            Err(e) => warn!(error = %e, "reading queued credentials"),
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), wake.notified()).await;
    }
}

async fn deliver(
    store: &PlaneStore,
    cfg: &PeerConfig,
    pool: PoolId,
    addr: SocketAddr,
    items: &[CredentialToSend],
    standby: &[WorkerCredential],
) -> Result<()> {
    // Routes superseded in our own committed view will never be forwarded: forget them.
    let mut current = Vec::new();
    for (directive, group, credential) in items {
        if cfg.chain.assignment(group).is_some_and(|a| a.directive == *directive) {
            current.push((*directive, group.clone(), credential.clone()));
        } else {
            info!(group = %group, directive = %directive, "credentials for a superseded route; dropped");
            store.db().remove(key(
                b"c:",
                &[pool.as_bytes(), directive.as_bytes(), credential.endpoint.as_str().as_bytes()],
            ))?;
        }
    }
    let items = &current;
    if items.is_empty() && standby.is_empty() {
        return Ok(());
    }
    let trust = Trust::default();
    trust.insert(pool.0, Role::Node);
    let conn = connect(addr, &cfg.identity, &trust, ALPN).await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    write_frame(&mut send, &PlaneMsg::PeerHello { pool: cfg.me }.encode()).await?;
    for (directive, group, credential) in items {
        let msg = PlaneMsg::Credentials { directive: *directive, group: group.clone(), credential: credential.clone() };
        write_frame(&mut send, &msg.encode()).await?;
    }
    for credential in standby {
        write_frame(&mut send, &PlaneMsg::Standby { credential: credential.clone() }.encode()).await?;
    }
    for _ in 0..items.len() + standby.len() {
        let f = read_frame(&mut recv, PLANE_MSG_BYTES_MAX).await?.context("peer closed before acknowledging")?;
        match PlaneMsg::decode(&f)? {
            PlaneMsg::CredentialsAck { directive, endpoint } => {
                store.db().remove(key(b"c:", &[pool.as_bytes(), directive.as_bytes(), endpoint.as_str().as_bytes()]))?
            }
            PlaneMsg::StandbyAck { endpoint } => {
                store.db().remove(key(b"u:", &[pool.as_bytes(), endpoint.as_str().as_bytes()]))?
            }
            _ => bail!("peer answered something other than an acknowledgement"),
        };
    }
    info!(pool = %pool, loans = items.len(), standby = standby.len(), "worker credentials delivered");
    conn.close(0u32.into(), b"done");
    Ok(())
}

/// Borrower side: a peer node's session (after its handshake key was found among the pools);
/// checked credentials go to the plane through `received`.
pub(crate) async fn serve_peer(
    cfg: Option<&PeerConfig>,
    received: &tokio::sync::mpsc::Sender<ReceivedCredential>,
    peer: PoolId,
    first: PlaneMsg,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Result<()> {
    let Some(cfg) = cfg else { bail!("node-to-node channel is off") };
    match first {
        PlaneMsg::PeerHello { pool } if pool == peer => {}
        PlaneMsg::PeerHello { pool } => bail!("peer claims pool {pool} but proved key {peer}"),
        _ => bail!("a node's first message must be peer_hello"),
    }
    while let Some(f) = read_frame(recv, PLANE_MSG_BYTES_MAX).await? {
        let (directive, group, credential) = match PlaneMsg::decode(&f).context("unknown or malformed message")? {
            PlaneMsg::Credentials { directive, group, credential } => (directive, group, credential),
            PlaneMsg::Standby { credential } => {
                receive_standby(cfg, received, peer, credential, send).await?;
                continue;
            }
            _ => bail!("nodes may only send credentials"),
        };
        check_size(&credential)?;
        if cfg.chain.group_owner(&group) != Some(cfg.me) {
            bail!("credentials for group {group}, which is not ours");
        }
        if cfg.chain.endpoint_owner(&credential.endpoint) != Some(peer) {
            bail!("credentials for endpoint {}, which is not the sender's", credential.endpoint);
        }
        let endpoint = credential.endpoint.clone();
        // The lender usually commits the route a moment before this node does: wait for it
        // briefly rather than make the lender come back (it retries every 2 s).
        let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
        while cfg.chain.assignment(&group).is_none_or(|a| a.directive != directive)
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        match cfg.chain.assignment(&group) {
            Some(a) if a.directive == directive => {
                if !a.targets.iter().any(|t| t.endpoint == credential.endpoint) {
                    bail!("endpoint {} is not in route {directive}", credential.endpoint);
                }
                let (reply, stored) = tokio::sync::oneshot::channel();
                received
                    .send(ReceivedCredential { directive: Some(directive), credential, stored: reply })
                    .await
                    .map_err(|_| anyhow::anyhow!("the plane stopped"))?;
                stored.await.context("the plane stopped")?;
                info!(pool = %peer, group = %group, endpoint = %endpoint, "worker credentials received");
            }
            // Not the current route here: this node may not have committed its activation yet
            // (the lender commits first), or it was superseded. No acknowledgement: the lender
            // resends, and drops the credentials itself once its own view shows them superseded.
            _ => bail!("route {directive} is not {group}'s current route here (yet); resend later"),
        }
        let ack = PlaneMsg::CredentialsAck { directive, endpoint };
        write_frame(send, &ack.encode()).await?;
    }
    Ok(())
}

/// The Stratum worker name of a lender's standby credentials for `pool` (the pool's id, 12 hex
/// digits): work under it is a fallback before any loan, and settled by none.
#[must_use]
pub fn standby_worker(pool: &PoolId) -> String {
    format!("{}.standby", &pool.to_hex()[..12])
}

fn check_size(c: &WorkerCredential) -> Result<()> {
    use hashmesh_protocol::limits::STRATUM_CREDENTIAL_BYTES_MAX;
    if c.user.len() > STRATUM_CREDENTIAL_BYTES_MAX || c.password.len() > STRATUM_CREDENTIAL_BYTES_MAX {
        bail!("a worker name or password over {STRATUM_CREDENTIAL_BYTES_MAX} bytes");
    }
    Ok(())
}

/// Borrower side: a lender's standby credential, for an endpoint the lender owns and offers
/// (waiting briefly for our own commit of the offer, as for a loan's route).
async fn receive_standby(
    cfg: &PeerConfig,
    received: &tokio::sync::mpsc::Sender<ReceivedCredential>,
    peer: PoolId,
    credential: WorkerCredential,
    send: &mut quinn::SendStream,
) -> Result<()> {
    check_size(&credential)?;
    let endpoint = credential.endpoint.clone();
    if cfg.chain.endpoint_owner(&endpoint) != Some(peer) {
        bail!("standby credentials for endpoint {endpoint}, which is not the sender's");
    }
    let offered = || cfg.chain.offers().iter().any(|o| o.endpoint == endpoint && o.owner == peer);
    let deadline = tokio::time::Instant::now() + COMMIT_WAIT;
    while !offered() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    if !offered() {
        bail!("no open offer on {endpoint} here (yet); resend later");
    }
    let (reply, stored) = tokio::sync::oneshot::channel();
    received
        .send(ReceivedCredential { directive: None, credential, stored: reply })
        .await
        .map_err(|_| anyhow::anyhow!("the plane stopped"))?;
    stored.await.context("the plane stopped")?;
    info!(pool = %peer, endpoint = %endpoint, "standby credentials received");
    write_frame(send, &PlaneMsg::StandbyAck { endpoint }.encode()).await?;
    Ok(())
}
