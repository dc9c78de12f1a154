//! The audit query index: a small tantivy index under `<data_dir>/audit-index`, separate from
//! the search index, with one document per logical event (a two-phase mutation's `pending`
//! event and its completion are one document, the view of [`super::event::view`]).
//!
//! It is a cache of storage: rebuilt from `..meta/audit/` at start-up when missing or when the
//! previous process did not close it cleanly (a crash may have lost uncommitted documents).
//! Additions are cheap (no commit); the index is committed before each query, on the flush
//! timer and at shutdown.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, Value as _,
};
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term};

/// Written when the index is closed cleanly; absent at start-up means "rebuild".
const CLEAN_MARKER: &str = "clean-shutdown";

/// Index failures.
#[derive(Debug, thiserror::Error)]
#[error("audit index: {0}")]
pub struct IndexError(String);

impl From<tantivy::TantivyError> for IndexError {
    fn from(error: tantivy::TantivyError) -> Self {
        Self(error.to_string())
    }
}

impl From<std::io::Error> for IndexError {
    fn from(error: std::io::Error) -> Self {
        Self(error.to_string())
    }
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    id: Field,
    actor: Field,
    action: Field,
    project: Field,
    outcome: Field,
    ts: Field,
    view: Field,
}

/// A position in the newest-first order: events at or before `ts` (nanoseconds), skipping
/// the first `skip` of those exactly at `ts` (already answered).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// Timestamp (nanoseconds) of the last answered event.
    pub ts: i64,
    /// How many answered events have exactly that timestamp.
    pub skip: usize,
}

impl Cursor {
    /// `<ts>.<skip>`.
    #[must_use]
    pub fn encode(&self) -> String {
        format!("{}.{}", self.ts, self.skip)
    }

    /// Parses [`Self::encode`]'s output.
    #[must_use]
    pub fn decode(text: &str) -> Option<Self> {
        let (ts, skip) = text.split_once('.')?;
        Some(Self {
            ts: ts.parse().ok()?,
            skip: skip.parse().ok().filter(|skip| *skip <= 1_000_000)?,
        })
    }
}

/// A query of the audit log; every filter is exact.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    /// Actor (`alice`, `machine:ci`, ...).
    pub actor: Option<String>,
    /// Action (`project.create`, ...).
    pub action: Option<String>,
    /// Project.
    pub project: Option<String>,
    /// Outcome (`ok`, `denied`, `error`, `pending`).
    pub outcome: Option<String>,
    /// Events at or after this time (nanoseconds).
    pub since: Option<i64>,
    /// Events before this time (nanoseconds).
    pub until: Option<i64>,
    /// Page size (1..=500).
    pub size: usize,
    /// Where the previous page ended.
    pub cursor: Option<Cursor>,
}

/// One page of results, newest first.
#[derive(Debug, Clone)]
pub struct AuditPage {
    /// Event views.
    pub results: Vec<Value>,
    /// Where the next page starts, when there is one.
    pub next: Option<Cursor>,
}

impl AuditPage {
    /// Drops the client address (`ip`) of every event: a project's owners see who did what
    /// to their project, not where other people connect from.
    pub fn hide_addresses(&mut self) {
        for result in &mut self.results {
            if let Some(event) = result.as_object_mut() {
                event.remove("ip");
            }
        }
    }
}

/// The audit query index.
pub struct AuditIndex {
    reader: IndexReader,
    writer: Mutex<IndexWriter>,
    fields: Fields,
    dirty: AtomicBool,
    complete: AtomicBool,
    directory: PathBuf,
}

impl std::fmt::Debug for AuditIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditIndex")
            .field("directory", &self.directory)
            .finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let fields = Fields {
        id: builder.add_text_field("id", STRING),
        actor: builder.add_text_field("actor", STRING),
        action: builder.add_text_field("action", STRING),
        project: builder.add_text_field("project", STRING),
        outcome: builder.add_text_field("outcome", STRING),
        ts: builder.add_i64_field("ts", INDEXED | FAST),
        view: builder.add_text_field("view", STORED),
    };
    (builder.build(), fields)
}

