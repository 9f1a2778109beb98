//! Telling people a sync failed (or worked): webhooks and mail.
//!
//! Webhooks get the JSON their service expects ([`payload`]): Slack and Discord a
//! one-line text, anything else a generic object with every field of the [`Event`].
//! A webhook URL's path is its secret (Slack and Discord put the token there), so
//! errors name only `scheme://host[:port]/…`.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

/// How long a webhook may take in all (connect, send, answer): a dead chat server
/// must not hold up syncs.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// Discord refuses messages longer than this many characters.
const DISCORD_MAX: usize = 2000;

/// How much of an error answer's body ends up in the error.
const BODY_EXCERPT: u64 = 200;

/// One sync's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub repo: String,
    pub ok: bool,
    /// One line: what happened (`synced in 42 s`, `rsync exit code 10: error in socket I/O`).
    pub message: String,
    pub host: String,
    /// Unix seconds.
    pub started: i64,
    pub ended: i64,
    pub exit_code: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("webhook {url}: {reason}")]
    Webhook { url: String, reason: String },
}

/// The one line people read: `✅ kali synced on mirror1 (42 s)` or
/// `❌ kali failed on mirror1: rsync exit code 10: error in socket I/O`.
pub fn text(event: &Event) -> String {
    let repo = one_line(&event.repo);
    let host = one_line(&event.host);
    if event.ok {
        let secs = event.ended.saturating_sub(event.started).max(0);
        format!("✅ {repo} synced on {host} ({secs} s)")
    } else {
        format!("❌ {repo} failed on {host}: {}", one_line(&event.message))
    }
}

/// The JSON body for `url`: Slack's `{"text": …}` for hooks.slack.com, Discord's
/// `{"content": …}` for discord.com/discordapp.com webhooks, else a generic object
/// with every field of the event.
///
/// Slack text has `&`, `<` and `>` escaped as Slack requires (else `<…>` in an error
/// message would become a link). Discord content is cut to 2000 characters and
/// carries `"allowed_mentions": {"parse": []}`, so an `@everyone` inside an error
/// message pings nobody.
pub fn payload(url: &str, event: &Event) -> Value {
    let (host, path) = host_and_path(url);
    if host == "hooks.slack.com" {
        json!({ "text": slack_escape(&text(event)) })
    } else if is_discord(&host, path) {
        json!({
            "content": truncate_chars(&text(event), DISCORD_MAX),
            "allowed_mentions": { "parse": [] },
        })
    } else {
        json!({
            "repo": event.repo,
            "ok": event.ok,
            "status": if event.ok { "success" } else { "failed" },
            "message": one_line(&event.message),
            "host": event.host,
            "started": event.started,
            "ended": event.ended,
            "exit_code": event.exit_code,
        })
    }
}

/// POST the payload, with a short timeout (a dead chat server must not hold up syncs).
pub fn webhook(url: &str, event: &Event) -> Result<(), NotifyError> {
    post_json(url, &payload(url, event), WEBHOOK_TIMEOUT)
}

/// Mail the outcome to `mailto` (whitespace-separated addresses) through sendmail,
/// or through the SMTP relay `smtp` (`host[:port]`), with `log` attached when given.
/// Subject: `[dsync@HOST] REPO: SUCCESS` or `… FAILED`.
pub fn mail(
    mailto: &str,
    smtp: Option<String>,
    event: &Event,
    log: Option<&Path>,
) -> Result<(), crate::mail::MailError> {
    let subject = format!(
        "[dsync@{}] {}: {}",
        one_line(&event.host),
        one_line(&event.repo),
        if event.ok { "SUCCESS" } else { "FAILED" }
    );
    let body = format!(
        "{}\n\nRepository: {}\nHost: {}\nStarted: {}\nEnded: {}\nExit code: {}\n",
        text(event),
        one_line(&event.repo),
        one_line(&event.host),
        local_time(event.started),
        local_time(event.ended),
        event.exit_code,
    );
    let attachments: Vec<&Path> = log.into_iter().collect();
    crate::mail::Mailer::new(mailto, smtp).send(&subject, &[body], &attachments)
}

