//! Mail reports, as ftpsync sends them: multipart text with the logs attached.
//!
//! The message is built with lettre. Delivery goes through the local `sendmail`
//! (ftpsync's only way; path overridable with `DSYNC_SENDMAIL`), or, when
//! `SMTP_SERVER=host[:port]` is configured, straight to that SMTP relay.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{Message, SmtpTransport, Transport};

/// How long a mail transport may take before we give up on it: a hung MTA must
/// not keep a mirror locked.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot build the mail: {0}")]
    Build(String),
    #[error("cannot run {path}: {source}")]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} failed with status {status}")]
    Sendmail { path: PathBuf, status: i32 },
    #[error("{path} did not finish within {secs} s", secs = SEND_TIMEOUT.as_secs())]
    Timeout { path: PathBuf },
    #[error("SMTP delivery to {server} failed: {reason}")]
    Smtp { server: String, reason: String },
}

/// Where and how mail goes.
#[derive(Debug, Clone)]
pub struct Mailer {
    /// Recipients as configured (`MAILTO`, whitespace separated).
    pub to: Vec<String>,
    /// `host[:port]` of an SMTP relay; `None` means the local sendmail.
    pub smtp: Option<String>,
}

/// The sendmail mail goes through without `SMTP_SERVER`: `/usr/sbin/sendmail`,
/// or `DSYNC_SENDMAIL`.
pub fn sendmail_path() -> PathBuf {
    std::env::var_os("DSYNC_SENDMAIL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/sendmail"))
}

impl Mailer {
    pub fn new(mailto: &str, smtp: Option<String>) -> Mailer {
        Mailer {
            to: mailto.split_whitespace().map(str::to_string).collect(),
            smtp,
        }
    }

    /// Send a mail with text `bodies` and the files `attachments` (a file that
    /// cannot be read is replaced by a note, as ftpsync does).
    pub fn send(
        &self,
        subject: &str,
        bodies: &[String],
        attachments: &[&Path],
    ) -> Result<(), MailError> {
        if self.to.is_empty() {
            return Ok(());
        }
        let message = self.build(subject, bodies, attachments)?;
        match &self.smtp {
            Some(server) => send_smtp(server, &message),
            None => self.send_sendmail(&message.formatted()),
        }
    }

    fn build(
        &self,
        subject: &str,
        bodies: &[String],
        attachments: &[&Path],
    ) -> Result<Message, MailError> {
        let mut builder = Message::builder()
            .from(mailbox(&sender())?)
            .subject(subject)
            .header(AutoSubmitted);
        for to in &self.to {
            builder = builder.to(mailbox(to)?);
        }
        let mut parts = MultiPart::mixed().build();
        for body in bodies {
            parts = parts.singlepart(SinglePart::plain(body.clone()));
        }
        for path in attachments {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let content = std::fs::read(path)
                .unwrap_or_else(|_| format!("Failed to attach {}\n", path.display()).into_bytes());
            parts = parts.singlepart(Attachment::new(name).body(content, ContentType::TEXT_PLAIN));
        }
        builder
            .multipart(parts)
            .map_err(|e| MailError::Build(e.to_string()))
    }

    fn send_sendmail(&self, message: &[u8]) -> Result<(), MailError> {
        let path = sendmail_path();
        let spawn_err = |source| MailError::Spawn {
            path: path.clone(),
            source,
        };
        let mut cmd = Command::new(&path);
        cmd.arg("-i")
            .arg("--")
            .args(&self.to)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = crate::process::spawn(&mut cmd).map_err(spawn_err)?;
        // Dropping the pipe after writing signals end of message.
        if let Some(mut stdin) = child_stdin(&mut child) {
            let _ = stdin.write_all(message);
        }
        match child.wait_timeout(SEND_TIMEOUT).map_err(spawn_err)? {
            None => {
                let _ = child.terminate();
                Err(MailError::Timeout { path })
            }
            Some(status) if status.success() => Ok(()),
            Some(status) => Err(MailError::Sendmail {
                path,
                status: crate::process::shell_status(status),
            }),
        }
    }
}

fn child_stdin(child: &mut crate::process::GroupChild) -> Option<std::process::ChildStdin> {
    child.take_stdin()
}

fn send_smtp(server: &str, message: &Message) -> Result<(), MailError> {
    let (host, port) = match server.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(25)),
        _ => (server, 25),
    };
    let transport = SmtpTransport::builder_dangerous(host)
        .port(port)
        .timeout(Some(SEND_TIMEOUT))
        .build();
    transport
        .send(message)
        .map(|_| ())
        .map_err(|e| MailError::Smtp {
            server: server.to_string(),
            reason: e.to_string(),
        })
}

/// Mail headers need `user@domain`; a bare local name (ftpsync's default `MAILTO`
/// is `$LOGNAME`) is qualified with this host's name. Envelope recipients passed
/// to sendmail stay exactly as configured.
fn mailbox(addr: &str) -> Result<Mailbox, MailError> {
    let qualified = if addr.contains('@') {
        addr.to_string()
    } else {
        format!("{addr}@{}", crate::host::fqdn())
    };
    qualified
        .parse()
        .map_err(|e| MailError::Build(format!("bad address {addr:?}: {e}")))
}

fn sender() -> String {
    std::env::var("LOGNAME")
        .or_else(|_| std::env::var("USER"))
        .unwrap_or_else(|_| "root".into())
}

/// `Auto-Submitted: auto-generated`, as ftpsync marks its mails (RFC 3834), so
/// vacation responders stay quiet.
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".into())
    }
}