impl AuditIndex {
    /// Opens (or creates) the index in `directory`; the flag says whether it must be rebuilt
    /// from storage (new, or not closed cleanly). A corrupt index is recreated empty.
    pub fn open(directory: &Path) -> Result<(Self, bool), IndexError> {
        let (schema, fields) = schema();
        let marker = directory.join(CLEAN_MARKER);
        let clean = marker.exists();
        let _ = std::fs::remove_file(&marker);
        std::fs::create_dir_all(directory)?;
        let index = match Index::open_in_dir(directory) {
            Ok(index) if index.schema() == schema => index,
            _ => {
                // Missing, corrupt or of another schema: it is only a cache, start over.
                std::fs::remove_dir_all(directory)?;
                std::fs::create_dir_all(directory)?;
                Index::create_in_dir(directory, schema)?
            }
        };
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        // A previous instance in this process may still be finishing a commit: wait briefly.
        let mut attempts = 0;
        let writer = loop {
            match index.writer_with_num_threads(1, 15_000_000) {
                Ok(writer) => break writer,
                Err(tantivy::TantivyError::LockFailure(..)) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(error) => return Err(error.into()),
            }
        };
        let rebuild = !clean;
        if rebuild {
            writer.delete_all_documents()?;
        }
        Ok((
            Self {
                reader,
                writer: Mutex::new(writer),
                fields,
                dirty: AtomicBool::new(rebuild),
                complete: AtomicBool::new(true),
                directory: directory.to_path_buf(),
            },
            rebuild,
        ))
    }

    /// Adds or replaces (by `id`) event views; visible after the next [`Self::commit`].
    pub fn upsert(&self, views: &[Value]) -> Result<(), IndexError> {
        if views.is_empty() {
            return Ok(());
        }
        let writer = self
            .writer
            .lock()
            .map_err(|_| IndexError("writer lock poisoned".to_owned()))?;
        for view in views {
            let text = |key: &str| view.get(key).and_then(Value::as_str).unwrap_or_default();
            let id = text("id");
            let ts = view
                .get("ts")
                .and_then(Value::as_str)
                .and_then(|ts| chrono::DateTime::parse_from_rfc3339(ts).ok())
                .and_then(|ts| ts.timestamp_nanos_opt())
                .unwrap_or_default();
            writer.delete_term(Term::from_field_text(self.fields.id, id));
            let mut document = TantivyDocument::default();
            document.add_text(self.fields.id, id);
            document.add_text(self.fields.actor, text("actor"));
            document.add_text(self.fields.action, text("action"));
            document.add_text(self.fields.outcome, text("outcome"));
            if let Some(project) = view.get("project").and_then(Value::as_str) {
                document.add_text(self.fields.project, project);
            }
            document.add_i64(self.fields.ts, ts);
            document.add_text(self.fields.view, view.to_string());
            writer.add_document(document)?;
        }
        self.dirty.store(true, Ordering::SeqCst);
        drop(writer);
        Ok(())
    }

