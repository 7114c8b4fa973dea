//! Offers and loans: an endpoint owner's standing offer of spare capacity, and the rule that
//! makes other pools' routes inside open offers active at once. A loan is a (borrowing group,
//! lending endpoint) pair while a committed route uses it — derived from the assignments, never
//! stored twice.

use hashmesh_protocol::limits::OFFER_TERM_BLOCKS_MAX;
use hashmesh_protocol::rules::share_hs;
use hashmesh_protocol::{codec, EndpointId, GroupId, PoolId, RejectCode, RouteTarget};

use super::apply::{reject, Rejection};
use super::keys;
use super::model::OfferRecord;
use super::state::State;
use super::writes::WriteSet;

impl State {
    /// Check an `Offer` by `signer` (the endpoint's owner) against the next block's height.
    pub(crate) fn check_offer(
        &self,
        signer: PoolId,
        endpoint: &EndpointId,
        max_hs: u64,
        fee_bp: u16,
        expires_height: u64,
    ) -> Result<OfferRecord, Rejection> {
        let ep = self
            .endpoints
            .get(endpoint)
            .ok_or_else(|| Rejection { code: RejectCode::UnknownEndpoint, log: format!("no endpoint {endpoint}") })?;
        if ep.owner != signer {
            return reject(RejectCode::EndpointNotOwned, format!("endpoint {endpoint} belongs to another pool"));
        }
        let next = self.height + 1;
        if max_hs == 0 {
            return reject(RejectCode::OfferInvalid, "an offer needs a positive max_hs");
        }
        if fee_bp > 10_000 {
            return reject(RejectCode::OfferInvalid, format!("fee {fee_bp} bp is over 10000"));
        }
        if expires_height < next || expires_height - next > OFFER_TERM_BLOCKS_MAX {
            return reject(
                RejectCode::OfferInvalid,
                format!(
                    "expires_height {expires_height} must be between the next height {next} and {} ({OFFER_TERM_BLOCKS_MAX} blocks ahead)",
                    next + OFFER_TERM_BLOCKS_MAX
                ),
            );
        }
        Ok(OfferRecord { endpoint: endpoint.clone(), owner: signer, max_hs, fee_bp, expires_height, height: next })
    }

    /// Check a `Withdraw`: the signer's endpoint has an offer still open.
    pub(crate) fn check_withdraw(&self, signer: PoolId, endpoint: &EndpointId) -> Result<(), Rejection> {
        match self.offers.get(endpoint) {
            Some(o) if o.owner == signer && self.offer_open(o) => Ok(()),
            Some(o) if o.owner == signer => {
                reject(RejectCode::NoOffer, format!("the offer on {endpoint} expired at height {}", o.expires_height))
            }
            _ if self.endpoints.get(endpoint).is_some_and(|e| e.owner != signer) => {
                reject(RejectCode::EndpointNotOwned, format!("endpoint {endpoint} belongs to another pool"))
            }
            _ if !self.endpoints.contains_key(endpoint) => {
                reject(RejectCode::UnknownEndpoint, format!("no endpoint {endpoint}"))
            }
            _ => reject(RejectCode::NoOffer, format!("there is no open offer on {endpoint}")),
        }
    }

    /// Whether an offer is open for the next block.
    #[must_use]
    pub fn offer_open(&self, o: &OfferRecord) -> bool {
        o.expires_height > self.height
    }

    /// The open offer on an endpoint, if any.
    #[must_use]
    pub fn open_offer(&self, endpoint: &EndpointId) -> Option<&OfferRecord> {
        self.offers.get(endpoint).filter(|o| self.offer_open(o))
    }

    /// Every offer, open or expired.
    pub fn offers(&self) -> impl Iterator<Item = &OfferRecord> {
        self.offers.values()
    }

    /// Hashrate other pools' committed routes place on `endpoint`, H/s, leaving out `except`'s
    /// current route (it is being replaced).
    #[must_use]
    pub fn lent_hs(&self, endpoint: &EndpointId, except: Option<&GroupId>) -> u128 {
        let Some(owner) = self.endpoints.get(endpoint).map(|e| e.owner) else { return 0 };
        self.assignments
            .values()
            .filter(|a| Some(&a.group) != except)
            .filter_map(|a| self.groups.get(&a.group).map(|g| (a, g)))
            .filter(|(_, g)| g.owner != owner)
            .flat_map(|(a, g)| {
                a.targets.iter().filter(|t| t.endpoint == *endpoint).map(move |t| share_hs(g.hashrate_hs, t.weight_bp))
            })
            .sum()
    }

    /// Whether every target of `group`'s new route on another pool's endpoint fits in that
    /// endpoint's open offer (with the other borrowers' committed routes there): such a route
    /// needs no votes.
    pub(crate) fn within_offers(
        &self,
        group: &GroupId,
        owner: PoolId,
        hashrate_hs: u64,
        targets: &[RouteTarget],
    ) -> bool {
        targets.iter().filter(|t| self.endpoints.get(&t.endpoint).is_some_and(|e| e.owner != owner)).all(|t| {
            self.open_offer(&t.endpoint).is_some_and(|o| {
                self.lent_hs(&t.endpoint, Some(group)) + share_hs(hashrate_hs, t.weight_bp) <= u128::from(o.max_hs)
            })
        })
    }

    /// Keep an offer (replacing the endpoint's previous one).
    pub(crate) fn set_offer(&mut self, o: OfferRecord, writes: &mut WriteSet) {
        writes.put(keys::offer(&o.endpoint), codec::encode(&o));
        self.offers.insert(o.endpoint.clone(), o);
    }

    /// Drop an endpoint's offer.
    pub(crate) fn drop_offer(&mut self, endpoint: &EndpointId, writes: &mut WriteSet) {
        self.offers.remove(endpoint);
        writes.delete(keys::offer(endpoint));
    }
}
