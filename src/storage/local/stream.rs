//! The byte streams of the local backend: a get's body read chunk by chunk off the async
//! workers, and a put's body received, hashed and written in one pass
//! ([`write_hashed`]).

use std::fs;
use std::io::{self, Read as _};
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use sha2::Sha256;

use super::{io_error, join_error};
use crate::storage::{ByteStream, Result, StorageError};

/// Read buffer of streamed gets.
const READ_CHUNK: usize = 256 * 1024;

/// Reads the next chunk of at most [`READ_CHUNK`] of the `remaining` bytes of `file`, straight
/// into the buffer that is sent; a file that ends early is an error (it was truncated under
/// the reader), never a short body passed off as whole.
pub(super) fn read_chunk(file: &mut fs::File, remaining: u64) -> io::Result<Bytes> {
    let wanted = remaining.min(READ_CHUNK as u64);
    let mut buffer = Vec::with_capacity(usize::try_from(wanted).unwrap_or(READ_CHUNK));
    file.take(wanted).read_to_end(&mut buffer)?;
    if (buffer.len() as u64) < wanted {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the object is shorter than its size",
        ));
    }
    Ok(Bytes::from(buffer))
}

/// The body of a get: `first`, then the `remaining` bytes of `file`, one blocking read per
/// chunk (no thread is held between chunks, so a slow client holds none).
pub(super) fn chunk_stream(file: fs::File, first: Bytes, remaining: u64) -> ByteStream {
    let rest = futures::stream::try_unfold((file, remaining), |(mut file, remaining)| async move {
        if remaining == 0 {
            return Ok(None);
        }
        let (file, chunk) = tokio::task::spawn_blocking(move || {
            let chunk = read_chunk(&mut file, remaining);
            (file, chunk)
        })
        .await
        .map_err(io::Error::other)?;
        let chunk = chunk?;
        let remaining = remaining - chunk.len() as u64;
        Ok(Some((chunk, (file, remaining))))
    });
    let first = (!first.is_empty()).then_some(Ok(first));
    futures::stream::iter(first).chain(rest).boxed()
}

/// Bytes of a body gathered before they are hashed and written by one blocking step.
const WRITE_BATCH: usize = 1024 * 1024;
/// Bytes written between two early flushes of an object being stored: the disk writes while
/// the rest of the body arrives and is hashed, and the final `fsync` has little left to do.
const FLUSH_EVERY: u64 = 16 * 1024 * 1024;

/// Chunks smaller than this are gathered into one before they join a batch.
const SMALL_CHUNK: usize = 16 * 1024;

/// The next [`WRITE_BATCH`] bytes (or fewer, at the end) of `body`; empty at its end.
///
/// Chunks of at least [`SMALL_CHUNK`] bytes are kept as they came (no copy); smaller ones are
/// copied together into pieces of at least that size. A batch therefore has at most a few
/// hundred entries whatever the client sends: a body of one-byte chunks (six bytes each on the
/// wire, chunked encoding) would otherwise cost 32 bytes of `Bytes` per byte of content, held
/// for every batch in flight.
async fn next_batch(body: &mut ByteStream) -> io::Result<Vec<Bytes>> {
    let mut batch = Vec::new();
    let mut small = bytes::BytesMut::new();
    let mut size = 0;
    while size < WRITE_BATCH {
        let Some(chunk) = body.next().await else {
            break;
        };
        let chunk = chunk?;
        size += chunk.len();
        if chunk.len() >= SMALL_CHUNK {
            if !small.is_empty() {
                batch.push(small.split().freeze());
            }
            batch.push(chunk);
        } else {
            small.extend_from_slice(&chunk);
            if small.len() >= SMALL_CHUNK {
                batch.push(small.split().freeze());
            }
        }
    }
    if !small.is_empty() {
        batch.push(small.freeze());
    }
    Ok(batch)
}

/// One digest of a put, updated batch by batch by a stage of its own: MD5 and SHA-256 run
/// side by side on two blocking threads, so a put hashes at the pace of the slower of the two
/// rather than of both one after the other.
async fn digest_stage<D: Digest + Send + 'static>(
    mut digest: D,
    mut queue: tokio::sync::mpsc::Receiver<Arc<Vec<Bytes>>>,
) -> Result<D> {
    while let Some(batch) = queue.recv().await {
        digest = tokio::task::spawn_blocking(move || {
            for chunk in batch.iter() {
                digest.update(chunk);
            }
            digest
        })
        .await
        .map_err(|error| join_error(&error))?;
    }
    Ok(digest)
}

/// The writing side of a put: the temp file and how many bytes were written to it.
struct Writer {
    file: fs::File,
    written: u64,
}

impl Writer {
    /// Writes one batch (one `writev` for all its chunks, more only if the kernel takes
    /// less).
    fn write(mut self, batch: &[Bytes]) -> io::Result<Self> {
        let mut slices: Vec<io::IoSlice<'_>> =
            batch.iter().map(|chunk| io::IoSlice::new(chunk)).collect();
        let mut remaining = &mut slices[..];
        while !remaining.is_empty() {
            let written = io::Write::write_vectored(&mut self.file, remaining)?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += written as u64;
            io::IoSlice::advance_slices(&mut remaining, written);
        }
        Ok(self)
    }
}

/// The early flushes of a put: every [`FLUSH_EVERY`] bytes written, an `fdatasync` of the
/// file (through a handle of its own) runs on a blocking thread while the writes go on, so
/// the disk writes while the rest of the body arrives — and the final `fsync` has little
/// left to do — without a flush stalling the writes behind it (each took ~18 ms per 16 MiB
/// here, and the whole pipeline waited on it). One flush at a time; its error is the put's.
struct Flusher {
    file: Arc<fs::File>,
    /// Bytes written when the last flush started.
    started_at: u64,
    running: Option<tokio::task::JoinHandle<io::Result<()>>>,
}

