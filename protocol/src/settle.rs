//! Settlement of loans, in integers: the rules the chain applies to the two sides' running
//! totals, and the decayed reward weights of the per-pair ledger (DESIGN.md §10, ADR 0012).
//!
//! Each side reports a running total of the loan's accepted work with the time it read it
//! (borrower: accepted at the lender's endpoint, as its agents saw it; lender: accepted by its
//! endpoint under the loan's credentials). Totals read at different moments are compared at the
//! same moment: the earlier of the two sides' latest readings, the other side's total there
//! interpolated linearly between its last two readings ([`paired`]). Two totals **agree** when
//! they differ by at most [`LOAN_TOLERANCE_BP`] of the larger; the agreed total is the smaller
//! ([`judge`]). Settled work only grows: a dispute settles nothing, and a later agreement
//! settles everything agreed up to then.

use bincode::{Decode, Encode};
use serde::{Deserialize, Serialize};

use crate::limits::REWARD_WINDOW_HOURS;

/// Two sides' totals agree when they differ by at most this share of the larger, bp.
pub const LOAN_TOLERANCE_BP: u128 = 500;
/// Reward weights decay by this factor per hour, as a fraction of [`DECAY_PERCENT_BASE`]
/// (the source article's 0.95).
pub const DECAY_PERCENT_PER_HOUR: u128 = 95;
/// Denominator of [`DECAY_PERCENT_PER_HOUR`].
pub const DECAY_PERCENT_BASE: u128 = 100;
/// Fixed-point scale of decay factors (parts per 10¹²).
pub const DECAY_SCALE: u128 = 1_000_000_000_000;
/// Length of a ledger hour, ms of block time.
pub const HOUR_MS: u64 = 3_600_000;

/// JSON form of work totals: decimal strings, since they outgrow the 2⁵³ that JSON numbers
/// carry exactly in most readers.
pub mod hashes_json {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as a decimal string.
    ///
    /// # Errors
    /// Never (the serializer's own errors only).
    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    /// Deserialize a decimal string.
    ///
    /// # Errors
    /// If it is not one.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// One side's reading of a loan's running total.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Reading {
    /// When it was read, ms since the Unix epoch (the reporter's clock).
    pub at_ms: u64,
    /// Accepted work since the loan opened, hashes.
    #[serde(with = "hashes_json")]
    pub hashes: u128,
}

/// Settled work in one ledger hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct HourWork {
    /// The ledger hour ([`hour_of`] a block time).
    pub hour: u64,
    /// Work settled in it, hashes.
    #[serde(with = "hashes_json")]
    pub hashes: u128,
}

/// A side's last two readings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct Readings {
    /// The one before the last.
    pub prev: Option<Reading>,
    /// The last.
    pub last: Option<Reading>,
}

impl Readings {
    /// Add a newer reading.
    pub fn push(&mut self, r: Reading) {
        self.prev = self.last;
        self.last = Some(r);
    }

    /// The total at `t`: the last reading's when read at `t`, else interpolated between the
    /// last two when `t` falls between them (floored); `None` otherwise.
    #[must_use]
    pub fn total_at(&self, t: u64) -> Option<u128> {
        let last = self.last?;
        if t == last.at_ms {
            return Some(last.hashes);
        }
        let prev = self.prev?;
        if t < prev.at_ms || t > last.at_ms {
            return None;
        }
        let span = u128::from(last.at_ms - prev.at_ms);
        let grown = last.hashes - prev.hashes;
        let into = u128::from(t - prev.at_ms);
        Some(prev.hashes + mul_div(grown, into, span))
    }
}

/// `a × b / d`, floored, without overflow for `b ≤ d`.
fn mul_div(a: u128, b: u128, d: u128) -> u128 {
    (a / d) * b + (a % d) * b / d
}

/// The two sides' totals at one moment — the earlier of their latest readings — or `None`
/// while one side has not read often enough to be interpolated there.
#[must_use]
pub fn paired(borrower: &Readings, lender: &Readings) -> Option<(u64, u128, u128)> {
    let t = borrower.last?.at_ms.min(lender.last?.at_ms);
    Some((t, borrower.total_at(t)?, lender.total_at(t)?))
}

/// One loan's settlement state: both sides' last readings, the last moment judged, and the
/// work settled so far. Applied to every report, in block order, by the chain — and replayed
/// from the signed reports by an auditor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Encode, Decode, Serialize, Deserialize)]
pub struct LoanBook {
    /// The borrower's last two readings of its running total.
    pub borrower_readings: Readings,
    /// The lender's last two readings.
    pub lender_readings: Readings,
    /// The last moment the two sides were compared at, ms (each moment is judged once).
    pub judged_at_ms: u64,
    /// Work settled so far (the agreed total), hashes.
    #[serde(with = "hashes_json")]
    pub settled_hashes: u128,
}

