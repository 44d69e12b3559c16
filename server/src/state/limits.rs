//! What a task's state may hold. Over a limit, a write fails with an error the guest sees
//! (and may turn into the record's failure); nothing is written and the broker carries on.

use serde::{Deserialize, Serialize};

/// Limits of one task's state, each configurable per deployment (`"state_limits": {...}`);
/// a deployment may give any of them and gets the defaults for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StateLimits {
    /// Largest key, bytes.
    pub key_bytes_max: usize,
    /// Largest value, bytes: one value must fit a changelog batch.
    pub value_bytes_max: usize,
    /// Most keys of one store in one task.
    pub keys_max: u64,
    /// Most bytes (keys and values) of all stores of one task: state lives in memory.
    pub bytes_max: u64,
}

impl Default for StateLimits {
    fn default() -> Self {
        Self {
            key_bytes_max: 4 * 1024,
            value_bytes_max: 1024 * 1024,
            keys_max: 10_000_000,
            bytes_max: 1024 * 1024 * 1024,
        }
    }
}

/// Largest `value_bytes_max` a deployment may ask for: a changelog record must fit a batch
/// readers can take.
pub const VALUE_BYTES_MAX: usize = 1024 * 1024;
/// Largest `key_bytes_max`.
pub const KEY_BYTES_MAX: usize = 64 * 1024;

impl StateLimits {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=KEY_BYTES_MAX).contains(&self.key_bytes_max) {
            return Err(format!("state_limits.key_bytes_max must be 1 to {KEY_BYTES_MAX}"));
        }
        if !(1..=VALUE_BYTES_MAX).contains(&self.value_bytes_max) {
            return Err(format!("state_limits.value_bytes_max must be 1 to {VALUE_BYTES_MAX}"));
        }
        if self.keys_max == 0 || self.bytes_max == 0 {
            return Err("state_limits.keys_max and state_limits.bytes_max must be positive".into());
        }
        Ok(())
    }
}
