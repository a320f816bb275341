//! The standard Prometheus process metrics (`process_cpu_seconds_total`,
//! `process_resident_memory_bytes`, `process_open_fds`, ...), read from `/proc/self` at each
//! scrape, under the names every dashboard and alert for a process already uses, so without
//! Baton's prefix. Linux only; elsewhere there are none.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Encodes the process's own figures at each scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading of `/proc/self`; a figure the kernel did not give is left out.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Reading {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    start_time_seconds: Option<f64>,
    threads: Option<u64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

#[cfg(target_os = "linux")]
fn read() -> Reading {
    use procfs::WithCurrentSystemInfo as _;
    use procfs::process::{LimitValue, Process};
    let Ok(me) = Process::myself() else {
        return Reading::default();
    };
    let mut reading = Reading::default();
    if let Ok(stat) = me.stat() {
        let ticks = procfs::ticks_per_second() as f64;
        if ticks > 0.0 {
            reading.cpu_seconds = Some((stat.utime + stat.stime) as f64 / ticks);
        }
        reading.resident_bytes = Some(stat.rss_bytes().get());
        reading.virtual_bytes = Some(stat.vsize);
        reading.threads = u64::try_from(stat.num_threads).ok();
        // `starttime` counts clock ticks from boot.
        reading.start_time_seconds = procfs::boot_time_secs()
            .ok()
            .filter(|_| ticks > 0.0)
            .map(|boot| boot as f64 + stat.starttime as f64 / ticks);
    }
    reading.open_fds = me.fd_count().ok().and_then(|n| u64::try_from(n).ok());
    reading.max_fds = me
        .limits()
        .ok()
        .and_then(|l| match l.max_open_files.soft_limit {
            LimitValue::Value(n) => Some(n),
            LimitValue::Unlimited => None,
        });
    reading
}

#[cfg(not(target_os = "linux"))]
fn read() -> Reading {
    Reading::default()
}

fn gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: Option<u64>,
) -> std::fmt::Result {
    let Some(value) = value else { return Ok(()) };
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    gauge.encode(e.encode_descriptor(name, help, unit, gauge.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> std::fmt::Result {
        let r = read();
        if let Some(seconds) = r.cpu_seconds {
            let counter = ConstCounter::new(seconds);
            counter.encode(e.encode_descriptor(
                "process_cpu",
                "Total user and system CPU time spent.",
                Some(&Unit::Seconds),
                counter.metric_type(),
            )?)?;
        }
        gauge(
            &mut e,
            "process_resident_memory",
            "Resident memory size.",
            Some(&Unit::Bytes),
            r.resident_bytes,
        )?;
        gauge(
            &mut e,
            "process_virtual_memory",
            "Virtual memory size.",
            Some(&Unit::Bytes),
            r.virtual_bytes,
        )?;
        if let Some(start) = r.start_time_seconds {
            let gauge = ConstGauge::new(start);
            gauge.encode(e.encode_descriptor(
                "process_start_time",
                "Start time of the process since the Unix epoch.",
                Some(&Unit::Seconds),
                gauge.metric_type(),
            )?)?;
        }
        gauge(&mut e, "process_threads", "OS threads.", None, r.threads)?;
        gauge(
            &mut e,
            "process_open_fds",
            "Open file descriptors.",
            None,
            r.open_fds,
        )?;
        gauge(
            &mut e,
            "process_max_fds",
            "The most file descriptors the process may open.",
            None,
            r.max_fds,
        )
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_reading_of_this_process_has_every_figure() {
        let r = read();
        assert!(r.resident_bytes.is_some_and(|b| b > 0), "{r:?}");
        assert!(r.virtual_bytes >= r.resident_bytes, "{r:?}");
        assert!(r.open_fds.is_some_and(|n| n >= 3), "{r:?}");
        assert!(r.threads.is_some_and(|n| n >= 1), "{r:?}");
        assert!(r.cpu_seconds.is_some(), "{r:?}");
        assert!(r.start_time_seconds.is_some_and(|t| t > 1.7e9), "{r:?}");
    }
}
