//! The single index writer: one OS thread owns tantivy's `IndexWriter`; everything that
//! changes the index sends it batches of operations through a channel.
//!
//! The thread takes every batch already queued, applies them all, commits once and reloads the
//! reader before acknowledging, so a caller whose `apply` returned can search its documents at
//! once, and concurrent indexing jobs share commits instead of piling up segments.

use std::sync::{Arc, Mutex};
use std::thread;

use chrono::{DateTime, Utc};
use tantivy::schema::Field;
use tantivy::{IndexReader, IndexWriter, TantivyDocument, Term};
use tokio::sync::{mpsc, oneshot};

use super::{IndexError, Result};

/// One change to the index.
#[derive(Debug)]
pub enum WriteOp {
    /// Replace every document of an owner key (`<project>/<version>` for a version's files,
    /// `<project>/` for a project record) by `documents` — idempotent re-indexing.
    Replace {
        /// The owner key.
        owner: String,
        /// The new documents (may be empty: a delete).
        documents: Vec<TantivyDocument>,
    },
    /// Delete every document of a project (record and versions).
    DeleteProject(String),
    /// Delete everything (before a full rebuild).
    DeleteAll,
}

/// What the writer reports for `GET /index/status`.
#[derive(Debug, Clone, Default, serde::Serialize, utoipa::ToSchema)]
pub struct WriterStatus {
    /// When the last commit finished.
    pub last_commit: Option<DateTime<Utc>>,
    /// Commits since start.
    pub commits: u64,
    /// Operations applied since start.
    pub operations: u64,
    /// The last commit error, if the last commit failed.
    pub last_error: Option<String>,
}

struct Batch {
    ops: Vec<WriteOp>,
    /// Whether the batch must be committed (and visible) before it is acknowledged; a batch
    /// that need not is acknowledged once tantivy has taken its documents, and committed with
    /// the next batch that asks for a commit.
    commit: bool,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct IndexWriterHandle {
    sender: Arc<Mutex<Option<mpsc::UnboundedSender<Batch>>>>,
    thread: Arc<Mutex<Option<thread::JoinHandle<()>>>>,
    status: Arc<Mutex<WriterStatus>>,
}

impl std::fmt::Debug for IndexWriterHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriterHandle").finish_non_exhaustive()
    }
}

/// The fields the writer deletes by.
#[derive(Debug, Clone, Copy)]
pub struct OwnerFields {
    /// `version_key`: `<project>/<version>` or `<project>/`.
    pub owner: Field,
    /// `project_id`.
    pub project: Field,
}

impl IndexWriterHandle {
    /// Starts the writer thread over `writer`, reloading `reader` after each commit.
    pub fn spawn(writer: IndexWriter, reader: IndexReader, fields: OwnerFields) -> Result<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let status = Arc::new(Mutex::new(WriterStatus::default()));
        let thread_status = status.clone();
        let thread = thread::Builder::new()
            .name("trove-index-writer".to_owned())
            .spawn(move || run(writer, reader, fields, receiver, &thread_status))
            .map_err(IndexError::Io)?;
        Ok(Self {
            sender: Arc::new(Mutex::new(Some(sender))),
            thread: Arc::new(Mutex::new(Some(thread))),
            status,
        })
    }

    /// Stops the writer after the batches already queued and waits for it (the index lock is
    /// released when this returns). Later `apply` calls fail with `WriterGone`.
    pub fn close(&self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut thread| thread.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Applies `ops`; returns once they are committed and visible to searches.
    pub async fn apply(&self, ops: Vec<WriteOp>) -> Result<()> {
        self.submit(ops)?.await
    }

    /// Queues `ops` now (batches are applied in the order they are queued) and returns a
    /// future that resolves once they are committed and visible, so a caller can prepare
    /// the next batch meanwhile.
    pub fn submit(
        &self,
        ops: Vec<WriteOp>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        self.queue(ops, true)
    }

    /// Queues `ops` without asking for a commit: the future resolves once the writer has
    /// handed their documents to tantivy; they become visible (and durable) with the next
    /// commit anyone asks for. A full rebuild sends most of its batches this way, so the
    /// index is built in a few large segments instead of one small pair per batch (fewer
    /// term dictionaries to write and less merging).
    pub fn submit_uncommitted(
        &self,
        ops: Vec<WriteOp>,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        self.queue(ops, false)
    }

    fn queue(
        &self,
        ops: Vec<WriteOp>,
        commit: bool,
    ) -> Result<impl Future<Output = Result<()>> + Send + 'static> {
        let (done, wait) = oneshot::channel();
        let sender = self
            .sender
            .lock()
            .ok()
            .and_then(|sender| sender.clone())
            .ok_or(IndexError::WriterGone)?;
        sender
            .send(Batch { ops, commit, done })
            .map_err(|_| IndexError::WriterGone)?;
        Ok(async move {
            match wait.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(message)) => Err(IndexError::Commit(message)),
                Err(_) => Err(IndexError::WriterGone),
            }
        })
    }

    /// The writer's status.
    #[must_use]
    pub fn status(&self) -> WriterStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn run(
    mut writer: IndexWriter,
    reader: IndexReader,
    fields: OwnerFields,
    mut receiver: mpsc::UnboundedReceiver<Batch>,
    status: &Mutex<WriterStatus>,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut batches = vec![first];
        // Take whatever else is already queued: one commit for all of it.
        while let Ok(more) = receiver.try_recv() {
            batches.push(more);
        }
        let mut applied = 0_u64;
        for batch in &mut batches {
            for op in batch.ops.drain(..) {
                applied += 1;
                match op {
                    WriteOp::Replace { owner, documents } => {
                        writer.delete_term(Term::from_field_text(fields.owner, &owner));
                        for document in documents {
                            // add_document only fails when the writer is dead; the commit
                            // below reports that.
                            let _ = writer.add_document(document);
                        }
                    }
                    WriteOp::DeleteProject(project) => {
                        writer.delete_term(Term::from_field_text(fields.project, &project));
                    }
                    WriteOp::DeleteAll => {
                        let _ = writer.delete_all_documents();
                    }
                }
            }
        }
        if !batches.iter().any(|batch| batch.commit) {
            if let Ok(mut status) = status.lock() {
                status.operations += applied;
            }
            for batch in batches {
                let _ = batch.done.send(Ok(()));
            }
            continue;
        }
        let result = writer
            .commit()
            .map_err(|error| error.to_string())
            .and_then(|_| reader.reload().map_err(|error| error.to_string()));
        if let Ok(mut status) = status.lock() {
            status.operations += applied;
            match &result {
                Ok(()) => {
                    status.commits += 1;
                    status.last_commit = Some(Utc::now());
                    status.last_error = None;
                }
                Err(message) => {
                    tracing::error!(error = %message, "index commit failed");
                    status.last_error = Some(message.clone());
                }
            }
        }
        if result.is_err() {
            // Drop what the failed commit left pending so the next batch starts clean.
            let _ = writer.rollback();
        }
        for batch in batches {
            let _ = batch.done.send(result.clone());
        }
    }
    // Channel closed (shutdown): wait for merges so the index is left tidy.
    let _ = writer.wait_merging_threads();
}
