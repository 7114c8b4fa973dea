//! Hashrate from accepted difficulty: a share of difficulty `d` stands for `d × 2³²` hashes in
//! expectation, so hashrate = accepted hashes per second over a window. Integers on the wire.

/// Hashes per unit of share difficulty.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;
/// The window the agent's hashrate gauges (`/metrics`, status) are estimated over, ms.
pub const HASHRATE_WINDOW_MS: u64 = 60_000;
/// Slots of the window (each `HASHRATE_WINDOW_MS / SLOTS` long).
const SLOTS: usize = 12;
const SLOT_MS: u64 = HASHRATE_WINDOW_MS / SLOTS as u64;

/// The hashes a share of `difficulty` stands for.
#[must_use]
pub fn hashes_of(difficulty: f64) -> u128 {
    (difficulty.max(0.0) * HASHES_PER_DIFFICULTY).round() as u128
}

/// Hashrate of `hashes` over `ms`, H/s (0 over an empty span).
#[must_use]
pub fn hashrate_hs(hashes: u128, ms: u64) -> u64 {
    u64::try_from(hashes.saturating_mul(1000).checked_div(u128::from(ms)).unwrap_or(0)).unwrap_or(u64::MAX)
}

/// Accepted hashes over the last [`HASHRATE_WINDOW_MS`], in slots: 12 numbers per series, so a
/// gauge per worker stays small.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashrateWindow {
    slots: [u128; SLOTS],
    /// Index (time / slot length) of the newest slot.
    head: u64,
    started_ms: u64,
}

impl HashrateWindow {
    /// An empty window whose series starts at `now_ms`.
    #[must_use]
    pub fn new(now_ms: u64) -> Self {
        Self { slots: [0; SLOTS], head: now_ms / SLOT_MS, started_ms: now_ms }
    }

    fn advance(&mut self, now_ms: u64) {
        let slot = now_ms / SLOT_MS;
        if slot <= self.head {
            return;
        }
        for s in (self.head + 1)..=slot.min(self.head + SLOTS as u64) {
            self.slots[(s % SLOTS as u64) as usize] = 0;
        }
        self.head = slot;
    }

    /// Count `hashes` accepted at `now_ms`.
    pub fn record(&mut self, now_ms: u64, hashes: u128) {
        self.advance(now_ms);
        if now_ms / SLOT_MS + (SLOTS as u64) > self.head {
            let i = ((now_ms / SLOT_MS) % SLOTS as u64) as usize;
            self.slots[i] = self.slots[i].saturating_add(hashes);
        }
    }

    /// Hashrate over the window ending at `now_ms` (or since the series started, if later), H/s.
    #[must_use]
    pub fn hs(&self, now_ms: u64) -> u64 {
        let mut w = self.clone();
        w.advance(now_ms);
        let covered = (now_ms.saturating_sub(self.started_ms)).clamp(1, HASHRATE_WINDOW_MS);
        // The newest slot is partly elapsed: count the window as the full slots before it plus
        // the part of it that has passed.
        let span = covered.min((SLOTS as u64 - 1) * SLOT_MS + now_ms % SLOT_MS).max(1);
        hashrate_hs(w.slots.iter().sum(), span)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_work_reads_back_its_rate() {
        // Difficulty 1 every 100 ms = 10 × 2³² H/s.
        let mut w = HashrateWindow::new(0);
        for t in (100..=300_000).step_by(100) {
            w.record(t, hashes_of(1.0));
            if t > 2_000 {
                let hs = w.hs(t) as f64;
                assert!((hs / (10.0 * HASHES_PER_DIFFICULTY) - 1.0).abs() < 0.06, "t {t}: {hs}");
            }
        }
        assert_eq!(w.hs(300_000 + 2 * HASHRATE_WINDOW_MS), 0, "nothing in the last window");
    }

    #[test]
    fn rates_over_spans() {
        assert_eq!(hashrate_hs(hashes_of(1.0), 1000), 4_294_967_296);
        assert_eq!(hashrate_hs(1, 0), 0);
        assert_eq!(hashes_of(1.0 / 1_048_576.0), 4096);
    }
}
