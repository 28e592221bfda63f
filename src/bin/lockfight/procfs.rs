//! What `/proc` says about the server under test: CPU time and memory.

use std::fs;

/// CPU seconds (user plus system, all threads) the process has used.
///
/// Read from each thread's `schedstat` (time on a CPU, in nanoseconds),
/// since `utime` and `stime` of `/proc/PID/stat` count whole clock ticks
/// (10 ms), coarse beside a run of a few seconds; those are the fallback
/// where `schedstat` is missing.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    match schedstat_seconds(pid) {
        Some(secs) => Ok(secs),
        None => stat_seconds(pid),
    }
}

/// Sum over the process's threads of the first field of `schedstat`.
fn schedstat_seconds(pid: u32) -> Option<f64> {
    let mut nanos: u64 = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        nanos += parse_schedstat(&text)?;
    }
    Some(nanos as f64 / 1e9)
}

fn parse_schedstat(text: &str) -> Option<u64> {
    text.split_ascii_whitespace().next()?.parse().ok()
}

fn stat_seconds(pid: u32) -> Result<f64, String> {
    let path = format!("/proc/{pid}/stat");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_cpu_ticks(&text)
        .map(|ticks| ticks as f64 / clock_ticks_per_second())
        .ok_or_else(|| format!("cannot parse {path}"))
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) may hold spaces and parentheses; the fields
    // after its closing parenthesis are plain. utime and stime are fields 14
    // and 15, so 12th and 13th after "state" (field 3).
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// Resident memory of the process in bytes (`VmRSS`).
pub fn resident_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {path}: {e}"))?;
    parse_vm_rss(&text).ok_or_else(|| format!("no VmRSS in {path}"))
}

fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_ascii_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_names() {
        let stat = "42 (a (b) c) S 1 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_cpu_ticks(stat), Some(280));
    }

    #[test]
    fn parses_schedstat() {
        assert_eq!(
            parse_schedstat("12702156279 22042840170 301303\n"),
            Some(12_702_156_279)
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn schedstat_and_stat_agree_on_our_process() {
        let me = std::process::id();
        // Burn a little CPU so both clocks have something to count.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        let fine = schedstat_seconds(me).unwrap_or(0.0);
        let coarse = stat_seconds(me).unwrap();
        if fine > 0.0 {
            assert!(
                (fine - coarse).abs() < 0.1,
                "schedstat {fine} vs stat {coarse}"
            );
        }
    }

    #[test]
    fn parses_vm_rss() {
        assert_eq!(
            parse_vm_rss("Name:\tx\nVmRSS:\t    1234 kB\n"),
            Some(1234 * 1024)
        );
        assert_eq!(parse_vm_rss("Name:\tx\n"), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = std::process::id();
        assert!(cpu_seconds(me).is_ok());
        assert!(resident_bytes(me).unwrap() > 0);
    }
}
