//! The module store: uploaded components by content hash, with their compiled code cached on
//! disk so a restart (or a redeploy of the same module) does not compile again.
//!
//! ```text
//! DATA/modules/HEX.wasm    the upload, as received
//! DATA/modules/HEX.cwasm   wasmtime's compiled code for this engine (a cache: deleted or stale
//!                          files are recompiled from .wasm)
//! DATA/modules/HEX.json    {"id", "size_bytes", "kind", "created_ms"}
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ProcessorError;
use super::files::write_atomically;
use crate::wasm::{CompiledModule, ModuleKind, WasmRuntime};

/// What the store knows of a module.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ModuleInfo {
    /// `sha256:HEX` of the component bytes.
    pub id: String,
    pub size_bytes: u64,
    pub kind: ModuleKind,
    /// The contract version it was built against (0.1 modules have no state or timers);
    /// modules stored before versions were recorded are 0.1.
    #[serde(default = "contract_0_1")]
    pub contract: crate::wasm::Contract,
    pub created_ms: i64,
    /// Bytes it takes on disk: the upload and its compiled code (counted by the quota,
    /// `limits.modules_bytes_max`).
    #[serde(default)]
    pub stored_bytes: u64,
}

fn contract_0_1() -> crate::wasm::Contract {
    crate::wasm::Contract::V0_1
}

#[derive(Clone)]
pub struct ModuleStore {
    dir: PathBuf,
    runtime: WasmRuntime,
    compiled: Arc<Mutex<HashMap<String, CompiledModule>>>,
    /// Bytes all modules may take on disk.
    quota_bytes: u64,
    /// One upload at a time: a compile takes a core and hundreds of MB, and the quota check
    /// must see the uploads before it.
    uploading: Arc<Mutex<()>>,
}

fn hex_of(id: &str) -> Option<&str> {
    let hex = id.strip_prefix("sha256:")?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())).then_some(hex)
}

impl ModuleStore {
    pub fn open(data_dir: &Path, runtime: WasmRuntime, quota_bytes: u64) -> Result<Self, ProcessorError> {
        let dir = data_dir.join("modules");
        super::files::create_dir_durable(&dir)?;
        Ok(Self {
            dir,
            runtime,
            compiled: Arc::new(Mutex::new(HashMap::new())),
            quota_bytes,
            uploading: Arc::new(Mutex::new(())),
        })
    }

    /// Bytes the modules take on disk (uploads and compiled code).
    pub fn stored_bytes(&self) -> u64 {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.ends_with(".wasm") || name.ends_with(".cwasm")
            })
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum()
    }

    /// Removes a module's files and compiled code. The caller made sure no deployment uses it.
    pub fn delete(&self, id: &str) -> Result<(), ProcessorError> {
        self.info(id)?;
        let hex = hex_of(id).ok_or_else(|| ProcessorError::ModuleNotFound(id.to_owned()))?;
        // The metadata first: a crash half-way leaves files no listing shows, which the next
        // upload of the same bytes rewrites.
        for ext in ["json", "cwasm", "wasm"] {
            let path = self.path(hex, ext);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(ProcessorError::io(&path, e)),
                _ => {}
            }
        }
        super::files::sync_dir(&self.dir)?;
        self.lock().remove(id);
        Ok(())
    }

    pub fn runtime(&self) -> &WasmRuntime {
        &self.runtime
    }

    fn path(&self, hex: &str, ext: &str) -> PathBuf {
        self.dir.join(format!("{hex}.{ext}"))
    }

    /// Validates, compiles and stores `bytes`; uploading the same bytes again is a no-op that
    /// answers the same id. Blocking: compiling a large component takes seconds.
    pub fn upload(&self, bytes: &[u8]) -> Result<ModuleInfo, ProcessorError> {
        let hex = hex::encode(Sha256::digest(bytes));
        let id = format!("sha256:{hex}");
        if let Ok(info) = self.info(&id) {
            return Ok(info);
        }
        let _one_at_a_time = self.uploading.lock().unwrap_or_else(|e| e.into_inner());
        let module = self.runtime.compile(bytes).map_err(ProcessorError::InvalidModule)?;
        let code = module
            .serialize()
            .inspect_err(|e| tracing::warn!(module = %id, error = %e, "could not cache compiled code"))
            .ok();
        let need = bytes.len() as u64 + code.as_ref().map_or(0, |c| c.len() as u64);
        let used = self.stored_bytes();
        if used + need > self.quota_bytes {
            return Err(ProcessorError::QuotaExceeded {
                used,
                need,
                limit: self.quota_bytes,
            });
        }
        let info = ModuleInfo {
            id: id.clone(),
            size_bytes: bytes.len() as u64,
            kind: module.kind,
            contract: module.contract,
            created_ms: crate::topic::now_ms(),
            stored_bytes: need,
        };
        write_atomically(&self.path(&hex, "wasm"), bytes)?;
        if let Some(code) = code {
            write_atomically(&self.path(&hex, "cwasm"), &code)?;
        }
        let json = serde_json::to_vec_pretty(&info).expect("module info serializes");
        write_atomically(&self.path(&hex, "json"), &json)?;
        self.lock().insert(id, module);
        Ok(info)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, CompiledModule>> {
        self.compiled.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn info(&self, id: &str) -> Result<ModuleInfo, ProcessorError> {
        let hex = hex_of(id).ok_or_else(|| ProcessorError::ModuleNotFound(id.to_owned()))?;
        let text = std::fs::read(self.path(hex, "json")).map_err(|_| ProcessorError::ModuleNotFound(id.to_owned()))?;
        serde_json::from_slice(&text).map_err(|e| ProcessorError::Corrupt(format!("module metadata {id}: {e}")))
    }

    pub fn list(&self) -> Result<Vec<ModuleInfo>, ProcessorError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)
            .map_err(|e| ProcessorError::io(&self.dir, e))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".json") {
                out.push(self.info(&format!("sha256:{hex}"))?);
            }
        }
        out.sort_by_key(|m| m.created_ms);
        Ok(out)
    }

    /// The compiled module: from memory, else from the on-disk cache, else compiled again from
    /// the stored bytes (and re-cached). Blocking.
    pub fn compiled(&self, id: &str) -> Result<CompiledModule, ProcessorError> {
        if let Some(m) = self.lock().get(id) {
            return Ok(m.clone());
        }
        let hex = hex_of(id).ok_or_else(|| ProcessorError::ModuleNotFound(id.to_owned()))?;
        let module = match self.runtime.load_cached(&self.path(hex, "cwasm")) {
            Some(m) => m,
            None => {
                let bytes =
                    std::fs::read(self.path(hex, "wasm")).map_err(|_| ProcessorError::ModuleNotFound(id.to_owned()))?;
                let m = self.runtime.compile(&bytes).map_err(ProcessorError::InvalidModule)?;
                // Only a cache: a full disk costs a compile at the next start, not this one.
                if let Ok(code) = m.serialize()
                    && let Err(e) = write_atomically(&self.path(hex, "cwasm"), &code)
                {
                    tracing::warn!(module = id, error = %e, "cannot cache the compiled module");
                }
                m
            }
        };
        self.lock().insert(id.to_owned(), module.clone());
        Ok(module)
    }
}