/// What one report did to a loan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing new to judge, or agreement on no more than was settled.
    Nothing,
    /// This much more work is settled, hashes.
    Settled(u128),
    /// The totals at `at_ms` differ beyond the tolerance.
    Disputed {
        /// The moment compared.
        at_ms: u64,
        /// The borrower's total then.
        borrower: u128,
        /// The lender's total then.
        lender: u128,
    },
}

impl LoanBook {
    /// Record a reading of the borrower's (`borrower` true) or the lender's, and judge the
    /// newest moment both sides can be compared at, if not judged before.
    pub fn record(&mut self, borrower: bool, reading: Reading) -> Outcome {
        if borrower {
            self.borrower_readings.push(reading);
        } else {
            self.lender_readings.push(reading);
        }
        let Some((t, b, l)) = paired(&self.borrower_readings, &self.lender_readings) else { return Outcome::Nothing };
        if t <= self.judged_at_ms {
            return Outcome::Nothing;
        }
        self.judged_at_ms = t;
        match judge(b, l) {
            Verdict::Agreed(total) if total > self.settled_hashes => {
                let work = total - self.settled_hashes;
                self.settled_hashes = total;
                Outcome::Settled(work)
            }
            Verdict::Agreed(_) => Outcome::Nothing,
            Verdict::Disputed => Outcome::Disputed { at_ms: t, borrower: b, lender: l },
        }
    }

    /// The side's last reading.
    #[must_use]
    pub fn last(&self, borrower: bool) -> Option<Reading> {
        if borrower {
            self.borrower_readings.last
        } else {
            self.lender_readings.last
        }
    }
}

/// How two totals compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the tolerance: the smaller of the two.
    Agreed(u128),
    /// Beyond it.
    Disputed,
}

/// Judge a borrower's and a lender's totals for the same moment.
#[must_use]
pub fn judge(borrower: u128, lender: u128) -> Verdict {
    let (lo, hi) = (borrower.min(lender), borrower.max(lender));
    if hi - lo <= mul_div(hi, LOAN_TOLERANCE_BP, 10_000) {
        Verdict::Agreed(lo)
    } else {
        Verdict::Disputed
    }
}

/// The fee on `work` at `fee_bp`, floored, hashes.
#[must_use]
pub fn fee_hashes(work: u128, fee_bp: u16) -> u128 {
    mul_div(work, u128::from(fee_bp), 10_000)
}

/// The ledger hour of a block time.
#[must_use]
pub fn hour_of(time_ms: u64) -> u64 {
    time_ms / HOUR_MS
}

/// `0.95^hours` in parts per [`DECAY_SCALE`]: each hour the previous factor × 95 / 100,
/// floored; 0 from [`REWARD_WINDOW_HOURS`] on (outside the window).
#[must_use]
pub fn decay_factor(hours: u64) -> u128 {
    if hours >= REWARD_WINDOW_HOURS {
        return 0;
    }
    (0..hours).fold(DECAY_SCALE, |f, _| f * DECAY_PERCENT_PER_HOUR / DECAY_PERCENT_BASE)
}

/// The reward weight at `now_hour` of hourly buckets of settled work: Σ work × 0.95^age,
/// each term floored; buckets from the future or outside the window count nothing.
#[must_use]
pub fn reward_weight(buckets: &[HourWork], now_hour: u64) -> u128 {
    buckets
        .iter()
        .filter(|b| b.hour <= now_hour)
        .map(|b| mul_div(b.hashes, decay_factor(now_hour - b.hour), DECAY_SCALE))
        .fold(0u128, u128::saturating_add)
}