    /// Commits pending additions (when there are any) and reloads the reader. Blocking.
    pub fn commit(&self) -> Result<(), IndexError> {
        // Check and commit under the writer lock: a caller finding nothing to do must not
        // return while another caller's commit is still on its way to the reader.
        let mut writer = self
            .writer
            .lock()
            .map_err(|_| IndexError("writer lock poisoned".to_owned()))?;
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return Ok(());
        }
        if let Err(error) = writer.commit() {
            self.dirty.store(true, Ordering::SeqCst);
            return Err(error.into());
        }
        self.reader.reload()?;
        drop(writer);
        Ok(())
    }

    /// Whether the index holds everything stored (false while a rebuild is outstanding: then
    /// [`Self::close`] leaves no clean marker and the next start rebuilds).
    pub fn set_complete(&self, complete: bool) {
        self.complete.store(complete, Ordering::SeqCst);
    }

    /// Commits and, when complete, marks the index as cleanly closed. Blocking.
    pub fn close(&self) -> Result<(), IndexError> {
        self.dirty.store(true, Ordering::SeqCst);
        self.commit()?;
        if self.complete.load(Ordering::SeqCst) {
            std::fs::write(self.directory.join(CLEAN_MARKER), b"")?;
        }
        Ok(())
    }

    /// The view of event `id`, when indexed (committed). Blocking.
    pub fn get(&self, id: &str) -> Result<Option<Value>, IndexError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(
            Term::from_field_text(self.fields.id, id),
            IndexRecordOption::Basic,
        );
        let Some(address) = searcher
            .search(&query, &tantivy::collector::DocSetCollector)?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        let document: TantivyDocument = searcher.doc(address)?;
        Ok(document
            .get_first(self.fields.view)
            .and_then(|value| value.as_str())
            .and_then(|text| serde_json::from_str(text).ok()))
    }

    /// One page of events matching `query`, newest first. Blocking.
    pub fn search(&self, query: &AuditQuery) -> Result<AuditPage, IndexError> {
        let fields = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (field, value) in [
            (fields.actor, &query.actor),
            (fields.action, &query.action),
            (fields.project, &query.project),
            (fields.outcome, &query.outcome),
        ] {
            if let Some(value) = value {
                clauses.push((
                    Occur::Must,
                    Box::new(TermQuery::new(
                        Term::from_field_text(field, value),
                        IndexRecordOption::Basic,
                    )),
                ));
            }
        }
        let lower = query.since.map_or(Bound::Unbounded, |since| {
            Bound::Included(Term::from_field_i64(fields.ts, since))
        });
        let mut upper = query.until.map_or(Bound::Unbounded, |until| {
            Bound::Excluded(Term::from_field_i64(fields.ts, until))
        });
        if let Some(cursor) = query.cursor
            && query.until.is_none_or(|until| cursor.ts < until)
        {
            upper = Bound::Included(Term::from_field_i64(fields.ts, cursor.ts));
        }
        if !matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
            clauses.push((Occur::Must, Box::new(RangeQuery::new(lower, upper))));
        }
        if clauses.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
        let boolean = BooleanQuery::new(clauses);
        let size = query.size.clamp(1, 500);
        let skip = query.cursor.map_or(0, |cursor| cursor.skip);
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &boolean,
            &TopDocs::with_limit(skip + size + 1).order_by_fast_field::<i64>("ts", Order::Desc),
        )?;
        let mut rows = Vec::with_capacity(top.len());
        for (ts, address) in top {
            let document: TantivyDocument = searcher.doc(address)?;
            let view = document
                .get_first(fields.view)
                .and_then(|value| value.as_str())
                .and_then(|text| serde_json::from_str::<Value>(text).ok())
                .unwrap_or(Value::Null);
            rows.push((ts.unwrap_or_default(), view));
        }
        // Only events exactly at the cursor's timestamp can have been answered already.
        let already = match query.cursor {
            Some(cursor) => rows
                .iter()
                .take(skip)
                .take_while(|(ts, _)| *ts == cursor.ts)
                .count(),
            None => 0,
        };
        let rows: Vec<(i64, Value)> = rows.into_iter().skip(already).collect();
        let more = rows.len() > size;
        let rows: Vec<(i64, Value)> = rows.into_iter().take(size).collect();
        let next = if more {
            rows.last().map(|(last_ts, _)| {
                let mut same = rows.iter().filter(|(ts, _)| ts == last_ts).count();
                if let Some(cursor) = query.cursor
                    && cursor.ts == *last_ts
                {
                    same += already;
                }
                Cursor {
                    ts: *last_ts,
                    skip: same,
                }
            })
        } else {
            None
        };
        Ok(AuditPage {
            results: rows.into_iter().map(|(_, view)| view).collect(),
            next,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = Cursor {
            ts: 1_795_000_000_123_456_789,
            skip: 3,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        for bad in ["", "1", "x.1", "1.x", "1.-1", "1.99999999"] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
