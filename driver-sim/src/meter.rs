//! What a run costs the machine it runs on: the CPU time of the simulating thread. The
//! simulation itself never reads a clock; only the measurement of its speed does.

/// CPU time the calling thread has run, in seconds: Linux's `/proc/thread-self/schedstat`
/// (nanoseconds on the CPU), `None` where there is none. On a shared machine it stays near a
/// run's own cost while wall time grows with time spent waiting for a core.
pub fn thread_cpu_seconds() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The thread's CPU clock counts work done and not time slept: what makes
    /// `events_per_cpu_sec` steadier than `events_per_sec` on a shared machine.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_cpu_clock_counts_work_not_sleep() {
        use std::time::{Duration, Instant};
        let before_sleep = thread_cpu_seconds().expect("Linux has /proc/thread-self/schedstat");
        std::thread::sleep(Duration::from_millis(200));
        let after_sleep = thread_cpu_seconds().expect("still there");
        assert!(
            after_sleep - before_sleep < 0.1,
            "slept 0.2 s, charged {:.3} s",
            after_sleep - before_sleep
        );
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut x = 0u64;
        while thread_cpu_seconds().expect("still there") - after_sleep < 0.05 {
            assert!(
                Instant::now() < give_up,
                "20 s of spinning never charged 0.05 s"
            );
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        }
    }
}
