//! A download's bytes written and hashed on blocking threads while the next
//! ones arrive: one thread alone drives every download, and writing plus
//! SHA-256 of a large file would otherwise hold it (and every other
//! download) up.
//!
//! Writing and hashing each have a thread of their own, fed the same chunks
//! (shared, not copied): SHA-256 runs at about the speed of writing to a
//! fast disk or tmpfs, so a single large file goes twice as fast when they
//! overlap than when one thread does both in turn.

use std::fs::File;
use std::io::{self, Write};

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{self, Receiver, Sender};
use tokio::task::JoinHandle;

/// Chunks waiting for each thread: bounds memory per download.
const QUEUE: usize = 16;

pub struct Sink {
    to_writer: Sender<Bytes>,
    to_hasher: Sender<Bytes>,
    writer: JoinHandle<io::Result<File>>,
    hasher: JoinHandle<Sha256>,
}

impl Sink {
    /// Append to `file` (at its offset), going on with `hasher`.
    pub fn start(file: File, hasher: Sha256) -> Sink {
        let (to_writer, chunks) = mpsc::channel::<Bytes>(QUEUE);
        let writer = tokio::task::spawn_blocking(move || write(file, chunks));
        let (to_hasher, chunks) = mpsc::channel::<Bytes>(QUEUE);
        let hasher = tokio::task::spawn_blocking(move || hash(hasher, chunks));
        Sink {
            to_writer,
            to_hasher,
            writer,
            hasher,
        }
    }

    /// False when the writer stopped (a write failed): [`Sink::finish`] says why.
    pub async fn write(&self, chunk: Bytes) -> bool {
        // The hasher only stops when the writer has (its channel is dropped
        // in `finish`): the writer's answer is the one that counts.
        let _ = self.to_hasher.send(chunk.clone()).await;
        self.to_writer.send(chunk).await.is_ok()
    }

    /// Everything sent is written and hashed.
    pub async fn finish(self) -> io::Result<(File, Sha256)> {
        drop(self.to_writer);
        drop(self.to_hasher);
        let hasher = self.hasher.await.map_err(io::Error::other)?;
        let file = self.writer.await.map_err(io::Error::other)??;
        Ok((file, hasher))
    }
}

fn write(mut file: File, mut chunks: Receiver<Bytes>) -> io::Result<File> {
    while let Some(chunk) = chunks.blocking_recv() {
        file.write_all(&chunk)?;
    }
    Ok(file)
}

fn hash(mut hasher: Sha256, mut chunks: Receiver<Bytes>) -> Sha256 {
    while let Some(chunk) = chunks.blocking_recv() {
        hasher.update(&chunk);
    }
    hasher
}
