//! The DTP manifest `data.dsync` end to end: generated from real trees with
//! hostile names, byte-for-byte deterministic, every kind of bad manifest
//! refused (bombs and lying headers without the memory they ask for), the hash
//! cache reused only when safe, and `dsync -gendsync` through the binary.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::ffi::{CString, OsStr};
use std::fs;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use dsync::dtp::manifest::{
    Kind, Limits, Manifest, ManifestError, generate, generate_with_stats, install, install_bytes,
    is_excluded, read_header,
};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------- helpers

/// Records the largest single allocation of the current thread, so a test can
/// show that a lying header does not make the reader reserve what it claims.
struct Tracking;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Tracking = Tracking;

/// `f`'s result and the largest allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    let out = f();
    (out, LARGEST.with(Cell::get))
}

fn os(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Files changed less than two seconds before a generation are hashed again
/// next time rather than cached (the racy-timestamp rule); tests that count
/// reuse let the tree settle first.
fn settle() {
    std::thread::sleep(Duration::from_millis(2100));
}

fn set_mtime(path: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    fs::File::open(path).unwrap().set_modified(t).unwrap();
}

/// A symlink's own mtime (std has no way to set it).
fn set_link_mtime(path: &Path, secs: i64) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let t = libc::timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    // SAFETY: a valid NUL-terminated path and two timespecs.
    let rc = unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            c.as_ptr(),
            [t, t].as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    assert_eq!(rc, 0, "utimensat {}", path.display());
}

fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
    Manifest::decode(bytes, &Limits::default())
}

fn zst(text: &str) -> Vec<u8> {
    zstd::encode_all(text.as_bytes(), 3).unwrap()
}

/// A manifest text whose header is right for `body` (entries, bytes, digest).
fn text_for(body: &str) -> String {
    let entries = body.lines().count();
    let bytes: u64 = body
        .lines()
        .filter(|l| l.starts_with("f "))
        .filter_map(|l| l.split(' ').nth(2)?.parse::<u64>().ok())
        .sum();
    format!(
        "DSYNC 1\nrepo test\nentries {entries}\nbytes {bytes}\ngenerated 1763900000\ndigest sha256:{}\n\n{body}",
        hex(&sha(body.as_bytes()))
    )
}

