//! What a run would do: the evaluated settings that matter and both stages'
//! rsync command lines, built by `argv` exactly as the engine builds them.

use super::Report;
use crate::ftpsync::argv;
use crate::ftpsync::settings::{Settings, Transport};

/// `TO`, the upstream and how it is reached, the architecture filters, `HUB`,
/// logs and trace (hooks: with their checks, src/ftpsync/check/runtime.rs).
pub fn settings(s: &Settings, report: &mut Report) {
    report.row("TO", &s.to);
    report.row("upstream", upstream(s));
    if !s.arch_include.is_empty() {
        report.row("archs", format!("ARCH_INCLUDE={}", s.arch_include));
    } else if !s.arch_exclude.is_empty() {
        report.row("archs", format!("ARCH_EXCLUDE={}", s.arch_exclude));
    } else {
        report.row("archs", "all (neither ARCH_INCLUDE nor ARCH_EXCLUDE)");
    }
    report.row(
        "HUB",
        match s.hub {
            true => "true: runmirrors pushes the downstreams after stage two",
            false => "false",
        },
    );
    report.row(
        "logs",
        format!(
            "{} (rsync: {}, {})",
            s.log.display(),
            s.log_rsync.display(),
            s.log_rsync_error.display()
        ),
    );
    report.row(
        "trace",
        format!(
            "{}/project/trace/{}",
            s.to.trim_end_matches('/'),
            s.mirrorname
        ),
    );
}

/// `HOST::PATH` and the transport, with the user and whether a password is set.
fn upstream(s: &Settings) -> String {
    let how = match s.transport {
        Transport::Daemon => "rsync daemon",
        Transport::Ssh => "rsync over ssh",
        Transport::Ssl => "rsync over TLS (rsync-ssl-tunnel)",
    };
    let password = s
        .child_env
        .iter()
        .any(|(k, v)| k == "RSYNC_PASSWORD" && !v.is_empty());
    format!(
        "{} ({how}, RSYNC_TRANSPORT={}{})",
        s.rsync_source,
        s.transport.trace_name(),
        if password {
            ", with RSYNC_PASSWORD"
        } else {
            ""
        }
    )
}

/// Stage one and stage two, word for word (words with spaces quoted).
pub fn stages(s: &Settings, report: &mut Report) {
    let base = argv::base(s, s.rsync_protocol);
    for (label, options) in [
        ("stage 1", &s.rsync_options1),
        ("stage 2", &s.rsync_options2),
    ] {
        report.row(label, shell_line(&argv::stage(&base, options)));
    }
}

/// The argv as a line a shell would split back into the same words; only
/// words the shell would change are quoted, so the line stays readable.
pub fn shell_line(argv: &[String]) -> String {
    let plain = |w: &str| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c))
    };
    let words: Vec<String> = argv
        .iter()
        .map(|w| match plain(w) {
            true => w.clone(),
            false => shell_words::quote(w).into_owned(),
        })
        .collect();
    words.join(" ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_words_the_shell_would_change_are_quoted() {
        let argv = [
            "rsync",
            "--bwlimit=0",
            "--filter=exclude_/pool/**/*.dsc",
            "a b",
            "host::debian",
        ];
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        let line = super::shell_line(&argv);
        assert_eq!(
            line,
            "rsync --bwlimit=0 '--filter=exclude_/pool/**/*.dsc' 'a b' host::debian"
        );
        assert_eq!(shell_words::split(&line).unwrap(), argv);
    }
}
