//! Live progress of running syncs.
//!
//! A worker runs rsync with `--info=progress2`, keeps rsync's progress lines
//! out of the log and writes the latest one, parsed, to `run/NAME.progress`
//! (at most twice a second). The scheduler shows those files as a bar per
//! running repository when its output is a terminal, and prints one plain
//! line per start and end otherwise (cron mail, `-nolog`'s log file).

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One rsync `--info=progress2` line, e.g.
/// `   1081344  36%  1000.98kB/s    0:00:01 (xfr#1, to-chk=0/2)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes transferred so far.
    pub bytes: u64,
    pub percent: u8,
    /// As rsync prints it (`1.01MB/s`).
    pub rate: String,
    /// Time left as rsync estimates it (`0:00:12`), or elapsed once done.
    pub eta: String,
    /// Files transferred so far (`xfr#`).
    pub files: u64,
    /// Files still to check and the total known so far (`to-chk=R/T`).
    pub to_check: Option<(u64, u64)>,
}

impl Progress {
    /// Parse a progress2 line; anything else (file names, `--stats`) is `None`.
    pub fn parse(line: &str) -> Option<Progress> {
        let mut words = line.split_whitespace();
        let bytes = words.next()?.replace(',', "").parse().ok()?;
        let percent = words.next()?.strip_suffix('%')?.parse().ok()?;
        let rate = words.next().filter(|r| r.ends_with("/s"))?.to_string();
        let eta = words.next().filter(|e| e.contains(':'))?.to_string();
        let mut progress = Progress {
            bytes,
            percent,
            rate,
            eta,
            ..Progress::default()
        };
        for word in words {
            let word = word.trim_matches(|c| matches!(c, '(' | ')' | ','));
            if let Some(n) = word.strip_prefix("xfr#") {
                progress.files = n.parse().unwrap_or(0);
            } else if let Some(counts) = word
                .strip_prefix("to-chk=")
                .or_else(|| word.strip_prefix("ir-chk="))
            {
                let (left, total) = counts.split_once('/')?;
                progress.to_check = Some((left.parse().ok()?, total.parse().ok()?));
            }
        }
        Some(progress)
    }

    /// The one-line form kept in `run/NAME.progress`.
    pub fn to_line(&self) -> String {
        let (left, total) = self.to_check.unwrap_or((0, 0));
        format!(
            "bytes={} percent={} rate={} eta={} files={} left={left} total={total}\n",
            self.bytes, self.percent, self.rate, self.eta, self.files
        )
    }

    pub fn from_line(line: &str) -> Option<Progress> {
        let fields: HashMap<&str, &str> = line
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .collect();
        let number = |key: &str| fields.get(key).and_then(|v| v.parse::<u64>().ok());
        let total = number("total").unwrap_or(0);
        Some(Progress {
            bytes: number("bytes")?,
            percent: u8::try_from(number("percent")?).ok()?,
            rate: fields.get("rate")?.to_string(),
            eta: fields.get("eta")?.to_string(),
            files: number("files").unwrap_or(0),
            to_check: (total > 0).then(|| (number("left").unwrap_or(0), total)),
        })
    }

    /// What a progress bar shows beside the repository's name.
    pub fn summary(&self) -> String {
        let checked = match self.to_check {
            Some((left, total)) => format!(", {}/{total} checked", total - left.min(total)),
            None => String::new(),
        };
        format!(
            "{} files, {}, {}, ETA {}{checked}",
            self.files,
            indicatif::HumanBytes(self.bytes),
            self.rate,
            self.eta
        )
    }
}

/// `run/NAME.progress`.
pub fn file(run_dir: &Path, name: &str) -> PathBuf {
    run_dir.join(format!("{name}.progress"))
}

/// Copy rsync's standard output into `log`, keeping progress lines out of it
/// and writing the latest to `progress_file` (twice a second at most). rsync
/// ends a progress update with `\r`, other lines with `\n`. Returns the
/// regular-file count of rsync's `--stats`, when it printed them.
pub fn split_output(
    rsync_stdout: impl io::Read,
    mut log: impl Write,
    progress_file: &Path,
) -> io::Result<Option<u64>> {
    let mut reader = io::BufReader::new(rsync_stdout);
    let mut segment = Vec::new();
    let mut last_write: Option<Instant> = None;
    let mut pending: Option<Progress> = None;
    let mut regular_files = None;
    loop {
        segment.clear();
        let n = read_segment(&mut reader, &mut segment)?;
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&segment);
        let text = text.trim_end_matches(['\r', '\n']);
        match Progress::parse(text) {
            Some(progress) => {
                if last_write.is_none_or(|t| t.elapsed() >= Duration::from_millis(500)) {
                    write_atomically(progress_file, &progress.to_line())?;
                    last_write = Some(Instant::now());
                    pending = None;
                } else {
                    pending = Some(progress);
                }
            }
            None if text.trim().is_empty() => {}
            None => {
                if let Some(n) = crate::shrink::rsync_stats_regular_files(text) {
                    regular_files = Some(n);
                }
                writeln!(log, "{text}")?
            }
        }
    }
    if let Some(progress) = pending {
        write_atomically(progress_file, &progress.to_line())?;
    }
    Ok(regular_files)
}