fn invalid_line(result: Result<Manifest, ManifestError>) -> (u64, String) {
    match result {
        Err(ManifestError::Invalid { line, reason }) => (line, reason),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

const H: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

// ------------------------------------------------------------ determinism

/// The same content and times, created in the order given.
fn build_tree(root: &Path, reverse: bool) {
    let mut files: Vec<(&str, &[u8])> = vec![
        ("a/one", b"1"),
        ("a/two", b"22"),
        ("a-b", b"dash"),
        ("b/c/deep", b"deep"),
        ("z", b""),
    ];
    let mut dirs = vec!["a", "b", "b/c"];
    if reverse {
        files.reverse();
        dirs.reverse();
    }
    for d in &dirs {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    for (name, content) in &files {
        fs::write(root.join(name), content).unwrap();
        fs::set_permissions(root.join(name), fs::Permissions::from_mode(0o644)).unwrap();
        set_mtime(&root.join(name), 1_700_000_000);
    }
    symlink("a/one", root.join("link")).unwrap();
    set_link_mtime(&root.join("link"), 1_700_000_001);
    // Folders last: creating inside them moved their mtimes.
    for d in ["b/c", "b", "a"] {
        fs::set_permissions(root.join(d), fs::Permissions::from_mode(0o755)).unwrap();
        set_mtime(&root.join(d), 1_700_000_002);
    }
}

#[test]
fn trees_built_in_different_orders_give_the_same_body_digest_and_bytes() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    build_tree(one.path(), false);
    build_tree(two.path(), true);
    let a = generate(one.path(), "same").unwrap();
    let mut b = generate(two.path(), "same").unwrap();
    assert_eq!(a.entries, b.entries);
    assert_eq!(a.body(), b.body());
    assert_eq!(a.header.digest, b.header.digest);
    let paths: Vec<_> = a.entries.iter().map(|e| e.path.to_str().unwrap()).collect();
    assert_eq!(
        paths,
        [
            "a", "a-b", "a/one", "a/two", "b", "b/c", "b/c/deep", "link", "z"
        ]
    );
    // Only `generated` may differ; equal values encode to equal bytes.
    b.header.generated = a.header.generated;
    assert_eq!(a, b);
    assert_eq!(a.encode(), b.encode());
    assert_eq!(a.encode(), a.clone().encode());
}

// --------------------------------------------------------- hostile names

#[test]
fn hostile_names_survive_generate_encode_decode() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let long = vec![b'n'; 255];
    let names: Vec<&[u8]> = vec![
        b"new\nline",
        b"tab\there",
        b"sp ace",
        b"100%",
        b"%41",
        b"ctl\x01\x1b\x7f",
        b"bad\xff\xfeutf8",
        "é ü".as_bytes(),
        b"-",
        &long,
    ];
    fs::create_dir(r.join("dir with\nnewline")).unwrap();
    for name in &names {
        fs::write(r.join(os(name)), *name).unwrap();
        fs::write(r.join("dir with\nnewline").join(os(name)), b"inner").unwrap();
    }
    symlink(os(b"to \n%\xff"), r.join("link")).unwrap();

    let m = generate(r, "hostile").unwrap();
    assert_eq!(m.entries.len(), 2 * names.len() + 2);
    let back = decode(&m.encode()).unwrap();
    assert_eq!(back, m);
    for name in &names {
        let entry = back
            .find(os(name))
            .unwrap_or_else(|| panic!("{name:?} missing"));
        assert_eq!(entry.sha256, Some(sha(name)), "{name:?}");
        let mut inner = b"dir with\nnewline/".to_vec();
        inner.extend_from_slice(name);
        assert_eq!(back.find(os(&inner)).unwrap().size, 5);
    }
    assert_eq!(
        back.find(Path::new("link")).unwrap().target.as_deref(),
        Some(os(b"to \n%\xff"))
    );
    // Nothing in the text can break a line or a field.
    let text = zstd::decode_all(&m.encode()[..]).unwrap();
    assert!(
        text.iter()
            .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b))
    );
    assert_eq!(
        text.iter().filter(|&&b| b == b'\n').count(),
        7 + m.entries.len()
    );
}

// --------------------------------------------------------------- refusals

#[test]
fn a_valid_hand_written_manifest_is_accepted() {
    let body = format!(
        "d 0755 - 1 - a\nf 0644 5 -3 {H} a/f\nl 0777 - 0 - a/l ../x%20y\nf 4755 0 2 {H} b\n"
    );
    let m = decode(&zst(&text_for(&body))).unwrap();
    assert_eq!(m.entries.len(), 4);
    assert_eq!(m.header.bytes, 5);
    assert_eq!(m.entries[1].mtime, -3);
    assert_eq!(m.entries[3].mode, 0o4755);
}

