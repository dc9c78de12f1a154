//! [`Principal`]: who a request comes from, as authentication established it — the permission
//! engine's [`Caller`], plus for machine keys the creator the key acts for (within its scopes,
//! capped at their access), and for Trove's own tokens the session (what logout revokes).

use chrono::{DateTime, Utc};

use crate::permissions::{Action, Caller, Denial, Target, decide, decide_capped};

/// The Trove access token a request was authenticated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Token id.
    pub jti: String,
    /// Account.
    pub username: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: u64,
}

/// How the caller authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialKind {
    /// No credentials.
    None,
    /// A Trove access token.
    Token,
    /// A token of the external identity provider.
    External,
    /// An API key.
    ApiKey,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The caller the permission engine evaluates.
    pub caller: Caller,
    /// For an API key: its creator as they are now; the key acts for them inside its scopes,
    /// never doing more than they may.
    pub creator: Option<Caller>,
    /// For an API key: its id, recorded where an action outlives the request (an upload's
    /// presigned URLs are checked against the key as it is when they are used).
    pub api_key: Option<String>,
    /// For a local account (Trove token, or acted for by the server): its identity id, which
    /// a later account of the same name never has; recorded likewise.
    pub account_id: Option<String>,
    /// For a Trove access token: the session.
    pub session: Option<Session>,
    /// How the caller authenticated.
    pub credential: CredentialKind,
}

impl Principal {
    /// The anonymous caller.
    #[must_use]
    pub fn anonymous() -> Self {
        Self {
            caller: Caller::Anonymous,
            creator: None,
            api_key: None,
            account_id: None,
            session: None,
            credential: CredentialKind::None,
        }
    }

    /// Whether no credentials were given.
    #[must_use]
    pub fn is_anonymous(&self) -> bool {
        matches!(self.caller, Caller::Anonymous)
    }

    /// Whether the caller is an admin (a machine key never is).
    #[must_use]
    pub fn is_admin(&self) -> bool {
        self.caller.is_admin()
    }

    /// The username of an account caller (local or external).
    #[must_use]
    pub fn username(&self) -> Option<&str> {
        match &self.caller {
            Caller::Account { username, .. } => Some(username),
            _ => None,
        }
    }

    /// The principal string recorded as actor (`alice`, `machine:ci`, `anonymous`).
    #[must_use]
    pub fn actor(&self) -> String {
        match &self.caller {
            Caller::Anonymous => "anonymous".to_owned(),
            Caller::Account { username, .. } => username.clone(),
            Caller::Machine { name, .. } => format!("machine:{name}"),
        }
    }

    /// Decides an action on a target for this caller; an API key acts for its creator, capped
    /// at its scope's access ([`decide_capped`]). A machine key reaches nothing outside its
    /// scopes, whatever profiles list it.
    pub fn decide(
        &self,
        action: Action,
        target: &Target,
        now: DateTime<Utc>,
    ) -> Result<(), Denial> {
        if let Caller::Machine { scopes, .. } = &self.caller
            && !scopes
                .iter()
                .any(|scope| target.is_covered_by(&scope.target))
        {
            return Err(Denial::NotFound);
        }
        match &self.creator {
            Some(creator) => decide_capped(&self.caller, creator, action, target, now),
            None => decide(&self.caller, action, target, now),
        }
    }
}
