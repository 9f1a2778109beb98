//! Telling people a sync failed (or worked): webhooks and mail.
//! (CONTRACT STUB: implementation to be written.)

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

/// The JSON body for `url`: Slack's `{"text": …}` for hooks.slack.com, Discord's
/// `{"content": …}` for discord.com/discordapp.com webhooks, else a generic object
/// with every field of the event.
pub fn payload(url: &str, event: &Event) -> serde_json::Value {
    let _ = (url, event);
    todo!()
}

/// POST the payload, with a short timeout (a dead chat server must not hold up syncs).
pub fn webhook(url: &str, event: &Event) -> Result<(), NotifyError> {
    let _ = (url, event);
    todo!()
}