#[test]
fn every_malformed_manifest_is_refused_with_its_line() {
    let good_body = format!("d 0755 - 1 - a\nf 0644 5 1 {H} a/f\n");
    let good = text_for(&good_body);
    decode(&zst(&good)).unwrap();
    let with_body = |body: &str| text_for(body);
    let long_path = format!("d 0755 - 1 - {}\n", "a".repeat(4097));
    let long_component = format!("d 0755 - 1 - {}\n", "a".repeat(256));
    let huge_line = format!("d 0755 - 1 - {}\n", "a".repeat(40_000));
    let cases: Vec<(&str, String, u64)> = vec![
        ("other magic", good.replacen("DSYNC 1", "HELLO 1", 1), 1),
        ("other version", good.replacen("DSYNC 1", "DSYNC 2", 1), 1),
        ("no repo", good.replacen("repo test", "rep test", 1), 2),
        ("empty repo", good.replacen("repo test", "repo ", 1), 2),
        (
            "bad repo escape",
            good.replacen("repo test", "repo a%zz", 1),
            2,
        ),
        (
            "entries not a number",
            good.replacen("entries 2", "entries two", 1),
            3,
        ),
        (
            "entries with a leading zero",
            good.replacen("entries 2", "entries 02", 1),
            3,
        ),
        ("negative bytes", good.replacen("bytes 5", "bytes -5", 1), 4),
        (
            "generated missing",
            good.replacen("generated 1763900000", "generated", 1),
            5,
        ),
        (
            "digest upper-case",
            good.replacen("digest sha256:", "digest SHA256:", 1),
            6,
        ),
        (
            "digest short",
            good.replacen(&hex(&sha(good_body.as_bytes())), "abc", 1),
            6,
        ),
        (
            "fields out of order",
            good.replacen("entries 2\nbytes 5", "bytes 5\nentries 2", 1),
            3,
        ),
        ("no blank line", good.replacen("\n\n", "\n", 1), 7),
        ("header only, cut", "DSYNC 1\nrepo test\n".to_string(), 3),
        (
            "fewer entries than said",
            good.replacen("entries 2", "entries 3", 1),
            3,
        ),
        (
            "more entries than said",
            good.replacen("entries 2", "entries 1", 1),
            9,
        ),
        (
            "bytes do not add up",
            good.replacen("bytes 5", "bytes 6", 1),
            4,
        ),
        ("digest mismatch", good.replacen("a/f\n", "a/g\n", 1), 6),
        ("unknown type", with_body("x 0755 - 1 - a\n"), 8),
        ("mode not octal", with_body("d 0855 - 1 - a\n"), 8),
        ("mode three digits", with_body("d 755 - 1 - a\n"), 8),
        ("mode above 7777", with_body("d 17777 - 1 - a\n"), 8),
        (
            "file hash upper-case",
            with_body(&format!("f 0644 1 1 {} f\n", H.to_uppercase())),
            8,
        ),
        ("file hash short", with_body("f 0644 1 1 abcd f\n"), 8),
        ("file without hash", with_body("f 0644 1 1 - f\n"), 8),
        (
            "file size missing",
            with_body(&format!("f 0644 - 1 {H} f\n")),
            8,
        ),
        (
            "file size leading zero",
            with_body(&format!("f 0644 01 1 {H} f\n")),
            8,
        ),
        ("folder with a size", with_body("d 0755 0 1 - a\n"), 8),
        (
            "folder with a hash",
            with_body(&format!("d 0755 - 1 {H} a\n")),
            8,
        ),
        ("mtime not a number", with_body("d 0755 - x - a\n"), 8),
        ("absolute path", with_body("d 0755 - 1 - /etc\n"), 8),
        (
            "escaped absolute path",
            with_body("d 0755 - 1 - %2Fetc\n"),
            8,
        ),
        (
            "dot-dot component",
            with_body("d 0755 - 1 - a\nd 0755 - 1 - a/..\n"),
            9,
        ),
        (
            "dot-dot in the middle",
            with_body("d 0755 - 1 - a\nd 0755 - 1 - a/../b\n"),
            9,
        ),
        ("dot component", with_body("d 0755 - 1 - .\n"), 8),
        (
            "empty component",
            with_body("d 0755 - 1 - a\nd 0755 - 1 - a//b\n"),
            9,
        ),
        ("trailing slash", with_body("d 0755 - 1 - a/\n"), 8),
        ("NUL in path", with_body("d 0755 - 1 - a%00b\n"), 8),
        ("path over 4096 bytes", with_body(&long_path), 8),
        ("component over 255 bytes", with_body(&long_component), 8),
        ("bad escape in path", with_body("d 0755 - 1 - a%G1\n"), 8),
        ("raw non-ASCII byte", with_body("d 0755 - 1 - é\n"), 8),
        ("unsorted", with_body("d 0755 - 1 - b\nd 0755 - 1 - a\n"), 9),
        (
            "duplicate",
            with_body("d 0755 - 1 - a\nd 0755 - 1 - a\n"),
            9,
        ),
        (
            "unlisted parent",
            with_body(&format!("f 0644 1 1 {H} a/f\n")),
            8,
        ),
        (
            "parent is a file",
            with_body(&format!("f 0644 1 1 {H} a\nf 0644 1 1 {H} a/f\n")),
            9,
        ),
        (
            "parent is a symlink",
            with_body(&format!("l 0777 - 1 - a b\nf 0644 1 1 {H} a/f\n")),
            9,
        ),
        (
            "lists data.dsync",
            with_body(&format!("f 0644 1 1 {H} data.dsync\n")),
            8,
        ),
        (
            "lists a partial download",
            with_body(&format!("f 0644 1 1 {H} x.dsync-part\n")),
            8,
        ),
        ("symlink without target", with_body("l 0777 - 1 - a\n"), 8),
        (
            "symlink with NUL target",
            with_body("l 0777 - 1 - a x%00\n"),
            8,
        ),
        ("target on a folder", with_body("d 0755 - 1 - a b\n"), 8),
        (
            // Linux cannot create it: found only in stage two, too late.
            "symlink target of 4096 bytes",
            with_body(&format!("l 0777 - 1 - a {}\n", "t".repeat(4096))),
            8,
        ),
        ("double space", with_body("d 0755 -  1 - a\n"), 8),
        ("tab separator", with_body("d\t0755 - 1 - a\n"), 8),
        (
            "last line without newline",
            text_for("d 0755 - 1 - a\n").trim_end().to_string(),
            8,
        ),
        ("CRLF line", with_body("d 0755 - 1 - a\r\n"), 8),
        ("line over 32 KiB", with_body(&huge_line), 8),
    ];
    let mut wrong = Vec::new();
    for (what, text, want) in cases {
        match decode(&zst(&text)) {
            Err(ManifestError::Invalid { line, .. }) if line == want => {}
            other => wrong.push(format!("{what}: expected line {want}, got {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn broken_compression_is_refused() {
    let good = zst(&text_for("d 0755 - 1 - a\n"));
    let mut two_frames = good.clone();
    two_frames.extend_from_slice(&zst("more"));
    let mut garbage_after = good.clone();
    garbage_after.extend_from_slice(b"junk");
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        ("plain text", text_for("d 0755 - 1 - a\n").into_bytes()),
        ("truncated frame", good[..good.len() - 5].to_vec()),
        ("flipped byte", flipped),
        ("two frames", two_frames),
        ("garbage after the frame", garbage_after),
    ];
    for (what, bytes) in cases {
        assert!(
            matches!(decode(&bytes), Err(ManifestError::Invalid { .. })),
            "{what}: {:?}",
            decode(&bytes)
        );
    }
}

#[test]
fn a_zstd_bomb_is_refused_early() {
    // 100 MB of zeros in a few kilobytes.
    let mut zeros = std::io::repeat(0).take(100 << 20);
    let bomb = zstd::stream::encode_all(&mut zeros, 3).unwrap();
    assert!(bomb.len() < 100_000, "{}", bomb.len());
    let limits = Limits {
        max_entries: 1_000_000,
        max_bytes: 1 << 20,

        ..Limits::default()
    };
    let start = Instant::now();
    let (result, largest) = largest_allocation(|| Manifest::decode(&bomb, &limits));
    invalid_line(result);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert!(largest < 4 << 20, "largest allocation {largest}");
}

#[test]
fn a_manifest_larger_than_max_bytes_is_refused_while_reading() {
    // Well-formed lines, sorted, 2.5 MB of them: only the size limit stops it.
    let mut body = String::new();
    for i in 0..100_000 {
        body.push_str(&format!("d 0755 - 1 - d{i:07}\n"));
    }
    let bytes = zst(&text_for(&body));
    let limits = Limits {
        max_entries: 1_000_000,
        max_bytes: 1 << 20,

        ..Limits::default()
    };
    let (line, reason) = invalid_line(Manifest::decode(&bytes, &limits));
    assert!(reason.contains("limit"), "{reason}");
    assert!(line > 8 && line < 100_000, "{line}");
    // The same bytes pass with room enough.
    let roomy = Limits {
        max_bytes: 4 << 20,
        ..limits
    };
    assert_eq!(
        Manifest::decode(&bytes, &roomy).unwrap().entries.len(),
        100_000
    );
}

#[test]
fn a_header_claiming_1e8_entries_is_refused_without_allocating_them() {
    let body = "d 0755 - 1 - a\nd 0755 - 1 - b\n";
    let text = text_for(body).replacen("entries 2", "entries 100000000", 1);
    let bytes = zst(&text);

    let small = Limits {
        max_entries: 1000,
        max_bytes: 1 << 30,

        ..Limits::default()
    };
    let (result, largest) = largest_allocation(|| Manifest::decode(&bytes, &small));
    let (line, reason) = invalid_line(result);
    assert_eq!(line, 3, "{reason}");
    assert!(largest < 1 << 20, "largest allocation {largest}");

    // Even under a limit that allows it, the claim reserves nothing like 1e8 entries.
    let big = Limits {
        max_entries: 1_000_000_000,
        max_bytes: 1 << 30,

        ..Limits::default()
    };
    let (result, largest) = largest_allocation(|| Manifest::decode(&bytes, &big));
    let (line, reason) = invalid_line(result);
    assert_eq!(line, 3, "{reason}");
    assert!(largest < 4 << 20, "largest allocation {largest}");
}

// ---------------------------------------------------------------- generate

#[test]
fn excluded_files_are_never_listed() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    for dir in ["pool", ".~tmp~", "pool/.~tmp~", "pool/.dsync-tmp-dir"] {
        fs::create_dir_all(r.join(dir)).unwrap();
    }
    let excluded = [
        "data.dsync",
        ".data.dsync.tmpXYZ",
        ".dsync-cache",
        ".dsync-emoff",
        ".dsync-tmp-cache-abc",
        "pool/a.deb.dsync-part",
        "pool/.dsync-tmp-b.deb",
        "pool/.dsync-tmp-dir/c.deb",
        ".~tmp~/d.deb",
        "pool/.~tmp~/e.deb",
    ];
    let listed = [
        "pool/data.dsync",
        "pool/.dsync-cache",
        "Archive-Update-in-Progress-mirror",
        "pool/f.deb",
    ];
    for name in excluded.iter().chain(&listed) {
        fs::write(r.join(name), name).unwrap();
    }
    let m = generate(r, "t").unwrap();
    let mut paths: Vec<_> = m.entries.iter().map(|e| e.path.to_str().unwrap()).collect();
    paths.sort();
    let mut want: Vec<&str> = listed.to_vec();
    want.push("pool");
    want.sort();
    assert_eq!(paths, want);
    for name in excluded {
        assert!(is_excluded(Path::new(name)), "{name}");
    }
}

/// `n` files in 20 folders, with one old mtime; their relative paths.
fn many_files(root: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let rel = PathBuf::from(format!("d{:02}/f{i:05}", i % 20));
            fs::create_dir_all(root.join(rel.parent().unwrap())).unwrap();
            fs::write(root.join(&rel), format!("content {i}")).unwrap();
            set_mtime(&root.join(&rel), 1_600_000_000);
            rel
        })
        .collect()
}