/// Read up to and including the next `\r` or `\n`.
fn read_segment(reader: &mut impl BufRead, out: &mut Vec<u8>) -> io::Result<usize> {
    let mut total = 0;
    loop {
        let available = reader.fill_buf()?;
        if available.is_empty() {
            return Ok(total);
        }
        match available.iter().position(|&b| b == b'\r' || b == b'\n') {
            Some(i) => {
                out.extend_from_slice(&available[..=i]);
                reader.consume(i + 1);
                return Ok(total + i + 1);
            }
            None => {
                let len = available.len();
                out.extend_from_slice(available);
                reader.consume(len);
                total += len;
            }
        }
    }
}

/// Readers never see half a line: write a sibling, then rename over.
fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let tmp = path.with_extension("progress.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// How the scheduler reports: bars on a terminal, plain lines elsewhere.
pub enum Display {
    Terminal {
        bars: MultiProgress,
        running: HashMap<String, ProgressBar>,
        run_dir: PathBuf,
    },
    Plain,
}

impl Display {
    /// Bars when standard output is a terminal (and `TERM` is not `dumb`).
    pub fn new(run_dir: &Path) -> Display {
        let term_ok = std::env::var("TERM").map_or(true, |t| t != "dumb");
        if term_ok && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            Display::Terminal {
                bars: MultiProgress::with_draw_target(ProgressDrawTarget::stdout_with_hz(4)),
                running: HashMap::new(),
                run_dir: run_dir.to_path_buf(),
            }
        } else {
            Display::Plain
        }
    }

    pub fn started(&mut self, name: &str, address: Option<&str>) {
        let via = address.map(|a| format!(" from {a}")).unwrap_or_default();
        match self {
            Display::Terminal { bars, running, .. } => {
                let bar = bars.add(ProgressBar::new(100));
                bar.set_style(
                    ProgressStyle::with_template("{prefix:>16.bold} [{bar:25}] {pos:>3}% {msg}")
                        .expect("template is valid")
                        .progress_chars("=> "),
                );
                bar.set_prefix(name.to_string());
                bar.set_message(format!("starting{via}"));
                running.insert(name.to_string(), bar);
            }
            Display::Plain => println!("dsync: {name}: sync started{via}"),
        }
    }

    /// Refresh every bar from its progress file.
    pub fn tick(&mut self) {
        let Display::Terminal {
            running, run_dir, ..
        } = self
        else {
            return;
        };
        for (name, bar) in running.iter() {
            let line = std::fs::read_to_string(file(run_dir, name)).unwrap_or_default();
            if let Some(progress) = Progress::from_line(&line) {
                bar.set_position(u64::from(progress.percent));
                bar.set_message(progress.summary());
            }
        }
    }

    /// A sync ended: `line` is its result (`NAME: success`).
    pub fn finished(&mut self, name: &str, line: &str) {
        match self {
            Display::Terminal { bars, running, .. } => {
                if let Some(bar) = running.remove(name) {
                    bar.finish_and_clear();
                    bars.remove(&bar);
                }
                let _ = bars.println(line);
            }
            Display::Plain => println!("{line}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress2_lines() {
        let p = Progress::parse("      3000000 100%    1.01MB/s    0:00:02 (xfr#1, to-chk=0/2)")
            .unwrap();
        assert_eq!(p.bytes, 3_000_000);
        assert_eq!(p.percent, 100);
        assert_eq!(p.rate, "1.01MB/s");
        assert_eq!(p.eta, "0:00:02");
        assert_eq!(p.files, 1);
        assert_eq!(p.to_check, Some((0, 2)));
        assert_eq!(Progress::from_line(&p.to_line()), Some(p));
        let p = Progress::parse("  32768   1%    0.00kB/s    0:00:00").unwrap();
        assert_eq!((p.files, p.to_check), (0, None));
        assert_eq!(Progress::parse("Number of files: 2 (reg: 1, dir: 1)"), None);
        assert_eq!(Progress::parse("sub/file"), None);
        assert_eq!(Progress::parse("12 files to consider"), None);
    }

    #[test]
    fn progress_stays_out_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("r.progress");
        let out = "\r  32768   1%    0.00kB/s    0:00:00  \r  3000000 100%  1.01MB/s  0:00:02 (xfr#1, to-chk=0/2)\n\nNumber of files: 2\nsub/file\n";
        let mut log = Vec::new();
        assert_eq!(
            split_output(out.as_bytes(), &mut log, &file).unwrap(),
            Some(0)
        );
        assert_eq!(
            String::from_utf8(log).unwrap(),
            "Number of files: 2\nsub/file\n"
        );
        let last = Progress::from_line(&std::fs::read_to_string(&file).unwrap()).unwrap();
        assert_eq!(last.percent, 100);
    }
}
