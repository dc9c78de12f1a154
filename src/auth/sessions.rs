//! Sessions and tokens: authenticating a bearer token or API key, logging in and out,
//! changing a password (which ends every earlier session), and purging expired
//! revocations. Methods of [`AuthService`].

use chrono::Utc;

use super::audit::AuthEventKind;
use super::jwt::{IssuedToken, TokenError, peek_algorithm};
use super::password::check_new_password;
use super::principal::{CredentialKind, Principal, Session};
use super::store::{AccountRecord, ApiKeyRecord, RevokedToken};
use crate::model::names;
use crate::permissions::{Caller, Role};

use super::service::*;

impl AuthService {
    /// Authenticates the value of an `Authorization` header (`None` → anonymous).
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal> {
        let Some(header) = authorization else {
            return Ok(Principal::anonymous());
        };
        let (scheme, credential) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(TokenError::UnsupportedScheme.into());
        }
        let credential = credential.trim();
        if credential.is_empty() {
            return Err(TokenError::Missing.into());
        }
        if let Some(rest) = credential.strip_prefix(API_KEY_PREFIX) {
            return self.authenticate_api_key(rest).await;
        }
        let header = peek_algorithm(credential)?;
        match header.alg.as_str() {
            "HS256" => self.authenticate_token(credential).await,
            "RS256" | "ES256" => match &self.oidc {
                Some(oidc) if !oidc.keys_loaded() => Err(AuthError::IdentityProviderUnavailable),
                Some(oidc) => {
                    let identity = oidc.verify(credential, &header).await?;
                    let role: Role = identity
                        .role
                        .parse()
                        .map_err(|_| TokenError::InvalidClaims("unknown role".to_owned()))?;
                    if let Some(account) = self.account(&identity.username).await?
                        && account.disabled
                    {
                        return Err(TokenError::AccountDisabled.into());
                    }
                    Ok(Principal {
                        caller: Caller::Account {
                            groups: self.groups_of(&identity.username).await?,
                            directory_groups: self
                                .directory_filter
                                .apply(&identity.directory_groups),
                            username: identity.username,
                            role,
                        },
                        creator: None,
                        api_key: None,
                        account_id: None,
                        session: None,
                        credential: CredentialKind::External,
                    })
                }
                None => Err(TokenError::WrongAlgorithm.into()),
            },
            _ => Err(TokenError::WrongAlgorithm.into()),
        }
    }

    pub(super) async fn authenticate_token(&self, token: &str) -> Result<Principal> {
        let claims = self.tokens.verify(token)?;
        let account = self
            .account(&claims.sub)
            .await?
            .ok_or(TokenError::UnknownAccount)?;
        if account.disabled {
            return Err(TokenError::AccountDisabled.into());
        }
        if self.is_revoked(&claims.jti).await? {
            return Err(TokenError::Revoked.into());
        }
        // A token of a deleted account never works for a later account of the same name.
        if claims.uid != account.id {
            return Err(TokenError::UnknownAccount.into());
        }
        if claims.generation != account.token_generation {
            return Err(TokenError::Outdated.into());
        }
        Ok(Principal {
            caller: self.account_caller(&account).await?,
            creator: None,
            api_key: None,
            account_id: Some(account.id.clone()).filter(|id| !id.is_empty()),
            session: Some(Session {
                jti: claims.jti,
                username: claims.sub,
                expires_at: claims.exp,
            }),
            credential: CredentialKind::Token,
        })
    }

    pub(super) async fn authenticate_api_key(&self, rest: &str) -> Result<Principal> {
        let (id, secret) = rest.split_once('_').ok_or(TokenError::ApiKeyInvalid)?;
        if !is_key_id(id) || secret.is_empty() {
            return Err(TokenError::ApiKeyInvalid.into());
        }
        let record = self
            .api_key_record(id)
            .await?
            .ok_or(TokenError::ApiKeyInvalid)?;
        if !constant_time_eq(&sha256_hex(secret.as_bytes()), &record.secret_sha256)
            || record.disabled
        {
            return Err(TokenError::ApiKeyInvalid.into());
        }
        self.key_principal(id, &record).await
    }

    /// What API key `id` may do now, without its secret: `None` when the key is gone,
    /// disabled or expired, or its creator's account is gone, disabled or another account of
    /// the same name. An action that outlives its request and was started with a key (an
    /// upload's presigned URLs) is checked with this when it goes on.
    pub async fn principal_for_api_key(&self, id: &str) -> Result<Option<Principal>> {
        if !is_key_id(id) {
            return Ok(None);
        }
        let Some(record) = self.api_key_record(id).await? else {
            return Ok(None);
        };
        if record.disabled {
            return Ok(None);
        }
        match self.key_principal(id, &record).await {
            Ok(principal) => Ok(Some(principal)),
            Err(AuthError::Token(_)) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// API key `id`'s record, through the cache.
    async fn api_key_record(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        let (cached, generation) = self.api_keys.get(id);
        Ok(match cached {
            Some(record) => record,
            None => {
                let record = self.records.api_key(id).await?;
                self.api_keys.insert(id, record.clone(), generation);
                record
            }
        })
    }

    /// The principal of API key `id` (`record`), its secret already checked: refused when the
    /// key expired or its creator's account is gone or disabled.
    async fn key_principal(&self, id: &str, record: &ApiKeyRecord) -> Result<Principal> {
        if record.expires_at.is_some_and(|expiry| expiry <= Utc::now()) {
            return Err(TokenError::ApiKeyExpired.into());
        }
        // The very account that created the key, never a later one of the same name.
        let creator = match self.account(&record.created_by).await? {
            Some(account) if !account.disabled && account.id == record.creator_id => {
                self.account_caller(&account).await?
            }
            _ => return Err(TokenError::ApiKeyInvalid.into()),
        };
        Ok(Principal {
            caller: Caller::Machine {
                name: record.name.clone(),
                scopes: record.scopes.clone(),
            },
            creator: Some(creator),
            api_key: Some(id.to_owned()),
            account_id: None,
            session: None,
            credential: CredentialKind::ApiKey,
        })
    }

    /// `POST /auth/login`: checks the password (rate limited) and issues a token.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        address: &str,
    ) -> Result<IssuedToken> {
        let permit = match self.limiter.attempt(username, address) {
            Ok(permit) => permit,
            Err(wait) => {
                self.audit(
                    AuthEventKind::LoginRateLimited,
                    username,
                    Some(address),
                    Some("rate_limited"),
                );
                return Err(AuthError::RateLimited(wait));
            }
        };
        // Fresh read: a login must see the current password and state.
        let account = if names::validate_username(username).is_ok() {
            self.records.account(username).await?.map(|v| v.record)
        } else {
            None
        };
        let phc = account
            .as_ref()
            .and_then(|account| account.password_hash.as_deref());
        let verified = self.hasher.verify(password, phc).await?;
        let account = match account {
            Some(account) if verified => account,
            _ => {
                self.audit(
                    AuthEventKind::LoginFailed,
                    username,
                    Some(address),
                    Some("invalid_credentials"),
                );
                return Err(AuthError::InvalidCredentials);
            }
        };
        if account.disabled {
            self.audit(
                AuthEventKind::LoginFailed,
                username,
                Some(address),
                Some("account_disabled"),
            );
            return Err(TokenError::AccountDisabled.into());
        }
        self.limiter.succeeded(permit);
        let issued = self
            .tokens
            .issue(&account.username, &account.id, account.token_generation)
            .map_err(|error| AuthError::Unprocessable(format!("cannot issue a token: {error}")))?;
        self.audit(AuthEventKind::LoginSucceeded, username, Some(address), None);
        Ok(issued)
    }

    /// `POST /auth/logout`: revokes the session's token.
    pub async fn logout(&self, session: &Session) -> Result<()> {
        self.records
            .revoke(&RevokedToken {
                jti: session.jti.clone(),
                sub: session.username.clone(),
                expires_at: session.expires_at,
            })
            .await?;
        self.revoked.invalidate(&session.jti);
        self.audit(AuthEventKind::LoggedOut, &session.username, None, None);
        self.changed().await;
        Ok(())
    }

    /// `PUT /auth/password`: checks the old password (throttled like logins, per account and
    /// client address), stores the new one and bumps the token generation (every earlier
    /// token is refused); answers a fresh token.
    pub async fn change_password(
        &self,
        username: &str,
        old_password: &str,
        new_password: &str,
        address: &str,
    ) -> Result<IssuedToken> {
        check_new_password(new_password)?;
        let permit = match self.limiter.attempt(username, address) {
            Ok(permit) => permit,
            Err(wait) => {
                self.audit(
                    AuthEventKind::LoginRateLimited,
                    username,
                    Some(address),
                    Some("rate_limited"),
                );
                return Err(AuthError::RateLimited(wait));
            }
        };
        let account = self
            .records
            .account(username)
            .await?
            .map(|versioned| versioned.record)
            .ok_or(TokenError::UnknownAccount)?;
        if !self
            .hasher
            .verify(old_password, account.password_hash.as_deref())
            .await?
        {
            self.audit(
                AuthEventKind::LoginFailed,
                username,
                Some(address),
                Some("wrong_old_password"),
            );
            return Err(AuthError::InvalidCredentials);
        }
        self.limiter.succeeded(permit);
        let new_hash = self.hasher.hash(new_password).await?;
        let updated = self
            .records
            .update_account(username, |account: &mut AccountRecord| {
                account.password_hash = Some(new_hash.clone());
                account.token_generation += 1;
                account.updated_at = Some(Utc::now());
                Ok::<_, AuthError>(true)
            })
            .await?
            .ok_or(TokenError::UnknownAccount)??;
        self.accounts.invalidate(username);
        self.audit(AuthEventKind::PasswordChanged, username, None, None);
        self.changed().await;
        self.tokens
            .issue(&updated.username, &updated.id, updated.token_generation)
            .map_err(|error| AuthError::Unprocessable(format!("cannot issue a token: {error}")))
    }

    /// Deletes records of revoked tokens that have expired anyway (housekeeping).
    pub async fn purge_expired_revocations(&self) -> Result<usize> {
        let now = now_secs();
        let mut purged = 0;
        for token in self.records.revoked_tokens().await? {
            if token.expires_at + super::jwt::LEEWAY_SECS < now {
                self.records.forget_revoked(&token.jti).await?;
                crate::crash::point("revocation_purge.deleted");
                purged += 1;
            }
        }
        Ok(purged)
    }
}

/// Whether `id` has the shape of an API key id (32 hex digits) — checked before it names a
/// storage key.
fn is_key_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}