/// A tree to generate from and, beside it (never in it), its hash cache.
fn tree_and_cache(dir: &tempfile::TempDir) -> (PathBuf, PathBuf) {
    let tree = dir.path().join("tree");
    fs::create_dir(&tree).unwrap();
    (tree, dir.path().join("cache/t"))
}

#[test]
fn regeneration_hashes_only_the_changed_files() {
    let root = tempfile::tempdir().unwrap();
    let (r, cache) = &tree_and_cache(&root);
    let files = many_files(r, 2000);
    settle();
    let (_, cold) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!((cold.files, cold.hashed, cold.reused), (2000, 2000, 0));
    assert!(cold.bytes_hashed > 2000 * 10);

    let changed: Vec<&PathBuf> = files.iter().step_by(100).collect();
    assert_eq!(changed.len(), 20);
    for rel in &changed {
        fs::write(r.join(rel), b"new content!").unwrap();
        set_mtime(&r.join(rel), 1_650_000_000);
    }
    let (m, warm) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!((warm.files, warm.hashed, warm.reused), (2000, 20, 1980));
    assert_eq!(warm.bytes_hashed, 20 * 12);
    for rel in &changed {
        let e = m.find(rel).unwrap();
        assert_eq!(e.sha256, Some(sha(b"new content!")));
        assert_eq!((e.size, e.mtime), (12, 1_650_000_000));
    }
    assert_eq!(m.find(&files[1]).unwrap().sha256, Some(sha(b"content 1")));

    // Changed within two seconds of that run, they were not trusted to the
    // cache: hashed once more by the next run, then reused.
    settle();
    let (_, stats) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!((stats.hashed, stats.reused), (20, 1980));
    let (again, stats) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!((stats.hashed, stats.reused), (0, 2000));
    assert_eq!(again.entries, m.entries);
}