/// Tell everyone configured about one result: `webhookurl` always, `mailto`
/// (the repository's, else the global one) on failures only, as ftpsync's
/// ERRORSONLY does. Returns what could not be sent, for the caller's log.
pub fn alert(
    global: &super::xync::Global,
    mailto: Option<&str>,
    event: &Event,
    log: Option<&Path>,
) -> Vec<String> {
    let mut failed = Vec::new();
    if let Some(url) = &global.webhookurl
        && let Err(e) = webhook(url, event)
    {
        failed.push(format!("webhook failed: {e}"));
    }
    let mailto = mailto.or(global.mailto.as_deref()).filter(|_| !event.ok);
    if let Some(mailto) = mailto
        && let Err(e) = mail(mailto, global.smtp.clone(), event, log)
    {
        failed.push(format!("mail failed: {e}"));
    }
    failed
}

fn post_json(url: &str, body: &Value, timeout: Duration) -> Result<(), NotifyError> {
    let shown = redact(url);
    let fail = |reason: String| NotifyError::Webhook {
        url: shown.clone(),
        // Transport errors may quote the URL; keep its secret path out of logs.
        reason: one_line(&reason.replace(url, &shown)),
    };
    let body = serde_json::to_vec(body).map_err(|e| fail(e.to_string()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        // A redirected POST is an error to report, not something to follow.
        .max_redirects(0)
        .build()
        .into();
    let mut response = agent
        .post(url)
        .header("Content-Type", "application/json")
        .send(&body[..])
        .map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let mut excerpt = Vec::new();
    let _ = response
        .body_mut()
        .as_reader()
        .take(BODY_EXCERPT)
        .read_to_end(&mut excerpt);
    let excerpt = String::from_utf8_lossy(&excerpt);
    let mut reason = format!("HTTP {status}");
    if !excerpt.trim().is_empty() {
        reason.push_str(": ");
        reason.push_str(excerpt.trim());
    }
    Err(fail(reason))
}

/// `text` on one line: any run of whitespace (newlines included) becomes one space,
/// other control characters are dropped.
fn one_line(text: &str) -> String {
    text.split_whitespace()
        .map(|word| word.chars().filter(|c| !c.is_control()).collect::<String>())
        .collect::<Vec<_>>()
        .join(" ")
}

fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// At most `max` characters; a cut text ends with `…` (counted in `max`).
fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some(_) => {
            let keep: String = text.chars().take(max.saturating_sub(1)).collect();
            format!("{keep}…")
        }
    }
}

/// The lower-case host (no port, user or brackets) and the path (with query) of `url`.
fn host_and_path(url: &str) -> (String, &str) {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => host_port.split(':').next().unwrap_or(host_port),
    };
    (host.trim_end_matches('.').to_ascii_lowercase(), path)
}

/// discord.com / discordapp.com (and their ptb/canary hosts) with a webhook path,
/// `/api/webhooks/…` or the versioned `/api/v10/webhooks/…`.
fn is_discord(host: &str, path: &str) -> bool {
    let discord_host = ["discord.com", "discordapp.com"]
        .iter()
        .any(|d| host == *d || host.strip_suffix(d).is_some_and(|s| s.ends_with('.')));
    let Some(rest) = path.strip_prefix("/api/") else {
        return false;
    };
    let rest = match rest.split_once('/') {
        Some((version, after))
            if version.len() > 1
                && version.starts_with('v')
                && version[1..].bytes().all(|b| b.is_ascii_digit()) =>
        {
            after
        }
        _ => rest,
    };
    discord_host && rest.starts_with("webhooks/")
}

/// `scheme://host[:port]/…`: the URL without its user, path and query.
fn redact(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let tail = if end < rest.len() { "/…" } else { "" };
    if scheme.is_empty() {
        format!("{host_port}{tail}")
    } else {
        format!("{scheme}://{host_port}{tail}")
    }
}