/// Add `work` to the bucket of `hour` (buckets ascending by hour) and drop buckets that have
/// left the window; at most [`REWARD_WINDOW_HOURS`] remain.
pub fn add_to_buckets(buckets: &mut Vec<HourWork>, hour: u64, work: u128) {
    match buckets.last_mut() {
        Some(b) if b.hour == hour => b.hashes = b.hashes.saturating_add(work),
        _ => buckets.push(HourWork { hour, hashes: work }),
    }
    buckets.retain(|b| hour.saturating_sub(b.hour) < REWARD_WINDOW_HOURS);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(at_ms: u64, hashes: u128) -> Reading {
        Reading { at_ms, hashes }
    }

    fn hw(list: &[(u64, u128)]) -> Vec<HourWork> {
        list.iter().map(|&(hour, hashes)| HourWork { hour, hashes }).collect()
    }

    #[test]
    fn totals_are_interpolated_between_the_last_two_readings() {
        let mut s = Readings::default();
        assert_eq!(s.total_at(0), None);
        s.push(r(1_000, 100));
        assert_eq!((s.total_at(1_000), s.total_at(999)), (Some(100), None), "one reading: only its own moment");
        s.push(r(3_000, 300));
        for (t, want) in [(1_000, Some(100)), (2_000, Some(200)), (2_999, Some(299)), (3_000, Some(300))] {
            assert_eq!(s.total_at(t), want, "at {t}");
        }
        assert_eq!((s.total_at(999), s.total_at(3_001)), (None, None), "no extrapolation");
        // Floored, and no overflow at the top of the range.
        s.push(r(3_003, 301));
        assert_eq!(s.total_at(3_001), Some(300));
        let mut big = Readings::default();
        big.push(r(0, 0));
        big.push(r(1 << 62, u128::MAX));
        assert_eq!(big.total_at(1 << 61), Some(u128::MAX / 2));
    }

    #[test]
    fn sides_are_compared_at_the_earlier_latest_reading() {
        let (mut b, mut l) = (Readings::default(), Readings::default());
        b.push(r(1_000, 0));
        b.push(r(5_000, 400));
        l.push(r(4_000, 300));
        assert_eq!(paired(&b, &l), Some((4_000, 300, 300)), "the borrower's total interpolated at the lender's");
        l.push(r(6_000, 500));
        assert_eq!(paired(&b, &l), Some((5_000, 400, 400)));
        assert_eq!(paired(&Readings::default(), &l), None);
        let mut early = Readings::default();
        early.push(r(7_000, 1));
        assert_eq!(paired(&early, &l), None, "6000 is before the borrower's only reading");
    }

    /// Table: the tolerance edge, on both sides.
    #[test]
    fn totals_agree_within_the_tolerance_and_settle_the_smaller() {
        for (b, l, want) in [
            (10_000, 10_000, Verdict::Agreed(10_000)),
            (9_500, 10_000, Verdict::Agreed(9_500)), // exactly 5 % of the larger
            (10_000, 9_500, Verdict::Agreed(9_500)),
            (9_499, 10_000, Verdict::Disputed),
            (10_000, 9_499, Verdict::Disputed),
            (0, 0, Verdict::Agreed(0)),
            (0, 1, Verdict::Disputed),
            (u128::MAX, u128::MAX - 1, Verdict::Agreed(u128::MAX - 1)),
        ] {
            assert_eq!(judge(b, l), want, "borrower {b}, lender {l}");
        }
    }

    #[test]
    fn fees_are_floored_basis_points_of_the_work() {
        assert_eq!(fee_hashes(10_000, 150), 150);
        assert_eq!(fee_hashes(9_999, 150), 149);
        assert_eq!(fee_hashes(u128::MAX, 10_000), u128::MAX);
        assert_eq!(fee_hashes(123, 0), 0);
    }

    /// Table: 0.95^n in fixed point, and the rounding of each term.
    #[test]
    fn reward_weights_decay_five_percent_an_hour_inside_the_window() {
        assert_eq!(decay_factor(0), DECAY_SCALE);
        assert_eq!(decay_factor(1), 950_000_000_000);
        assert_eq!(decay_factor(2), 902_500_000_000);
        assert_eq!(decay_factor(10), 598_736_939_236); // 0.95^10 = 0.598736939238…, floored at each step
        assert_eq!(decay_factor(23), 307_356_867_720); // 0.95^23 = 0.307356867…
        assert_eq!(decay_factor(REWARD_WINDOW_HOURS), 0, "outside the window");
        // The article's example: 1200 shares 23 hours ago weigh 368.8.
        assert_eq!(reward_weight(&hw(&[(0, 1_200_000)]), 23), 368_828, "1200.000 × 0.95^23 in thousandths, floored");
        assert_eq!(reward_weight(&hw(&[(5, 1_000), (6, 1_000)]), 6), 950 + 1_000);
        assert_eq!(reward_weight(&hw(&[(7, 1_000)]), 6), 0, "a future bucket counts nothing");
        assert_eq!(reward_weight(&hw(&[(0, 3)]), 1), 2, "each term floored");
    }

    #[test]
    fn buckets_merge_by_hour_and_leave_the_window() {
        let mut b = Vec::new();
        add_to_buckets(&mut b, 10, 5);
        add_to_buckets(&mut b, 10, 7);
        add_to_buckets(&mut b, 11, 1);
        assert_eq!(b, hw(&[(10, 12), (11, 1)]));
        add_to_buckets(&mut b, 10 + REWARD_WINDOW_HOURS, 1);
        assert_eq!(b, hw(&[(11, 1), (10 + REWARD_WINDOW_HOURS, 1)]), "hour 10 left the window");
        for h in 100..200 {
            add_to_buckets(&mut b, h, 1);
        }
        assert_eq!(b.len() as u64, REWARD_WINDOW_HOURS, "bounded by the window");
    }

    #[test]
    fn totals_are_strings_in_json() {
        let v = serde_json::to_value(r(1, u128::MAX)).unwrap();
        assert_eq!(v["hashes"], serde_json::json!(u128::MAX.to_string()));
        assert_eq!(serde_json::from_value::<Reading>(v).unwrap(), r(1, u128::MAX));
    }
}
