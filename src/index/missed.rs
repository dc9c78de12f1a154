//! What this process's re-indexes failed to apply: a re-index that ended in an error, or
//! whose future was dropped unfinished, leaves its projects (or version) marked until a later
//! re-index of the same thing succeeds — the change feed's follower retries a failed batch,
//! a full rebuild covers everything. A graceful shutdown only records that the index holds
//! everything this process acknowledged when nothing is marked (`App::close`).

use std::collections::HashSet;
use std::sync::Mutex;

/// What one re-index covers.
#[derive(Debug, Clone)]
pub enum Covered {
    /// Every project.
    All,
    /// Whole projects.
    Projects(Vec<String>),
    /// One version of a project.
    Version(String, String),
}

/// The marks.
#[derive(Debug, Default)]
pub struct Missed {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    all: bool,
    projects: HashSet<String>,
    versions: HashSet<(String, String)>,
}

impl Missed {
    /// Whether anything is marked.
    #[must_use]
    pub fn any(&self) -> bool {
        self.with(|state| state.all || !state.projects.is_empty() || !state.versions.is_empty())
    }

    /// A guard for a re-index of `covered`: [`Guard::settle`] clears its marks on success;
    /// dropped otherwise (an error, a cancelled future), it marks `covered`.
    #[must_use]
    pub fn guard(&self, covered: Covered) -> Guard<'_> {
        Guard {
            missed: self,
            covered: Some(covered),
        }
    }

    fn with<T>(&self, change: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        change(&mut state)
    }
}

/// Marks what a re-index covers unless it succeeded.
#[derive(Debug)]
pub struct Guard<'a> {
    missed: &'a Missed,
    covered: Option<Covered>,
}

impl Guard<'_> {
    /// Passes `result` through; a success clears the marks of what it covered.
    pub fn settle<T, E>(mut self, result: Result<T, E>) -> Result<T, E> {
        if result.is_ok()
            && let Some(covered) = self.covered.take()
        {
            self.missed.with(|state| match covered {
                Covered::All => *state = State::default(),
                Covered::Projects(projects) => {
                    for project in &projects {
                        state.projects.remove(project);
                    }
                    state
                        .versions
                        .retain(|(project, _)| !projects.contains(project));
                }
                Covered::Version(project, version) => {
                    state.versions.remove(&(project, version));
                }
            });
        }
        result
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let Some(covered) = self.covered.take() else {
            return;
        };
        self.missed.with(|state| match covered {
            Covered::All => state.all = true,
            Covered::Projects(projects) => state.projects.extend(projects),
            Covered::Version(project, version) => {
                state.versions.insert((project, version));
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn projects(names: &[&str]) -> Covered {
        Covered::Projects(names.iter().map(|name| (*name).to_owned()).collect())
    }

    #[test]
    fn a_failed_or_dropped_reindex_stays_marked_until_the_same_succeeds() {
        let missed = Missed::default();
        assert!(!missed.any());
        // Failed: marked.
        let _ = missed
            .guard(projects(&["a"]))
            .settle(Err::<(), _>("storage"));
        assert!(missed.any());
        // Another project's success clears nothing.
        let _ = missed.guard(projects(&["b"])).settle(Ok::<_, ()>(()));
        assert!(missed.any());
        // The same project's success does.
        let _ = missed.guard(projects(&["a", "b"])).settle(Ok::<_, ()>(()));
        assert!(!missed.any());
        // Dropped unfinished (a cancelled future): marked.
        drop(missed.guard(Covered::Version("a".into(), "v1".into())));
        assert!(missed.any());
        // A whole-project re-index covers its versions.
        let _ = missed.guard(projects(&["a"])).settle(Ok::<_, ()>(()));
        assert!(!missed.any());
        // Everything failed: only everything succeeding clears it.
        let _ = missed.guard(Covered::All).settle(Err::<(), _>("down"));
        let _ = missed.guard(projects(&["a"])).settle(Ok::<_, ()>(()));
        assert!(missed.any());
        let _ = missed.guard(Covered::All).settle(Ok::<_, ()>(()));
        assert!(!missed.any());
    }
}
