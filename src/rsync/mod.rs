//! Facts about rsync: its protocol version, what its exit codes mean, and the
//! figures ftpsync reads back from rsync's `--log-file`.

use std::path::Path;
use std::process::{Command, Stdio};

use regex::Regex;

pub mod gate;

/// How ftpsync treats an rsync exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 0 (success) and 24 (files vanished on the sender: the next push fixes it).
    Ok,
    /// 23 (partial transfer) and 30 (timeout): ignored when another push came in
    /// meanwhile, since the stage is repeated anyway; a failure otherwise.
    RetryIfPushed,
    /// Everything else.
    Failed,
}

/// ftpsync's classification of an rsync exit status.
pub fn classify(code: i32) -> Outcome {
    match code {
        0 | 24 => Outcome::Ok,
        23 | 30 => Outcome::RetryIfPushed,
        _ => Outcome::Failed,
    }
}

/// What an rsync exit status means, from rsync(1), for messages.
pub fn meaning(code: i32) -> String {
    let text = match code {
        0 => "success",
        1 => "syntax or usage error",
        2 => "protocol incompatibility",
        3 => "errors selecting input/output files, dirs",
        4 => "requested action not supported",
        5 => "error starting client-server protocol",
        6 => "daemon unable to append to log-file",
        10 => "error in socket I/O",
        11 => "error in file I/O",
        12 => "error in rsync protocol data stream",
        13 => "errors with program diagnostics",
        14 => "error in IPC code",
        20 => "received SIGUSR1 or SIGINT",
        21 => "some error returned by waitpid()",
        22 => "error allocating core memory buffers",
        23 => "partial transfer due to error",
        24 => "partial transfer due to vanished source files",
        25 => "the --max-delete limit stopped deletions",
        30 => "timeout in data send/receive",
        35 => "timeout waiting for daemon connection",
        127 => "rsync could not be run (not found?)",
        c if c > 128 => return format!("killed by signal {}", c - 128),
        _ => "unknown rsync exit status",
    };
    text.to_string()
}

/// What `RSYNC --version` prints (`rsync` may carry options: `rsync -6`).
pub fn version_output(rsync: &[String]) -> Option<String> {
    let (program, args) = rsync.split_first()?;
    let out = Command::new(program)
        .args(args)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Run the rsync `cmd` (stdin and stdout are the caller's) with its stderr
/// captured: `Err` says why it failed — the exit code, its meaning and what
/// rsync said (one line, at most 400 bytes), for a message naming the upstream.
pub fn run_explained(cmd: &mut Command) -> Result<(), String> {
    use std::io::{Read, Seek};
    let mut stderr =
        tempfile::tempfile().map_err(|e| format!("cannot create a temporary file: {e}"))?;
    cmd.stderr(stderr.try_clone().map_err(|e| e.to_string())?);
    let status = crate::process::run(cmd).map_err(|e| format!("cannot run rsync: {e}"))?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::new();
    let _ = stderr.rewind();
    let _ = stderr.read_to_string(&mut text);
    let said: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let code = crate::process::shell_status(status);
    let mut why = format!("rsync exit code {code} ({})", meaning(code));
    if !said.is_empty() {
        let mut said = said.join(" / ");
        if said.len() > 400 {
            let cut = (0..=400)
                .rev()
                .find(|&i| said.is_char_boundary(i))
                .unwrap_or(0);
            said.truncate(cut);
            said.push('…');
        }
        why.push_str(": ");
        why.push_str(&said);
    }
    Err(why)
}

/// The protocol version in `--version` output, as ftpsync parses it.
pub fn protocol_of(version_text: &str) -> Option<u32> {
    let re = Regex::new(r"protocol[ ]+version[ ]+([0-9]+)").expect("static regex");
    re.captures(version_text)?.get(1)?.as_str().parse().ok()
}

/// The transfer speed of the last rsync run in KiB/s, read from the last two lines
/// of its log file (`... 123456.78 bytes/sec`), as ftpsync logs it.
pub fn last_speed_kib(log_rsync: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(log_rsync).ok()?;
    let re = Regex::new(r".* ([0-9.,]+) bytes/sec").expect("static regex");
    let lines: Vec<&str> = text.lines().collect();
    let tail = &lines[lines.len().saturating_sub(2)..];
    let speed = tail
        .iter()
        .rev()
        .find_map(|l| re.captures(l))?
        .get(1)?
        .as_str();
    let whole: String = speed
        .split('.')
        .next()?
        .chars()
        .filter(|c| *c != ',')
        .collect();
    Some(whole.parse::<u64>().ok()? / 1024)
}

/// Sum of the `received N bytes` figures of every run in an rsync log file.
pub fn total_bytes_received(log_rsync: &Path) -> u64 {
    let Ok(text) = std::fs::read_to_string(log_rsync) else {
        return 0;
    };
    let re = Regex::new(r"(^|.* )sent ([0-9]+) bytes  received ([0-9]+) bytes").expect("static");
    text.lines()
        .filter_map(|l| re.captures(l))
        .filter_map(|c| c.get(3)?.as_str().parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_ftpsync() {
        assert_eq!(classify(0), Outcome::Ok);
        assert_eq!(classify(24), Outcome::Ok);
        assert_eq!(classify(23), Outcome::RetryIfPushed);
        assert_eq!(classify(30), Outcome::RetryIfPushed);
        for code in [1, 5, 10, 12, 25, 35, 137] {
            assert_eq!(classify(code), Outcome::Failed, "code {code}");
        }
        assert_eq!(meaning(137), "killed by signal 9");
    }

    #[test]
    fn figures_from_the_log_file() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("rsync.log");
        std::fs::write(
            &log,
            "2026/11/23 09:00:00 [10] sent 100 bytes  received 2000 bytes  4096.00 bytes/sec\n\
             2026/11/23 09:00:00 [10] total size is 5  speedup is 1.00\n\
             2026/11/23 09:00:01 [11] sent 10 bytes  received 48 bytes  20480.00 bytes/sec\n\
             2026/11/23 09:00:01 [11] total size is 5  speedup is 1.00\n",
        )
        .unwrap();
        assert_eq!(total_bytes_received(&log), 2048);
        assert_eq!(last_speed_kib(&log), Some(20));
    }
}
