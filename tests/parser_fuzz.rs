//! Fault case 9 of tests/README.md: the configuration parsers against
//! arbitrary and hostile input. Property tests (proptest) feed the ftpsync.conf
//! evaluator and the key=value parsers random text made mostly of the
//! characters that matter to them: they must never panic, and every problem
//! they report must point at a line of the text. Then the hostile values the
//! issue names are each refused at load with file:line.

use std::path::Path;

use dsync::manager::{repo, xync};
use dsync::shellconf::{self, Vars};
use proptest::prelude::*;

/// Text of up to ~12 lines from shell-significant characters and words.
fn shellish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("$".to_string()),
        Just("${".to_string()),
        Just("}".to_string()),
        Just("$(".to_string()),
        Just(")".to_string()),
        Just("`".to_string()),
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("\\".to_string()),
        Just("\n".to_string()),
        Just("=".to_string()),
        Just("#".to_string()),
        Just(":-".to_string()),
        Just(":=".to_string()),
        Just("export ".to_string()),
        Just(" ".to_string()),
        Just("hostname -f".to_string()),
        Just("TO".to_string()),
        Just("A".to_string()),
        "[a-zA-Z0-9_./-]{1,6}",
        any::<char>().prop_map(|c| c.to_string()),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn lines(text: &str) -> usize {
    text.split('\n').count()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn the_shell_evaluator_never_panics_and_points_inside_the_text(text in shellish()) {
        let mut vars = Vars::default();
        vars.set("HOME", "/home/m");
        if let Err(e) = shellconf::eval_str("f.conf", &text, &mut vars) {
            prop_assert!(e.line >= 1 && e.line <= lines(&text) + 1, "{e:?} for {text:?}");
            prop_assert!(e.column >= 1, "{e:?}");
            prop_assert!(!e.message.is_empty());
        }
    }

    #[test]
    fn the_key_value_parsers_never_panic_and_point_inside_the_text(text in shellish()) {
        let (_, diags) = xync::parse(Path::new("xync.conf"), &text);
        for d in diags {
            prop_assert!(d.line <= lines(&text), "{d} for {text:?}");
            prop_assert!(!d.fix.is_empty(), "{d}");
        }
        let (_, diags) = repo::parse(Path::new("r.conf"), &text);
        for d in diags {
            prop_assert!(d.line <= lines(&text), "{d} for {text:?}");
        }
    }

    #[test]
    fn any_bytes_as_a_repository_file(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = repo::parse(Path::new("r.conf"), &text);
        let _ = xync::parse(Path::new("xync.conf"), &text);
    }
}

/// Each hostile value is an error at its line.
#[test]
fn hostile_values_are_refused_at_load_with_their_line() {
    for (text, line) in [
        ("save=/\n", 1),
        ("save=/m/x\nsrc=rsync://-oProxyCommand=touch%20x/m/\n", 2),
        ("save=/m/x\nsrc=-e sh -c id\n", 2),
        ("save=/m/x\nintradd=-oProxyCommand=x\n", 2),
        ("save=/m/x\ntimeset=99999999999999999999\n", 2),
        ("save=/m/x\ndsync-url=dtp://-x/repo\n", 2),
        ("save=/m/x\npush=-oProxyCommand=x@h\n", 2),
        ("repo=../../etc\nsave=/m/x\n", 1),
        ("repo=a\nb\nsave=/m/x\n", 2),
    ] {
        let (repo, diags) = repo::parse(Path::new("r.conf"), text);
        let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
        assert!(
            repo.is_none() && !errors.is_empty(),
            "{text:?} accepted: {diags:?}"
        );
        assert!(
            errors.iter().any(|d| d.line == line),
            "{text:?}: not at line {line}: {diags:?}"
        );
    }
    for (text, line) in [
        ("syncps=99999999999999999999\n", 1),
        ("maxtime=99999999999999999999h\n", 1),
        ("ipadd=-1.2.3.4\n", 1),
        ("status=relative\n", 1),
        ("dtp-listen=[::]:99999\n", 1),
    ] {
        let (_, diags) = xync::parse(Path::new("xync.conf"), text);
        assert!(
            diags.iter().any(|d| d.is_error() && d.line == line),
            "{text:?} accepted: {diags:?}"
        );
    }
}
