//! Who may do what. Both front ends ask [`Auth`]: it authenticates a bearer token or an SSE
//! ticket into a [`Principal`], and a principal answers whether it holds a right.
//!
//! Tokens look like `weir_ID_SECRET`: the id is public (it names the token in lists and
//! revocations), the secret is 32 random bytes of which only the SHA-256 is stored, in
//! `DATA/auth/tokens.json` (written atomically). The bootstrap admin token comes from the
//! configuration (`auth.admin_token`, or `WEIR_ADMIN_TOKEN`); setting it turns authentication
//! on. Tickets are short-lived, read-only, one-topic credentials for browsers, whose
//! `EventSource` cannot send headers: an HMAC-SHA256 over (topic, expiry, issuing token) with a
//! key kept in `DATA/auth/ticket.key`, so they need no storage and die with their token.

pub mod rights;
mod ticket;
mod tokens;

use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sha2::{Digest, Sha256};

pub use rights::{Action, Resource, Right};
pub use tokens::TokenInfo;

/// Shortest admin token accepted from the configuration.
pub const ADMIN_TOKEN_CHARS_MIN: usize = 16;
/// Longest life of a ticket.
pub const TICKET_TTL_MS_MAX: u64 = 24 * 3600 * 1000;
/// Most tokens a broker keeps: each is checked by id, but the file is rewritten on changes.
pub const TOKENS_MAX: usize = 10_000;

/// Errors of authentication and token management.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    #[error("{0}")]
    Unauthenticated(String),
    #[error("this token lacks the right {needed}")]
    Forbidden { needed: String },
    #[error("invalid token request: {0}")]
    Invalid(String),
    #[error("token '{0}' does not exist")]
    TokenNotFound(String),
    #[error("cannot store tokens in {path}: {message}")]
    Io { path: String, message: String },
}

/// Who a request is.
#[derive(Debug, Clone)]
pub enum Principal {
    /// Authentication is off (a loopback broker without an admin token), or the admin token.
    Admin,
    /// A token and its rights.
    Token { id: String, rights: Arc<Vec<Right>> },
    /// A ticket: read one topic's events until `expires_ms`, while its issuer lasts.
    Ticket {
        topic: String,
        expires_ms: i64,
        issuer: String,
    },
}

impl Principal {
    /// Whether the principal may do `action` on `resource` `name`.
    pub fn allows(&self, resource: Resource, name: &str, action: Action) -> bool {
        match self {
            Self::Admin => true,
            Self::Token { rights, .. } => rights.iter().any(|r| r.allows(resource, name, action)),
            Self::Ticket { topic, .. } => resource == Resource::Topic && action == Action::Read && topic == name,
        }
    }

    /// `Ok` if the principal may do `action` on `resource` `name`, else the right it lacks.
    pub fn require(&self, resource: Resource, name: &str, action: Action) -> Result<(), AuthError> {
        if self.allows(resource, name, action) {
            return Ok(());
        }
        Err(AuthError::Forbidden {
            needed: rights::describe(resource, name, action),
        })
    }

    /// Whether the principal may do anything at all with `resource` `name` (to list it).
    pub fn sees(&self, resource: Resource, name: &str) -> bool {
        match self {
            Self::Admin => true,
            Self::Token { rights, .. } => rights.iter().any(|r| r.touches(resource, name)),
            Self::Ticket { topic, .. } => resource == Resource::Topic && topic == name,
        }
    }

    /// `Ok` if the principal holds `action` on some `resource` (`Action::Any`: any right on
    /// one); else the right that would do. Lists check this, and bodies naming their resource
    /// are checked with it before they are read.
    pub fn require_any(&self, resource: Resource, action: Action) -> Result<(), AuthError> {
        let any = match self {
            Self::Admin => true,
            Self::Token { rights, .. } => rights.iter().any(|r| r.on(resource, action)),
            Self::Ticket { .. } => false,
        };
        if any {
            return Ok(());
        }
        Err(AuthError::Forbidden {
            needed: rights::describe(resource, "*", action),
        })
    }

    /// `Ok` for the admin (token management, the whole broker).
    pub fn require_admin(&self) -> Result<(), AuthError> {
        match self {
            Self::Admin => Ok(()),
            Self::Token { rights, .. } if rights.contains(&Right::Admin) => Ok(()),
            _ => Err(AuthError::Forbidden { needed: "admin".into() }),
        }
    }

    fn issuer(&self) -> String {
        match self {
            Self::Token { id, .. } => id.clone(),
            Self::Admin | Self::Ticket { .. } => ticket::ADMIN_ISSUER.to_owned(),
        }
    }
}

/// A ticket as `POST /v1/tickets` answers it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Ticket {
    pub ticket: String,
    pub topic: String,
    pub expires_ms: i64,
}

struct Inner {
    /// SHA-256 of the admin token; `None`: authentication is off.
    admin: Option<[u8; 32]>,
    tokens: RwLock<tokens::Store>,
    ticket_key: [u8; 32],
    /// Bumped at each revocation: open streams look whether they may go on.
    revocations: tokio::sync::watch::Sender<u64>,
}