impl Flusher {
    fn new(file: &fs::File) -> Result<Self> {
        let file = file
            .try_clone()
            .map_err(|error| io_error("open temp file", &error))?;
        Ok(Self {
            file: Arc::new(file),
            started_at: 0,
            running: None,
        })
    }

    /// Starts a flush when [`FLUSH_EVERY`] bytes were written since the last one started and
    /// that one is done (a failed one fails the put here).
    async fn after_write(&mut self, written: u64) -> Result<()> {
        if written - self.started_at < FLUSH_EVERY
            || self
                .running
                .as_ref()
                .is_some_and(|running| !running.is_finished())
        {
            return Ok(());
        }
        self.finish().await?;
        let file = Arc::clone(&self.file);
        self.running = Some(tokio::task::spawn_blocking(move || file.sync_data()));
        self.started_at = written;
        Ok(())
    }

    /// Waits for the flush in flight, if any.
    async fn finish(&mut self) -> Result<()> {
        if let Some(running) = self.running.take() {
            running
                .await
                .map_err(|error| join_error(&error))?
                .map_err(|error| io_error("flush temp file", &error))?;
        }
        Ok(())
    }
}

/// Streams `body` into `file`, one pass over the bytes, copying none but the small chunks
/// [`next_batch`] gathers. Four stages run side by side: the body arrives batch by batch, each
/// batch is hashed by two blocking steps (MD5 and SHA-256, [`digest_stage`]) and written by
/// another (now and then flushed beside the writes, [`Flusher`]). A stage that is briefly
/// slower (a flush, a slow read) does not stall the others: each hands its batch on through a
/// queue of one, so at most seven batches of one upload are held. The stages are futures of
/// this one — none is spawned — so a dropped request drops them all (a flush already running
/// finishes on its own thread and closes its handle); no thread is held while the client is
/// slow to send.
pub(super) async fn write_hashed(
    file: fs::File,
    mut body: ByteStream,
) -> Result<(fs::File, Md5, Sha256)> {
    let (to_md5, md5_queue) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(1);
    let (to_sha256, sha256_queue) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(1);
    let (to_writer, mut writer_queue) = tokio::sync::mpsc::channel::<Arc<Vec<Bytes>>>(1);
    let receiving = async move {
        loop {
            let batch = next_batch(&mut body).await.map_err(StorageError::Body)?;
            if batch.is_empty() {
                return Ok(());
            }
            let batch = Arc::new(batch);
            // A closed queue means that stage failed: its error is the one to answer.
            if to_md5.send(Arc::clone(&batch)).await.is_err()
                || to_sha256.send(Arc::clone(&batch)).await.is_err()
                || to_writer.send(batch).await.is_err()
            {
                return Ok(());
            }
        }
    };
    let writing = async move {
        let mut flusher = Flusher::new(&file)?;
        let mut writer = Writer { file, written: 0 };
        while let Some(batch) = writer_queue.recv().await {
            writer = tokio::task::spawn_blocking(move || writer.write(&batch))
                .await
                .map_err(|error| join_error(&error))?
                .map_err(|error| io_error("write temp file", &error))?;
            flusher.after_write(writer.written).await?;
        }
        flusher.finish().await?;
        Ok::<_, StorageError>(writer)
    };
    let ((), md5, sha256, writer) = futures::try_join!(
        receiving,
        digest_stage(Md5::new(), md5_queue),
        digest_stage(Sha256::new(), sha256_queue),
        writing
    )?;
    Ok((writer.file, md5, sha256))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A body as the given chunks.
    fn body_of(chunks: Vec<Bytes>) -> ByteStream {
        futures::stream::iter(chunks.into_iter().map(Ok)).boxed()
    }

    #[tokio::test]
    async fn a_body_of_tiny_chunks_is_batched_in_few_pieces_and_nothing_lost() {
        // 2 MiB + 3 bytes in one-byte chunks: the attack the gathering bounds.
        let content: Vec<u8> = (0..2 * WRITE_BATCH + 3)
            .map(|index| u8::try_from(index % 251).unwrap_or_default())
            .collect();
        let mut body = body_of(
            content
                .iter()
                .map(|byte| Bytes::copy_from_slice(&[*byte]))
                .collect(),
        );
        let mut joined = Vec::new();
        loop {
            let batch = next_batch(&mut body).await.expect("batch");
            if batch.is_empty() {
                break;
            }
            assert!(
                batch.len() <= WRITE_BATCH / SMALL_CHUNK + 1,
                "{} entries in one batch",
                batch.len()
            );
            for chunk in batch {
                joined.extend_from_slice(&chunk);
            }
        }
        assert_eq!(joined, content);
    }

    #[tokio::test]
    async fn large_and_small_chunks_keep_their_order_and_large_ones_are_not_copied() {
        let large = Bytes::from(vec![7_u8; SMALL_CHUNK]);
        let chunks = vec![
            Bytes::from_static(b"ab"),
            large.clone(),
            Bytes::from_static(b"c"),
            Bytes::from_static(b"d"),
            large.clone(),
        ];
        let batch = next_batch(&mut body_of(chunks)).await.expect("batch");
        assert_eq!(batch.len(), 4);
        assert_eq!(batch[0], Bytes::from_static(b"ab"));
        assert_eq!(batch[2], Bytes::from_static(b"cd"));
        // The large chunks are the very buffers received, not copies.
        assert_eq!(batch[1].as_ptr(), large.as_ptr());
        assert_eq!(batch[3].as_ptr(), large.as_ptr());
    }
}
