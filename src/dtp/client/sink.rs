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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Seek, SeekFrom};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_chunk_is_written_and_hashed_in_order() {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(b"prefix:").unwrap();
        let sink = Sink::start(file, Sha256::new_with_prefix(b"prefix:"));
        let mut whole = b"prefix:".to_vec();
        for i in 0..100u32 {
            let chunk: Vec<u8> = (0..(1000 + i)).map(|j| (i + j) as u8).collect();
            whole.extend_from_slice(&chunk);
            assert!(sink.write(Bytes::from(chunk)).await);
        }
        let (mut file, hasher) = sink.finish().await.unwrap();
        assert_eq!(hasher.finalize(), Sha256::digest(&whole));
        let mut written = Vec::new();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.read_to_end(&mut written).unwrap();
        assert_eq!(written, whole);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_stops_the_sink_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"").unwrap();
        // Read-only: every write fails.
        let file = File::open(dir.path().join("f")).unwrap();
        let sink = Sink::start(file, Sha256::new());
        let mut accepted = 0;
        while sink.write(Bytes::from_static(b"data")).await {
            accepted += 1;
            assert!(accepted <= QUEUE + 1, "the sink kept taking chunks");
        }
        assert!(sink.finish().await.is_err());
    }
}
