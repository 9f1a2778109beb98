//! The accept loop: firewall (closed without a word), per-address cap and
//! descriptor budget (503) at the door, a task per connection, SIGHUP
//! reloads, SIGTERM/SIGINT stop gracefully.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use super::held_home::HeldHome;
use super::privileges::{self, Account};
use super::state::Shared;
use super::{conn, refuse, say};

/// Connection tasks still running; the stop waits for them.
#[derive(Default)]
struct Tasks {
    count: AtomicUsize,
    idle: Notify,
}

struct TaskGuard(Arc<Tasks>);

impl Tasks {
    fn enter(self: &Arc<Self>) -> TaskGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        TaskGuard(Arc::clone(self))
    }

    async fn until_idle(&self) {
        loop {
            let notified = self.idle.notified();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Accept until SIGTERM or SIGINT, then let transfers finish within the grace
/// period. `dropped`: the account a root service became.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    home: HeldHome,
    dropped: Option<Account>,
) -> std::io::Result<()> {
    let home = Arc::new(home);
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let tasks = Arc::new(Tasks::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &shared, &tasks, &stop_rx),
                Err(e) => {
                    // Out of descriptors, usually: let connections finish.
                    say(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = hup.recv() => reload(&shared, &home, dropped.as_ref()).await,
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let grace = shared.timeouts.grace;
    say(&format!(
        "stopping: no new connections; {} still open get {:.1?} to finish",
        tasks.count.load(Ordering::SeqCst),
        grace
    ));
    if tokio::time::timeout(grace, tasks.until_idle())
        .await
        .is_err()
    {
        say(&format!(
            "stopped with {} connections cut short",
            tasks.count.load(Ordering::SeqCst)
        ));
    } else {
        say("stopped");
    }
    Ok(())
}

/// The door: firewall, then the per-address cap and a descriptor for the
/// socket, then a connection task.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
    tasks: &Arc<Tasks>,
    stop: &watch::Receiver<bool>,
) {
    let ip: IpAddr = peer.ip().to_canonical();
    let config = shared.config();
    if !config.firewall.allows(ip) {
        return refuse::silently(stream, ip, &shared.log);
    }
    let Some(slot) = shared.clients.enter(ip, config.maxconn) else {
        return turn_away(stream, ip, shared);
    };
    let Ok(socket) = shared.budget.take(1) else {
        return turn_away(stream, ip, shared);
    };
    let guard = tasks.enter();
    let (shared, stop) = (Arc::clone(shared), stop.clone());
    tokio::spawn(async move {
        conn::serve(stream, ip, slot, shared, stop).await;
        drop((socket, guard));
    });
}

/// Answer 503 and close, within the descriptors kept for refusals; beyond
/// them, close at once without a word.
fn turn_away(stream: TcpStream, ip: IpAddr, shared: &Arc<Shared>) {
    let Some(permit) = shared.budget.refusal() else {
        return;
    };
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        refuse::busy(stream, ip, &shared.log).await;
        drop(permit);
    });
}

/// SIGHUP: read everything again (as the account the service runs as; a
/// root service dropped root before); keep the old configuration if the new
/// one has errors or serves a tree the service must not serve. Connections
/// keep running on the configuration they started with until their next
/// request.
async fn reload(shared: &Arc<Shared>, home: &Arc<HeldHome>, dropped: Option<&Account>) {
    let home2 = Arc::clone(home);
    let loaded = match tokio::task::spawn_blocking(move || home2.load()).await {
        Ok(loaded) => loaded,
        Err(e) => {
            say(&format!(
                "reload failed ({e}); keeping the old configuration"
            ));
            return;
        }
    };
    match shared.log.reopen() {
        Ok(_) => {}
        Err(e) => say(&format!(
            "cannot reopen the access log {} ({e}); still writing to the file it had open{}",
            shared.log.path().display(),
            match dropped {
                Some(a) => format!(
                    ". The service runs as {}: have the new log created owned by it \
                     (logrotate: create 0640 {} adm) or rotate with copytruncate",
                    a.name, a.name
                ),
                None => String::new(),
            }
        )),
    }
    match loaded {
        Ok(mut loaded) => {
            for w in &loaded.warnings {
                say(&w.to_string());
            }
            let old = shared.config();
            if loaded.config.listen != old.listen {
                say(&format!(
                    "dtp-listen is now {}, but the service keeps listening on {} until restarted",
                    loaded.config.listen, old.listen
                ));
                loaded.config.listen = old.listen;
            }
            if loaded.config.user != old.user {
                say(&format!(
                    "dtp-user is now {}, but the service keeps running as {} until restarted",
                    loaded.config.user.as_deref().unwrap_or("(unset)"),
                    privileges::current_account()
                ));
                loaded.config.user.clone_from(&old.user);
            }
            let (config, refuse) = (loaded.config, dropped.is_some());
            let (config, check) = match tokio::task::spawn_blocking(move || {
                let check = privileges::check_trees(&config, refuse);
                (config, check)
            })
            .await
            {
                Ok(checked) => checked,
                Err(e) => {
                    say(&format!(
                        "reload failed ({e}); keeping the old configuration"
                    ));
                    return;
                }
            };
            for warning in &check.warnings {
                say(warning);
            }
            if !check.refusals.is_empty() {
                for refusal in &check.refusals {
                    say(refusal);
                }
                say(
                    "reload refused: the new configuration serves what this service must not; keeping the old one",
                );
                return;
            }
            let summary = super::summary(&config);
            shared.replace(config);
            say(&format!("reloaded: {summary}"));
        }
        Err(diags) => {
            for d in &diags {
                say(&d.to_string());
            }
            match dropped {
                Some(a) => say(&format!(
                    "reload failed: the configuration has errors (read as {}, the account the service runs as); keeping the old one",
                    a.name
                )),
                None => say("reload failed: the configuration has errors; keeping the old one"),
            }
        }
    }
}
