//! KRFOSS's dsync manual, as its users paste it (issue 12). Every example
//! below is copied verbatim from the manual (Korean comments and all); the
//! only change a test makes is where the mirrors live (`/mirror…` becomes a
//! folder of the test) and, where a test syncs, the intranet address (a
//! real rsync daemon on 127.0.0.1 instead of 10.1.1.50).
//!
//! The DTP host guide's files (list.conf, firewall.conf, motd.conf) are
//! tested with the DTP service in tests/dtp_guide.rs.

mod support;

use std::path::Path;
use std::process::Output;

use support::archive::{self, ArchiveSpec};
use support::mirrors;
use support::site::{Site, assert_success};

/// The manual's whole `xync.conf` ("dsync의 설정파일인 xync.conf는 어떻게 구성하나요?").
const XYNC_CONF: &str = r#"# 전역 설정 파일 (xync.conf)
# 생성 시간: 2023-10-01 00:00:00

# 동시에 실행할 동기화 프로세스 수 (1~100, 기본값: 1)
# 서버 성능에 따라 조정하세요. 현재 서버에 %d개 CPU 코어가 있습니다.
syncps=1

# 동기화에 사용할 IP 주소 목록 (쉼표로 구분)
# 여러 회선이 있는 경우, 모든 회선의 대역폭을 활용할 수 있습니다.
# ipadd=192.168.0.102, 192.168.1.2, 192.168.2.1

# 인트라넷 모드 활성화 (true/false, 기본값: false)
# API 서버 대신 intradd 설정과 저장소 이름을 조합하여 rsync URL 구성
intra=false

# 로그 설정
# 저장소별 로그 디렉토리 사용 (true/false, 기본값: false)
logdir=false

# 타임스탬프 형식의 로그 파일 이름 사용 (true/false, 기본값: false)
logtime=false

# rsync 에러 무시 및 임시 파일 제외 설정 (true/false, 기본값: false)
# 활성화하면 임시 파일과 에러를 무시하고 계속 진행합니다.
pass-error-temp=false

# ROKFOSS 동기화 모드 (true/false, 기본값: false)
# ROKFOSS 미러 프로젝트에 참여한 경우에만 사용하세요. 그외에는 필요가 없습니다.
rokfoss-sync=false

# 웹훅 알림 URL (동기화 결과가 이 URL로 전송됨)
# webhookurl=https://hooks.slack.com/services/xxxx/yyyy/zzzz
# webhookurl=https://discord.com/api/webhooks/xxxx/yyyy

# 동기화 결과값을 저장하는 폴더
# 이 폴더 내 생성되는 파일을 이용하여 실시간으로 동기화 상태를 표시할 수 있습니다.
status=/mirror
"#;

/// "일반모드": two lines.
const GENERAL: &str = "repo=kali\nsave=/mirrors/kali\n";

/// "ftpsync 모드".
const FTPSYNC_MODE: &str = r#"repo=kali
save=/mirrors/kali
ftpsync=true

MIRRORNAME="mirror.krfoss.org"
TO="/mirrors/kali/"

RSYNC_HOST="archive.kali.org"
RSYNC_PATH="kali"
INFO_COUNTRY=KR
"#;

/// The intranet example under "intra", with intra=true in xync.conf.
const INTRANET: &str = r#"# kali.conf 예시
repo=kali
save=/mirror/kali
ftpsync=true
# 인트라넷 내부 미러 서버 주소
intraadd=10.1.1.50
"#;

/// "각 저장소 설정 파일은 어떻게 구성하나요?"
const UBUNTU: &str = "repo=ubuntu\nsave=/mirror/ubuntu\ntimeset=00,06,12,18\n";

