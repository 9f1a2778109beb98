//! A download's bytes written and hashed on a blocking thread while the next
//! ones arrive: one thread alone drives every download, and writing plus
//! SHA-256 of a large file would otherwise hold it (and every other
//! download) up.

use std::fs::File;
use std::io::{self, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{self, Sender};
use tokio::task::JoinHandle;

/// Chunks waiting for the writer: bounds memory per download.
const QUEUE: usize = 16;

pub struct Sink {
    tx: Sender<Bytes>,
    writer: JoinHandle<io::Result<(File, Sha256)>>,
}

impl Sink {
    /// Append to `file` (at its offset), going on with `hasher`.
    pub fn start(mut file: File, mut hasher: Sha256) -> Sink {
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUE);
        let writer = tokio::task::spawn_blocking(move || {
            while let Some(chunk) = rx.blocking_recv() {
                file.write_all(&chunk)?;
                hasher.update(&chunk);
            }
            Ok((file, hasher))
        });
        Sink { tx, writer }
    }

    /// False when the writer stopped (a write failed): [`Sink::finish`] says why.
    pub async fn write(&self, chunk: Bytes) -> bool {
        self.tx.send(chunk).await.is_ok()
    }

    /// Everything sent is written and hashed.
    pub async fn finish(self) -> io::Result<(File, Sha256)> {
        drop(self.tx);
        self.writer.await.map_err(io::Error::other)?
    }
}