#[test]
fn a_file_replaced_with_same_size_and_mtime_is_hashed_again() {
    let root = tempfile::tempdir().unwrap();
    let (r, cache) = &tree_and_cache(&root);
    fs::write(r.join("f"), b"aaaa").unwrap();
    set_mtime(&r.join("f"), 1_600_000_000);
    settle();
    let (m, _) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!(m.find(Path::new("f")).unwrap().sha256, Some(sha(b"aaaa")));

    // As rsync does: a new file beside it, same size and mtime, renamed over it.
    fs::write(r.join("f.new"), b"bbbb").unwrap();
    set_mtime(&r.join("f.new"), 1_600_000_000);
    fs::rename(r.join("f.new"), r.join("f")).unwrap();
    let (m, stats) = generate_with_stats(r, "t", Some(cache)).unwrap();
    assert_eq!((stats.hashed, stats.reused), (1, 0));
    let e = m.find(Path::new("f")).unwrap();
    assert_eq!((e.size, e.mtime), (4, 1_600_000_000));
    assert_eq!(e.sha256, Some(sha(b"bbbb")));
}

#[test]
fn a_corrupt_cache_is_ignored_and_rebuilt() {
    let root = tempfile::tempdir().unwrap();
    let (r, cache) = &tree_and_cache(&root);
    many_files(r, 50);
    settle();
    let (good, _) = generate_with_stats(r, "t", Some(cache)).unwrap();
    let intact = fs::read(cache).unwrap();
    let damaged: Vec<Vec<u8>> = vec![
        b"not a cache at all".to_vec(),
        intact[..intact.len() / 2].to_vec(),
        {
            let mut flipped = intact.clone();
            let mid = flipped.len() / 2;
            flipped[mid] ^= 0xff;
            flipped
        },
        Vec::new(),
    ];
    for bytes in damaged {
        fs::write(cache, bytes).unwrap();
        let (m, stats) = generate_with_stats(r, "t", Some(cache)).unwrap();
        assert_eq!((stats.hashed, stats.reused), (50, 0));
        assert_eq!(m.entries, good.entries);
        // Rebuilt: the next run trusts it again.
        let (_, stats) = generate_with_stats(r, "t", Some(cache)).unwrap();
        assert_eq!((stats.hashed, stats.reused), (0, 50));
    }
}