/// The manual's xync.conf with the values it shows one at a time set as it
/// shows them: `syncps=20`, `ipadd` without spaces (or, uncommented, its
/// sample's list with spaces), logdir with logtime, pass-error-temp.
fn xync_as_tuned(ipadd: &str) -> String {
    [
        ("syncps=1", "syncps=20"),
        ("# ipadd=192.168.0.102, 192.168.1.2, 192.168.2.1", ipadd),
        ("logdir=false", "logdir=true"),
        ("logtime=false", "logtime=true"),
        ("pass-error-temp=false", "pass-error-temp=true"),
    ]
    .iter()
    .fold(XYNC_CONF.to_string(), |text, (from, to)| {
        assert!(text.contains(from), "{from}");
        text.replace(from, to)
    })
}

/// `text` with the manual's mirror folders moved under `root` (and created,
/// as an operator mounts them before the first sync).
fn localize(text: &str, root: &Path) -> String {
    let moved = text
        .replace("/mirrors/", &format!("{}/mirrors/", root.display()))
        .replace("=/mirror", &format!("={}/mirror", root.display()));
    for folder in ["mirror/kali", "mirror/ubuntu", "mirrors/kali"] {
        std::fs::create_dir_all(root.join(folder)).unwrap();
    }
    moved
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `dsync -test -offline` on a home holding `xync` and one repository file.
fn test_offline(xync: &str, name: &str, repo: &str) -> (Output, Site) {
    let site = Site::new();
    site.xync(&localize(xync, site.root()));
    let file = site.home().join("repos").join(format!("{name}.conf"));
    std::fs::write(file, localize(repo, site.root())).unwrap();
    (site.run(&["-test", "-offline"]), site)
}

#[test]
fn every_repository_example_of_the_manual_passes_dsync_test() {
    // The manual's address lists in both its spellings; with addresses this
    // machine has (every 127.x is loopback): -test binds each to check it.
    let tuned = xync_as_tuned("ipadd=127.0.0.1,127.0.0.2,127.0.0.3");
    let spaced = xync_as_tuned("ipadd=127.0.0.4, 127.0.0.5, 127.0.0.6");
    for (xync, name, repo) in [
        (XYNC_CONF, "kali", GENERAL),
        (XYNC_CONF, "kali", FTPSYNC_MODE),
        (&tuned, "ubuntu", UBUNTU),
        (&spaced, "kali", GENERAL),
        (
            &XYNC_CONF.replace("intra=false", "intra=true"),
            "kali",
            INTRANET,
        ),
    ] {
        let (out, site) = test_offline(xync, name, repo);
        let text = said(&out);
        assert_success(&out);
        assert!(!text.contains(": error:"), "{repo}\n{text}");
        assert!(
            text.contains("dsync -test: 0 errors, 0 warnings") || text.contains("no problems"),
            "{repo}\n{text}"
        );
        // What -test says each repository will do, and from where.
        let mirror = site.root().join(if repo.contains("/mirrors/") {
            "mirrors"
        } else {
            "mirror"
        });
        let into = format!("into {}/{name}", mirror.display());
        let plan = text
            .lines()
            .find(|l| l.starts_with(&format!("dsync -test: {name}: ")))
            .unwrap_or_else(|| panic!("no plan line for {name}:\n{text}"));
        assert!(plan.contains(&into), "{plan}");
        if repo == INTRANET {
            assert!(
                plan.contains("ftpsync's two stages from rsync://10.1.1.50/kali/ (intranet mode: intradd=10.1.1.50 in "),
                "{plan}"
            );
        }
        if repo == FTPSYNC_MODE {
            assert!(
                plan.contains("from archive.kali.org::kali (RSYNC_HOST of the ftpsync block)"),
                "{plan}"
            );
        }
    }
}

/// `ipadd=` with an address this machine does not have: every rsync from it
/// would fail with exit 10; -test names it before that happens.
#[test]
fn an_ipadd_address_this_machine_does_not_have_is_named_by_test() {
    let xync = xync_as_tuned("ipadd=127.0.0.1, 203.0.113.77");
    let (out, _site) = test_offline(&xync, "kali", GENERAL);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains("ipadd: 203.0.113.77 is not an address of this machine (cannot bind it: "),
        "{text}"
    );
    assert!(!text.contains("ipadd: 127.0.0.1"), "{text}");
}

