//! Stable, non-zero rejection codes returned by `CheckTx` and `FinalizeBlock`.
//!
//! The numbers are part of the protocol: never renumber, only append.
//! `docs/protocol.md` lists them with their meaning.

use std::fmt;

/// Why a transaction was refused. `code()` is what CometBFT reports in `tx_result.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u32)]
pub enum RejectCode {
    /// Bytes do not decode as a canonical transaction.
    Malformed = 1,
    /// Transaction is larger than `limits::TX_BYTES_MAX`.
    TxTooLarge = 2,
    /// `chain_id` differs from this network's.
    WrongChainId = 3,
    /// Signer is not a registered mining pool.
    UnknownSigner = 4,
    /// Signature does not verify (strict ed25519).
    BadSignature = 5,
    /// Nonce already used, or older than the retained window.
    NonceReused = 6,
    /// Route weights do not sum to 10 000 basis points, or a weight is zero.
    WeightsNotTenThousand = 7,
    /// A referenced endpoint does not exist.
    UnknownEndpoint = 8,
    /// A referenced miner group does not exist.
    UnknownGroup = 9,
    /// The miner group belongs to another mining pool.
    GroupNotOwned = 10,
    /// The endpoint belongs to another mining pool.
    EndpointNotOwned = 11,
    /// A route targets an endpoint that is drained.
    EndpointDrained = 12,
    /// `Restore` on an endpoint that is not drained.
    EndpointNotDrained = 13,
    /// A route lists the same endpoint twice.
    DuplicateEndpoint = 14,
    /// The voted-on directive does not exist.
    UnknownDirective = 15,
    /// The voted-on directive is not pending.
    DirectiveNotPending = 16,
    /// The voter's endpoints are not touched by the directive.
    VoteNotRequired = 17,
    /// The voter already voted on this directive.
    AlreadyVoted = 18,
    /// Too many directives are pending chain-wide.
    TooManyPending = 19,
    /// `Drain` on an endpoint that is already drained.
    EndpointAlreadyDrained = 20,
    /// A telemetry epoch not above the endpoint's last reported epoch.
    TelemetryEpochNotIncreasing = 21,
    /// A telemetry value out of its bounds.
    TelemetryOutOfRange = 22,
    /// A route targets an endpoint whose committed health is below the floor.
    HealthBelowFloor = 23,
    /// A route would load an endpoint beyond capacity × max utilisation.
    CapacityExceeded = 24,
    /// A `Receipt` is empty, too long, or its entries are not strictly increasing.
    ReceiptInvalid = 25,
    /// A receipt's directive is not an active route of one of the signer's groups.
    ReceiptNotOwned = 26,
    /// Every entry of a `Receipt` is already recorded.
    ReceiptDuplicate = 27,
    /// A directive already has `RECEIPTS_PER_DIRECTIVE_MAX` receipts.
    ReceiptsFull = 28,
    /// A telemetry entry for another pool's endpoint that none of the signer's active routes
    /// targets.
    NotObserver = 29,
    /// An `Offer` with no capacity, a fee over 10 000 bp, or an expiry not ahead of the chain or
    /// too far ahead.
    OfferInvalid = 30,
    /// `Withdraw` of an endpoint with no open offer.
    NoOffer = 31,
    /// Loan work for a (group, endpoint, opened height) that is not a loan, or whose report
    /// window closed.
    LoanUnknown = 32,
    /// Loan work from a pool that is neither the loan's borrower nor its lender.
    NotLoanParty = 33,
    /// Loan work that is empty, too long, out of order, not newer than the side's last report,
    /// decreasing, or timed too far ahead of the block.
    LoanWorkInvalid = 34,
}

impl RejectCode {
    /// Every code, in numeric order (for docs and tests).
    pub const ALL: [RejectCode; 34] = [
        Self::Malformed,
        Self::TxTooLarge,
        Self::WrongChainId,
        Self::UnknownSigner,
        Self::BadSignature,
        Self::NonceReused,
        Self::WeightsNotTenThousand,
        Self::UnknownEndpoint,
        Self::UnknownGroup,
        Self::GroupNotOwned,
        Self::EndpointNotOwned,
        Self::EndpointDrained,
        Self::EndpointNotDrained,
        Self::DuplicateEndpoint,
        Self::UnknownDirective,
        Self::DirectiveNotPending,
        Self::VoteNotRequired,
        Self::AlreadyVoted,
        Self::TooManyPending,
        Self::EndpointAlreadyDrained,
        Self::TelemetryEpochNotIncreasing,
        Self::TelemetryOutOfRange,
        Self::HealthBelowFloor,
        Self::CapacityExceeded,
        Self::ReceiptInvalid,
        Self::ReceiptNotOwned,
        Self::ReceiptDuplicate,
        Self::ReceiptsFull,
        Self::NotObserver,
        Self::OfferInvalid,
        Self::NoOffer,
        Self::LoanUnknown,
        Self::NotLoanParty,
        Self::LoanWorkInvalid,
    ];

    /// The numeric code CometBFT reports.
    #[must_use]
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The stable snake_case name used in logs and JSON.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TxTooLarge => "tx_too_large",
            Self::WrongChainId => "wrong_chain_id",
            Self::UnknownSigner => "unknown_signer",
            Self::BadSignature => "bad_signature",
            Self::NonceReused => "nonce_reused",
            Self::WeightsNotTenThousand => "weights_not_ten_thousand",
            Self::UnknownEndpoint => "unknown_endpoint",
            Self::UnknownGroup => "unknown_group",
            Self::GroupNotOwned => "group_not_owned",
            Self::EndpointNotOwned => "endpoint_not_owned",
            Self::EndpointDrained => "endpoint_drained",
            Self::EndpointNotDrained => "endpoint_not_drained",
            Self::DuplicateEndpoint => "duplicate_endpoint",
            Self::UnknownDirective => "unknown_directive",
            Self::DirectiveNotPending => "directive_not_pending",
            Self::VoteNotRequired => "vote_not_required",
            Self::AlreadyVoted => "already_voted",
            Self::TooManyPending => "too_many_pending",
            Self::EndpointAlreadyDrained => "endpoint_already_drained",
            Self::TelemetryEpochNotIncreasing => "telemetry_epoch_not_increasing",
            Self::TelemetryOutOfRange => "telemetry_out_of_range",
            Self::HealthBelowFloor => "health_below_floor",
            Self::CapacityExceeded => "capacity_exceeded",
            Self::ReceiptInvalid => "receipt_invalid",
            Self::ReceiptNotOwned => "receipt_not_owned",
            Self::ReceiptDuplicate => "receipt_duplicate",
            Self::ReceiptsFull => "receipts_full",
            Self::NotObserver => "not_observer",
            Self::OfferInvalid => "offer_invalid",
            Self::NoOffer => "no_offer",
            Self::LoanUnknown => "loan_unknown",
            Self::NotLoanParty => "not_loan_party",
            Self::LoanWorkInvalid => "loan_work_invalid",
        }
    }

    /// The code for a number, if it is one of ours.
    #[must_use]
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }
}

impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_dense_unique_and_round_trip() {
        for (i, c) in RejectCode::ALL.iter().enumerate() {
            assert_eq!(c.code() as usize, i + 1);
            assert_eq!(RejectCode::from_code(c.code()), Some(*c));
        }
        assert_eq!(RejectCode::from_code(0), None);
        let mut names: Vec<_> = RejectCode::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), RejectCode::ALL.len());
    }
}
