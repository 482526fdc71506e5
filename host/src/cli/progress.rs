//! Progress of long operations: a line redrawn in place on a terminal
//! (bytes, keys, rate, ETA), plain log lines every few seconds otherwise
//! (cron, CI, a daemon's journal).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Reads the live counters: (bytes done, keys done if counted).
pub(super) type Probe = Arc<dyn Fn() -> (u64, Option<u64>) + Send + Sync>;

/// A running progress display; `finish` stops it.
pub(super) struct Progress {
    task: tokio::task::JoinHandle<()>,
    tty: bool,
}

fn mib(b: u64) -> f64 {
    b as f64 / 1048576.0
}

fn line(label: &str, done: u64, keys: Option<u64>, total: Option<u64>, secs: f64) -> String {
    let rate = mib(done) / secs.max(0.001);
    let mut s = format!("{label}: {:.1} MiB", mib(done));
    if let Some(t) = total {
        s.push_str(&format!(
            " of {:.1} MiB ({:.0}%)",
            mib(t),
            done as f64 * 100.0 / t.max(1) as f64
        ));
    }
    if let Some(k) = keys {
        s.push_str(&format!(", {k} keys"));
    }
    s.push_str(&format!(", {rate:.1} MiB/s"));
    if let Some(t) = total
        && rate > 0.0
        && done < t
    {
        let eta = (mib(t - done) / rate) as u64;
        s.push_str(&format!(", ETA {}:{:02}", eta / 60, eta % 60));
    }
    s
}

impl Progress {
    /// Starts showing `probe` under `label`; `total` enables percent and ETA.
    pub(super) fn start(label: &str, total: Option<u64>, probe: Probe) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let label = label.to_string();
        let started = Instant::now();
        let task = tokio::spawn(async move {
            let every = if tty {
                Duration::from_millis(200)
            } else {
                Duration::from_secs(5)
            };
            loop {
                tokio::time::sleep(every).await;
                let (done, keys) = probe();
                let text = line(&label, done, keys, total, started.elapsed().as_secs_f64());
                if tty {
                    let mut e = std::io::stderr().lock();
                    let _ = write!(e, "\r\x1b[2K{text}");
                    let _ = e.flush();
                } else {
                    tracing::info!("{text}");
                }
            }
        });
        Progress { task, tty }
    }

    pub(super) fn finish(self) {
        self.task.abort();
        if self.tty {
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_show_rate_percent_and_eta() {
        let l = line("restore", 50 << 20, Some(1000), Some(100 << 20), 10.0);
        assert_eq!(
            l,
            "restore: 50.0 MiB of 100.0 MiB (50%), 1000 keys, 5.0 MiB/s, ETA 0:10"
        );
        assert_eq!(
            line("backup", 1 << 20, None, None, 1.0),
            "backup: 1.0 MiB, 1.0 MiB/s"
        );
    }
}