/// KRFOSS's DTP guide recommends a plugin (`plugins/user-startup.dsp`) to
/// start the service without root: -test names it, with what to use instead.
#[test]
fn krfoss_plugin_files_are_named_by_test_with_what_to_use() {
    let site = Site::new();
    site.xync(&localize(XYNC_CONF, site.root()));
    std::fs::write(
        site.home().join("repos/kali.conf"),
        localize(GENERAL, site.root()),
    )
    .unwrap();
    std::fs::create_dir_all(site.home().join("plugins")).unwrap();
    let plugin = site.home().join("plugins/user-startup.dsp");
    std::fs::write(&plugin, "kind=script\n").unwrap();
    let out = site.run(&["-test", "-offline"]);
    let text = said(&out);
    assert_success(&out);
    assert!(
        text.contains(&format!(
            "{}:0: warning: KRFOSS plugin files (*.dsp) are not supported",
            plugin.display()
        )) && text.contains("dsync -startup"),
        "{text}"
    );
}

#[test]
fn without_intra_true_the_intranet_example_says_where_it_would_sync_from() {
    // intra=false (the manual's default): the catalog decides, and -test says
    // that intraadd= is unused and why.
    let (out, _site) = test_offline(XYNC_CONF, "kali", INTRANET);
    let text = said(&out);
    assert_success(&out);
    assert!(
        text.contains("intradd= is not used: xync.conf does not set intra=true"),
        "{text}"
    );
    assert!(text.contains("(the upstream catalog)"), "{text}");
}

/// xync.conf's `intradd=` while `intra=false` would silently mirror from a
/// public host: `-test` and the repository's log both say so, with the fix.
#[test]
fn xync_intradd_without_intra_true_is_named_by_test_and_in_the_log() {
    let mut site = Site::new();
    let (up, port) = kali_upstream(&mut site);
    let xync = localize(XYNC_CONF, site.root());
    site.xync(&format!("{xync}intradd=127.0.0.1:{port}\n"));
    let repo = format!(
        "{}src=rsync://127.0.0.1:{port}/kali/\n",
        localize(GENERAL, site.root())
    );
    std::fs::write(site.home().join("repos/kali.conf"), repo).unwrap();

    let out = site.run(&["-test", "-offline"]);
    let text = said(&out);
    assert!(
        text.contains(&format!(
            "intradd=127.0.0.1:{port} is not used while intra=false (the default)"
        )) && text.contains("add intra=true to "),
        "{text}"
    );
    assert_success(&site.run(&["-sync", "kali"]));
    let diff = mirrors::differences(&up, &site.root().join("mirrors/kali"));
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    let log = std::fs::read_to_string(site.home().join("logs/kali.log")).unwrap();
    assert!(
        log.contains(&format!(
            "warning: intradd=127.0.0.1:{port} is not used while xync.conf has intra=false"
        )),
        "{log}"
    );
}

/// A Debian-style archive served as module `kali` on 127.0.0.1.
fn kali_upstream(site: &mut Site) -> (std::path::PathBuf, u16) {
    let up = site.root().join("up/kali");
    archive::write_revision(&up, &ArchiveSpec::default(), 1).unwrap();
    (up, site.serve())
}

/// The manual: "이렇게 설정하면 … `rsync://10.1.1.50/kali`와 같은 주소로 동기화가
/// 진행됩니다." With ftpsync=true and no RSYNC_HOST, that is ftpsync's
/// two-stage sync from the intranet address.
#[test]
fn the_intranet_example_syncs_in_two_stages_from_the_intranet_address() {
    let mut site = Site::new();
    let (up, port) = kali_upstream(&mut site);
    site.xync(&localize(
        &XYNC_CONF.replace("intra=false", "intra=true"),
        site.root(),
    ));
    let repo = localize(INTRANET, site.root()).replace("10.1.1.50", &format!("127.0.0.1:{port}"));
    std::fs::write(site.home().join("repos/kali.conf"), repo).unwrap();

    assert_success(&site.run(&["-sync", "kali"]));
    let mirror = site.root().join("mirror/kali");
    let diff = mirrors::differences(&up, &mirror);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    // ftpsync's engine ran: both stages, from the intranet address, and its trace.
    let log = std::fs::read_to_string(site.home().join("logs/kali.log.0")).unwrap();
    assert!(log.contains("Running stage1: "), "{log}");
    assert!(log.contains("Running stage2: "), "{log}");
    assert!(
        log.contains(&format!("rsync://127.0.0.1:{port}/kali/ ")),
        "{log}"
    );
    let host = dsync::host::name();
    assert!(mirror.join(format!("project/trace/{host}")).is_file());
    assert_eq!(
        std::fs::read_to_string(site.root().join("mirror/dsync-status/kali")).unwrap(),
        "1"
    );
}