/// The handle to authentication. Clone it freely.
#[derive(Clone)]
pub struct Auth(Arc<Inner>);

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Equality of two digests in time that does not depend on where they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Random bytes from the operating system.
fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).map_err(|e| AuthError::Io {
        path: "the OS random source".into(),
        message: e.to_string(),
    })?;
    Ok(b)
}

impl Auth {
    /// Opens `DATA/auth/`. `admin_token`: the bootstrap token, which turns authentication on.
    pub fn open(data_dir: &Path, admin_token: Option<&str>) -> Result<Self, AuthError> {
        let dir = data_dir.join("auth");
        let store = tokens::Store::open(&dir)?;
        let ticket_key = ticket::load_or_create_key(&dir)?;
        Ok(Self(Arc::new(Inner {
            // Trimmed as the bearer header is: a token read from a file keeps its newline.
            admin: admin_token.map(|t| sha256(t.trim().as_bytes())),
            tokens: RwLock::new(store),
            ticket_key,
            revocations: tokio::sync::watch::Sender::new(0),
        })))
    }

    /// Whether requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.0.admin.is_some()
    }

    /// The principal of a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(admin) = &self.0.admin else {
            return Ok(Principal::Admin);
        };
        if same(admin, &sha256(token.as_bytes())) {
            return Ok(Principal::Admin);
        }
        let store = self.0.tokens.read().unwrap_or_else(|e| e.into_inner());
        store.verify(token).ok_or_else(|| {
            AuthError::Unauthenticated(
                "the bearer token is not valid (revoked, mistyped or from another broker)".into(),
            )
        })
    }

    /// Creates a token with `rights`; returns the secret (shown once) and what is stored.
    pub fn create_token(&self, name: &str, rights: Vec<Right>) -> Result<(String, TokenInfo), AuthError> {
        self.0
            .tokens
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .create(name, rights)
    }

    pub fn list_tokens(&self) -> Vec<TokenInfo> {
        self.0.tokens.read().unwrap_or_else(|e| e.into_inner()).list()
    }

    pub fn revoke_token(&self, id: &str) -> Result<(), AuthError> {
        self.0.tokens.write().unwrap_or_else(|e| e.into_inner()).revoke(id)?;
        self.0.revocations.send_modify(|n| *n += 1);
        Ok(())
    }

    /// A receiver that changes at each revocation.
    pub fn revocations(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.revocations.subscribe()
    }

    /// Whether `principal` may still act: its token was not revoked, its ticket has not
    /// expired and its issuer still exists. Streams ask this when a revocation happens and
    /// when a ticket's time is up.
    pub fn still_valid(&self, principal: &Principal) -> bool {
        let tokens = || self.0.tokens.read().unwrap_or_else(|e| e.into_inner());
        match principal {
            Principal::Admin => true,
            Principal::Token { id, .. } => tokens().contains(id),
            Principal::Ticket { expires_ms, issuer, .. } => {
                *expires_ms > crate::topic::now_ms() && (issuer == ticket::ADMIN_ISSUER || tokens().contains(issuer))
            }
        }
    }

    /// A ticket for `principal` to read `topic`'s events for `ttl_ms`.
    pub fn issue_ticket(&self, principal: &Principal, topic: &str, ttl_ms: u64) -> Result<Ticket, AuthError> {
        crate::topic::spec::validate_name(topic).map_err(AuthError::Invalid)?;
        principal.require(Resource::Topic, topic, Action::Read)?;
        if matches!(principal, Principal::Ticket { .. }) {
            return Err(AuthError::Forbidden {
                needed: "a token (a ticket cannot issue tickets)".into(),
            });
        }
        if ttl_ms == 0 || ttl_ms > TICKET_TTL_MS_MAX {
            return Err(AuthError::Invalid(format!("ttl_ms must be 1 to {TICKET_TTL_MS_MAX}")));
        }
        let expires_ms = crate::topic::now_ms() + ttl_ms as i64;
        let ticket = ticket::sign(&self.0.ticket_key, topic, expires_ms, &principal.issuer());
        Ok(Ticket {
            ticket,
            topic: topic.to_owned(),
            expires_ms,
        })
    }

    /// The principal of a ticket: it must be genuine, unexpired, for `topic`, and its issuing
    /// token must still exist.
    pub fn authenticate_ticket(&self, text: &str, topic: &str) -> Result<Principal, AuthError> {
        let (for_topic, expires_ms, issuer) = ticket::verify(&self.0.ticket_key, text, crate::topic::now_ms())?;
        if for_topic != topic {
            return Err(AuthError::Unauthenticated(format!(
                "this ticket is for topic '{for_topic}', not '{topic}'"
            )));
        }
        let alive = issuer == ticket::ADMIN_ISSUER
            || self
                .0
                .tokens
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&issuer);
        if !alive {
            return Err(AuthError::Unauthenticated(
                "the token that issued this ticket was revoked".into(),
            ));
        }
        Ok(Principal::Ticket {
            topic: for_topic,
            expires_ms,
            issuer,
        })
    }
}