fn local_time(ts: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(ts, 0).single() {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S %z").to_string(),
        None => ts.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::time::Instant;

    fn event(ok: bool) -> Event {
        Event {
            repo: "kali".into(),
            ok,
            message: if ok {
                "synced in 42 s".into()
            } else {
                "rsync exit code 10: error in socket I/O".into()
            },
            host: "mirror1".into(),
            started: 1_700_000_000,
            ended: 1_700_000_042,
            exit_code: if ok { 0 } else { 10 },
        }
    }

    #[test]
    fn human_text() {
        assert_eq!(text(&event(true)), "✅ kali synced on mirror1 (42 s)");
        assert_eq!(
            text(&event(false)),
            "❌ kali failed on mirror1: rsync exit code 10: error in socket I/O"
        );
        let mut e = event(false);
        e.message = "line one\nline two\r\n\tthree\u{7}".into();
        assert_eq!(
            text(&e),
            "❌ kali failed on mirror1: line one line two three"
        );
        let mut e = event(true);
        e.ended = e.started - 5;
        assert_eq!(text(&e), "✅ kali synced on mirror1 (0 s)");
    }

    #[test]
    fn slack_shape() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXX";
        assert_eq!(
            payload(url, &event(true)),
            json!({"text": "✅ kali synced on mirror1 (42 s)"})
        );
        let mut e = event(false);
        e.message = "<b> & co".into();
        assert_eq!(
            payload("https://HOOKS.slack.com:443/x", &e)["text"],
            "❌ kali failed on mirror1: &lt;b&gt; &amp; co"
        );
    }

    #[test]
    fn discord_shape() {
        for url in [
            "https://discord.com/api/webhooks/123/abc",
            "https://discordapp.com/api/webhooks/123/abc",
            "https://canary.discord.com/api/v10/webhooks/123/abc?wait=true",
        ] {
            let p = payload(url, &event(false));
            assert_eq!(
                p["content"], "❌ kali failed on mirror1: rsync exit code 10: error in socket I/O",
                "{url}"
            );
            assert_eq!(p["allowed_mentions"], json!({"parse": []}));
            assert!(p.get("text").is_none());
        }
        // Not a webhook path, or a look-alike host: generic.
        for url in [
            "https://discord.com/other/123",
            "https://notdiscord.com/api/webhooks/1/a",
            "https://discord.com.evil.example/api/webhooks/1/a",
        ] {
            assert_eq!(payload(url, &event(false))["repo"], "kali", "{url}");
        }
    }

    #[test]
    fn discord_truncates_on_char_boundary() {
        let mut e = event(false);
        e.message = "é".repeat(3000);
        let p = payload("https://discord.com/api/webhooks/1/a", &e);
        let content = p["content"].as_str().unwrap();
        assert_eq!(content.chars().count(), 2000);
        assert!(content.ends_with("é…"));
        assert_eq!(truncate_chars("abc", 3), "abc");
        assert_eq!(truncate_chars("abcd", 3), "ab…");
    }

    #[test]
    fn generic_shape() {
        assert_eq!(
            payload("http://127.0.0.1:8080/hook", &event(false)),
            json!({
                "repo": "kali",
                "ok": false,
                "status": "failed",
                "message": "rsync exit code 10: error in socket I/O",
                "host": "mirror1",
                "started": 1_700_000_000,
                "ended": 1_700_000_042,
                "exit_code": 10,
            })
        );
        assert_eq!(
            payload("https://example.org/", &event(true))["status"],
            "success"
        );
    }

    #[test]
    fn hosts_and_redaction() {
        assert_eq!(
            host_and_path("https://user:pw@Hooks.Slack.com.:8443/services/x?y"),
            ("hooks.slack.com".to_string(), "/services/x?y")
        );
        assert_eq!(
            host_and_path("http://[::1]:80/a"),
            ("::1".to_string(), "/a")
        );
        assert_eq!(
            redact("https://u:p@hooks.slack.com/services/T/B/SECRET"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook/SECRET", listener.local_addr().unwrap());
        let began = Instant::now();
        // The listener accepts (kernel backlog) but never answers.
        let err = post_json(&url, &json!({}), Duration::from_millis(300)).unwrap_err();
        assert!(
            began.elapsed() < Duration::from_secs(5),
            "{:?}",
            began.elapsed()
        );
        let msg = err.to_string();
        assert!(!msg.contains("SECRET"), "{msg}");
        assert!(msg.to_lowercase().contains("timeout"), "{msg}");
        drop(listener);
    }

    #[test]
    fn bad_url_is_an_error_not_a_panic() {
        assert!(webhook("not a url", &event(true)).is_err());
        assert!(webhook("", &event(true)).is_err());
    }
}
