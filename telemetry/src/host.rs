//! CPU and memory of the machine behind an endpoint, from the counters a host exporter serves
//! (node_exporter's `node_cpu_seconds_total` and `node_memory_*`): the endpoint owner's node
//! scrapes them each epoch (only the owner can see them; agents cannot). Utilisation needs two
//! samples: the first scrape of a host gives memory only.

/// One scrape of a host's counters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HostSample {
    /// Seconds all CPUs spent in any mode since boot.
    pub cpu_total_seconds: f64,
    /// Of which idle or waiting for IO.
    pub cpu_idle_seconds: f64,
    /// Memory installed, bytes.
    pub memory_total_bytes: f64,
    /// Memory available to new work without swapping, bytes.
    pub memory_available_bytes: f64,
}

/// Utilisation of the host between `before` and `now`, basis points: (cpu, memory). CPU is
/// unknown without an earlier sample, or when the counters went backwards (a reboot); memory is
/// unknown when the total is not positive.
#[must_use]
pub fn host_usage_bp(before: Option<&HostSample>, now: &HostSample) -> (Option<u16>, Option<u16>) {
    let bp = |x: f64| (x.clamp(0.0, 1.0) * 10_000.0).round() as u16;
    let cpu = before.and_then(|b| {
        let total = now.cpu_total_seconds - b.cpu_total_seconds;
        let idle = now.cpu_idle_seconds - b.cpu_idle_seconds;
        (total > 0.0 && idle >= 0.0 && idle <= total).then(|| bp(1.0 - idle / total))
    });
    let memory =
        (now.memory_total_bytes > 0.0).then(|| bp(1.0 - now.memory_available_bytes.max(0.0) / now.memory_total_bytes));
    (cpu, memory)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_from_two_samples() {
        let a = HostSample {
            cpu_total_seconds: 1000.0,
            cpu_idle_seconds: 800.0,
            memory_total_bytes: 8e9,
            memory_available_bytes: 6e9,
        };
        assert_eq!(host_usage_bp(None, &a), (None, Some(2500)), "one sample: memory only");
        let b = HostSample { cpu_total_seconds: 1020.0, cpu_idle_seconds: 805.0, ..a };
        assert_eq!(host_usage_bp(Some(&a), &b), (Some(7500), Some(2500)));
        assert_eq!(host_usage_bp(Some(&b), &a).0, None, "counters went backwards: a reboot");
        let broken = HostSample { memory_total_bytes: 0.0, ..a };
        assert_eq!(host_usage_bp(None, &broken).1, None);
    }
}