#[test]
fn an_unreadable_file_is_an_error_naming_it() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    fs::create_dir(r.join("d")).unwrap();
    fs::write(r.join("d/secret"), b"x").unwrap();
    fs::set_permissions(r.join("d/secret"), fs::Permissions::from_mode(0o000)).unwrap();
    if fs::File::open(r.join("d/secret")).is_ok() {
        return; // root reads anything: nothing to show
    }
    let e = generate(r, "t").unwrap_err();
    assert!(e.to_string().contains("d/secret"), "{e}");
}

// ----------------------------------------------------- install and header

#[test]
fn install_leaves_no_temporary_files() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    many_files(r, 10);
    let m = generate(r, "t").unwrap();
    for _ in 0..3 {
        install(r, &m).unwrap();
        install_bytes(r, &m.encode()).unwrap();
    }
    let mut names: Vec<_> = fs::read_dir(r)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('d') || n == "data.dsync")
        .collect();
    names.sort();
    assert_eq!(names, ["data.dsync"]);
    assert_eq!(decode(&fs::read(r.join("data.dsync")).unwrap()).unwrap(), m);
    // The manifest itself is not listed by the next generation.
    let again = generate(r, "t").unwrap();
    assert!(again.find(Path::new("data.dsync")).is_none());
    assert_eq!(again.header.digest, m.header.digest);
}