/// xync.conf's `intradd=` serves every repository without its own, and with
/// intra=true it takes the place of a pasted RSYNC_HOST: the manual's
/// ftpsync-mode example then never reaches archive.kali.org.
#[test]
fn xync_intradd_takes_the_place_of_a_pasted_rsync_host() {
    let mut site = Site::new();
    let (up, port) = kali_upstream(&mut site);
    let xync = XYNC_CONF.replace("intra=false", "intra=true");
    site.xync(&format!(
        "{}intradd=127.0.0.1:{port}\n",
        localize(&xync, site.root())
    ));
    let repo = localize(FTPSYNC_MODE, site.root());
    std::fs::write(site.home().join("repos/kali.conf"), repo).unwrap();

    let out = site.run(&["-test", "-offline"]);
    assert_success(&out);
    assert!(
        said(&out).contains(&format!(
            "ftpsync's two stages from rsync://127.0.0.1:{port}/kali/ (intranet mode: intradd=127.0.0.1:{port} in "
        )),
        "{}",
        said(&out)
    );
    assert_success(&site.run(&["-sync", "kali"]));
    let mirror = site.root().join("mirrors/kali");
    let diff = mirrors::differences(&up, &mirror);
    assert!(diff.is_empty(), "{}", diff.join("\n"));
    // The block's own settings still hold: MIRRORNAME names the trace.
    let trace = std::fs::read_to_string(mirror.join("project/trace/mirror.krfoss.org")).unwrap();
    assert!(trace.contains("Upstream-mirror: 127.0.0.1"), "{trace}");
}

/// KRFOSS's mirror guide: `./dsync -test` once (it makes `~/dxync`), then
/// `cd dxync` and `cat > kali.conf` right beside xync.conf. That file is a
/// repository like one in `repos/`: `-test` plans it and `-sync` mirrors it;
/// one name in both places is an error naming both files.
#[test]
fn repository_files_beside_xync_conf_are_read_as_the_mirror_guide_writes_them() {
    let mut site = Site::new();
    let (up, port) = kali_upstream(&mut site);
    let xync = localize(&XYNC_CONF.replace("intra=false", "intra=true"), site.root());
    site.xync(&format!("{xync}intradd=127.0.0.1:{port}\n"));
    let beside = site.home().join("kali.conf");
    std::fs::write(&beside, localize(GENERAL, site.root())).unwrap();

    let out = site.run(&["-test", "-offline"]);
    assert_success(&out);
    assert!(said(&out).contains("dsync -test: kali: "), "{}", said(&out));
    assert!(!said(&out).contains("no repositories"), "{}", said(&out));
    assert_success(&site.run(&["-sync", "kali"]));
    let diff = mirrors::differences(&up, &site.root().join("mirrors/kali"));
    assert!(diff.is_empty(), "{}", diff.join("\n"));

    let in_repos = site.home().join("repos/kali.conf");
    std::fs::write(&in_repos, localize(GENERAL, site.root())).unwrap();
    let out = site.run(&["-test", "-offline"]);
    let text = said(&out);
    assert_eq!(out.status.code(), Some(78), "{text}");
    assert!(
        text.contains(&format!(
            "{} and {} are both repository files of the same name: neither is used",
            beside.display(),
            in_repos.display()
        )),
        "{text}"
    );
}
