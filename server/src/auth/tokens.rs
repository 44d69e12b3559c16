//! The token store: `DATA/auth/tokens.json`, only hashes of secrets, rewritten atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AuthError, Principal, Right, TOKENS_MAX, random, same, sha256};

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TokenInfo {
    pub id: String,
    pub name: String,
    /// `RESOURCE:PATTERN:ACTION` or `admin` (docs/security.md).
    #[schema(value_type = Vec<String>)]
    pub rights: Vec<Right>,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Stored {
    #[serde(flatten)]
    info: TokenInfo,
    /// SHA-256 of the secret, hex.
    sha256: String,
}

/// A stored token, its secret's digest, and its rights shared with its principals.
type Entry = (Stored, [u8; 32], Arc<Vec<Right>>);

pub struct Store {
    path: PathBuf,
    tokens: BTreeMap<String, Entry>,
}

fn io(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Longest token name.
const NAME_CHARS_MAX: usize = 128;
/// Most rights of one token.
const RIGHTS_MAX: usize = 256;

impl Store {
    pub fn open(dir: &Path) -> Result<Self, AuthError> {
        crate::durable::create_dir(dir).map_err(|e| io(dir, e))?;
        let path = dir.join("tokens.json");
        let mut tokens = BTreeMap::new();
        match std::fs::read(&path) {
            Ok(bytes) => {
                let list: Vec<Stored> = serde_json::from_slice(&bytes).map_err(|e| io(&path, e))?;
                for s in list {
                    let mut hash = [0u8; 32];
                    hex::decode_to_slice(&s.sha256, &mut hash).map_err(|e| io(&path, e))?;
                    let rights = Arc::new(s.info.rights.clone());
                    tokens.insert(s.info.id.clone(), (s, hash, rights));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path, e)),
        }
        Ok(Self { path, tokens })
    }

    fn save(&self) -> Result<(), AuthError> {
        let list: Vec<&Stored> = self.tokens.values().map(|(s, _, _)| s).collect();
        let json = serde_json::to_vec_pretty(&list).expect("tokens serialize");
        crate::durable::write_atomically(&self.path, &json).map_err(|e| io(&self.path, e))
    }

    /// `weir_ID_SECRET` into its token's principal, if the secret is right.
    pub fn verify(&self, token: &str) -> Option<Principal> {
        let rest = token.strip_prefix("weir_")?;
        let (id, secret) = rest.split_once('_')?;
        let (stored, hash, rights) = self.tokens.get(id)?;
        same(hash, &sha256(secret.as_bytes())).then(|| Principal::Token {
            id: stored.info.id.clone(),
            rights: Arc::clone(rights),
        })
    }

    pub fn contains(&self, id: &str) -> bool {
        self.tokens.contains_key(id)
    }

    pub fn create(&mut self, name: &str, rights: Vec<Right>) -> Result<(String, TokenInfo), AuthError> {
        if name.is_empty() || name.chars().count() > NAME_CHARS_MAX || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(format!(
                "a token name has 1 to {NAME_CHARS_MAX} printable characters"
            )));
        }
        if rights.len() > RIGHTS_MAX {
            return Err(AuthError::Invalid(format!(
                "a token has at most {RIGHTS_MAX} rights, like topic:orders*:read (see docs/security.md)"
            )));
        }
        if self.tokens.len() >= TOKENS_MAX {
            return Err(AuthError::Invalid(format!(
                "the broker holds {TOKENS_MAX} tokens, its limit; revoke some first"
            )));
        }
        let id = hex::encode(random::<6>()?);
        let secret = hex::encode(random::<32>()?);
        let info = TokenInfo {
            id: id.clone(),
            name: name.to_owned(),
            rights: rights.clone(),
            created_ms: crate::topic::now_ms(),
        };
        let hash = sha256(secret.as_bytes());
        let stored = Stored {
            info: info.clone(),
            sha256: hex::encode(hash),
        };
        self.tokens.insert(id.clone(), (stored, hash, Arc::new(rights)));
        if let Err(e) = self.save() {
            self.tokens.remove(&id);
            return Err(e);
        }
        Ok((format!("weir_{id}_{secret}"), info))
    }

    pub fn list(&self) -> Vec<TokenInfo> {
        self.tokens.values().map(|(s, _, _)| s.info.clone()).collect()
    }

    pub fn revoke(&mut self, id: &str) -> Result<(), AuthError> {
        let removed = self
            .tokens
            .remove(id)
            .ok_or_else(|| AuthError::TokenNotFound(id.to_owned()))?;
        if let Err(e) = self.save() {
            self.tokens.insert(id.to_owned(), removed);
            return Err(e);
        }
        Ok(())
    }
}
