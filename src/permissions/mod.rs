//! The permission engine: the single place where Trove decides who may do what (SPEC §3, §4).
//!
//! Everything here is pure (no I/O) except [`loader`], which reads and writes profiles through
//! the storage trait. The pieces, in the order a request meets them:
//!
//! - [`profile`]: the permission profile stored at each scope, parsed strictly with one error
//!   code per kind of mistake, and ArtifactDB's partial update.
//! - [`loader`]: loads a resource's chain of profiles from storage (cached briefly,
//!   invalidated by writes).
//! - [`resolve`](mod@resolve): version → project → namespace → global, first profile found wins whole,
//!   `inherit: true` unions with the scope above; the built-in default grants nothing.
//! - [`identity`]: callers (anonymous, accounts, machines), their identities, roles and levels.
//! - [`state`]: lifecycle states and their cascade (most restrictive wins).
//! - [`evaluate`]: `can_read` / `can_download` / `can_write` / `can_manage` and [`decide`]
//!   for every API [`Action`], answering allow or a [`Denial`] (`404` / `401` / `403` / `409`).
//! - [`search`]: the caller's [`AccessScope`] and the per-document [`DocumentAccess`] the index
//!   filters by, built so that a search finds exactly what `can_read` allows.
//!
//! Decisions taken where the specification is silent (also listed in the module docs where
//! they apply):
//!
//! - Role caps bound writing and managing, not reading: a demoted owner keeps reading what its
//!   listing allows (every role may hold viewer), but writes as its role's highest level and
//!   manages only if its role may own.
//! - A machine key's `read` scope is a viewer listing for reading and downloading only; a
//!   `write` scope is a writer listing. Neither ever makes a machine an owner.
//! - An expiry ends an entry at `now >= expires`; unioned entries keep the later expiry.
//! - An `inherit: true` profile with nothing above it resolves on its own.
//! - Admins bypass rights, not state conflicts: deprecated, stable, completed and
//!   disabled-parent conflicts bind them too (SPEC's `can_write` requires an active state).

pub mod evaluate;
pub mod identity;
pub mod loader;
pub mod profile;
pub mod resolve;
pub mod search;
pub mod state;
pub mod target;

#[cfg(test)]
mod tests;

pub use evaluate::{
    Action, Denial, Target, TargetKind, can_download, can_manage, can_read, can_write, decide,
    decide_capped,
};
pub use identity::{
    Caller, DirectoryGroupFilter, GrantAccess, GrantTarget, Level, MachineGrant, Role, UnknownRole,
};
pub use loader::{LoaderError, ProfileLoader, ProfileLocation, StoredProfile};
pub use profile::{AccessRule, PrincipalRef, Profile, ProfileError, ProfileScope, Visibility};
pub use resolve::{ResolvedProfile, ScopeChain, resolve};
pub use search::{
    AccessScope, DocumentAccess, SearchFilter, TOKEN_AUTHENTICATED, TOKEN_PUBLIC, grant_token,
};
pub use state::{LifecycleState, UnknownState, effective_state};