#[test]
fn read_header_agrees_with_decode() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    many_files(r, 30);
    install(r, &generate(r, "agree").unwrap()).unwrap();
    let file = r.join("data.dsync");
    let header = read_header(&file).unwrap();
    let full = decode(&fs::read(&file).unwrap()).unwrap();
    assert_eq!(header, full.header);
    assert_eq!(header.entries, 50);
    assert_eq!(header.repo, "agree");
    assert!(header.etag().starts_with("\"sha256:") && header.etag().ends_with('"'));
    assert_eq!(
        full.entries.iter().filter(|e| e.kind == Kind::Dir).count(),
        20
    );

    // A header read refuses what decode refuses in the header.
    fs::write(&file, zst("DSYNC 9\n")).unwrap();
    assert!(matches!(
        read_header(&file),
        Err(ManifestError::Invalid { line: 1, .. })
    ));
    assert!(read_header(&r.join("missing")).is_err());
}

// --------------------------------------------------------- dsync -gendsync

fn gendsync(home: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dsync"))
        .args(["-home".as_ref(), home.as_os_str(), "-gendsync".as_ref()])
        .env_remove("DSYNC_HOME")
        .output()
        .unwrap()
}

fn repo_file(home: &Path, name: &str, text: &str) {
    fs::create_dir_all(home.join("repos")).unwrap();
    fs::write(home.join("repos").join(format!("{name}.conf")), text).unwrap();
}

#[test]
fn gendsync_writes_the_manifest_of_every_dsync_repository() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let (alpha, beta) = (top.path().join("alpha"), top.path().join("beta"));
    fs::create_dir_all(alpha.join("d")).unwrap();
    fs::write(alpha.join("d/f"), b"hello").unwrap();
    fs::create_dir_all(&beta).unwrap();
    fs::write(beta.join("g"), b"x").unwrap();
    repo_file(
        &home,
        "alpha",
        &format!("save={}\ndsync=true\n", alpha.display()),
    );
    repo_file(&home, "beta", &format!("save={}\n", beta.display()));

    let out = gendsync(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("alpha: 2 entries, 5 bytes, 1 hashed, 0 reused, in "),
        "{stdout}"
    );
    assert!(!stdout.contains("beta"), "{stdout}");
    let m = decode(&fs::read(alpha.join("data.dsync")).unwrap()).unwrap();
    assert_eq!(m.header.repo, "alpha");
    assert_eq!(m.entries.len(), 2);
    assert!(!beta.join("data.dsync").exists());
    // The lock lives in the home, not in the tree.
    assert!(home.join("run/gendsync-alpha.lock").exists());

    // Held by someone else: skipped, not failed.
    let lock = fs::File::open(home.join("run/gendsync-alpha.lock")).unwrap();
    // SAFETY: flock on a valid descriptor.
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let out = gendsync(&home);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("alpha: skipped"), "{stdout}");
}

#[test]
fn gendsync_without_a_dsync_repository_is_a_configuration_error() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let beta = top.path().join("beta");
    fs::create_dir_all(&beta).unwrap();
    repo_file(&home, "beta", &format!("save={}\n", beta.display()));
    let out = gendsync(&home);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("dsync=true"), "{stderr}");
}

#[test]
fn gendsync_reports_a_missing_save_folder_as_a_failure() {
    let top = tempfile::tempdir().unwrap();
    let home = top.path().join("home");
    let gone = top.path().join("gone");
    repo_file(
        &home,
        "gone",
        &format!("save={}\ndsync=true\n", gone.display()),
    );
    let out = gendsync(&home);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gone:"), "{stderr}");
}
