//! Where dsync will not do what Debian's ftpsync does with this config: one
//! line each, so the switch holds no surprise.

use super::{Report, Source};
use crate::ftpsync::settings::Settings;

const LABEL: &str = "differs";

pub fn lines(s: &Settings, source: &Source<'_>, report: &mut Report) {
    report.row(LABEL, shrink_guard(s.min_upstream_ratio, source));
    for (i, hook) in s.hooks.iter().enumerate() {
        if let Some(line) = hook_arguments(i + 1, hook) {
            report.row(LABEL, line);
        }
    }
    report.row(
        LABEL,
        format!(
            "trace files say `Used ftpsync version: {v}` and `Creator: ftpsync {v} (dsync {d})` \
             (ftpsync writes 20180513+nmu1, which mirror checkers do not parse)",
            v = crate::trace::FTPSYNC_VERSION,
            d = env!("CARGO_PKG_VERSION")
        ),
    );
}

/// The shrink guard as the settings have it (`MIN_UPSTREAM_RATIO`, 0 = off);
/// ftpsync has none.
fn shrink_guard(ratio: f64, source: &Source<'_>) -> String {
    if ratio <= 0.0 {
        return "shrink guard off (MIN_UPSTREAM_RATIO=0), as in ftpsync: an upstream that lost \
                its files takes the mirror's along in stage two"
            .into();
    }
    let set_where = match source.line("MIN_UPSTREAM_RATIO") {
        0 => "dsync's default".to_string(),
        n => format!("line {n}"),
    };
    format!(
        "shrink guard on (MIN_UPSTREAM_RATIO={ratio}, {set_where}): stage two (the deletions) is \
         refused when the upstream lists fewer than {}% of the mirror's files; ftpsync would \
         delete them (MIN_UPSTREAM_RATIO=0 turns the guard off). To count the mirror it runs one \
         local `rsync --dry-run` over it through $RSYNC before stage one (a wrapper in RSYNC= \
         sees that call too)",
        (ratio * 100.0).round()
    )
}

/// ftpsync word-splits `HOOKn` into its `local` line and so runs the program
/// alone (the arguments become bogus `local` words); dsync passes them.
fn hook_arguments(n: usize, hook: &str) -> Option<String> {
    let words = crate::process::command_words(hook);
    let (program, args) = words.split_first()?;
    if args.is_empty() {
        return None;
    }
    Some(format!(
        "HOOK{n} has arguments: dsync runs {program} with {}; ftpsync runs {program} without them",
        super::plan::shell_line(args)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source<'_> {
        Source {
            path: std::path::Path::new("/c/ftpsync.conf"),
            text,
            first_line: 1,
        }
    }

    #[test]
    fn shrink_guard_reads_the_setting() {
        assert!(shrink_guard(0.0, &source("")).starts_with("shrink guard off"));
        let on = shrink_guard(0.5, &source("A=1\nMIN_UPSTREAM_RATIO=0.5\n"));
        assert!(
            on.contains("MIN_UPSTREAM_RATIO=0.5, line 2") && on.contains("50%"),
            "{on}"
        );
        assert!(shrink_guard(0.5, &source("")).contains("dsync's default"));
    }

    #[test]
    fn hooks_with_arguments_only() {
        assert_eq!(hook_arguments(1, "/bin/true"), None);
        let line = hook_arguments(2, "/usr/local/bin/hook 'a b' c").unwrap();
        assert!(line.contains("with 'a b' c"), "{line}");
    }
}
