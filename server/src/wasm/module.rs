//! Checking an upload before anything runs: is it WebAssembly, a component, of one of our
//! worlds, importing only what the host provides? Each failure says what to fix.

use wasmtime::Engine;
use wasmtime::component::Component;

/// Which world a component implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// `packed-processor`: packed batches.
    Packed,
    /// `processor`: typed `list<input-record>` batches.
    Typed,
    /// `packed-latin1-processor`: packed batches, output carried as one char per byte.
    PackedLatin1,
}

/// Which version of the contract a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub enum Contract {
    /// `weir:processor@0.1.x`: no state, no timers.
    #[serde(rename = "0.1")]
    V0_1,
    /// `weir:processor@0.2.x`: keyed state and timers.
    #[serde(rename = "0.2")]
    V0_2,
}

impl Contract {
    pub fn name(self) -> &'static str {
        match self {
            Self::V0_1 => "0.1",
            Self::V0_2 => "0.2",
        }
    }
}

impl ModuleKind {
    /// The name the API uses (`kind` of `GET /v1/modules`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::Typed => "typed",
            Self::PackedLatin1 => "packed_latin1",
        }
    }
}

/// Name prefixes of the exported interfaces, without the version.
const PACKED_EXPORT: &str = "weir:processor/packed-batch-processor@";
const TYPED_EXPORT: &str = "weir:processor/batch-processor@";
const LATIN1_EXPORT: &str = "weir:processor/packed-latin1-batch-processor@";

/// Why an upload is not a usable processor.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ModuleError {
    #[error("the upload is not WebAssembly (it does not start with \\0asm)")]
    NotWasm,
    #[error(
        "this is a core WebAssembly module, not a component. Build it with `weir processor build` (Rust, Python, JavaScript, C, Zig, AssemblyScript), or for wasm32-wasip2 (cargo build --target wasm32-wasip2), or wrap it with `wasm-tools component new` against the WIT in wit/"
    )]
    CoreModule,
    #[error("the component does not compile: {0}")]
    Invalid(String),
    #[error(
        "the component exports none of weir:processor/packed-batch-processor, packed-latin1-batch-processor or batch-processor at version 0.2.x or 0.1.x (it exports: {exports}); build it against the world `packed-processor`, `packed-latin1-processor` or `processor` of wit/processor.wit (`weir processor build` does)"
    )]
    WrongWorld { exports: String },
    #[error(
        "the component needs an import the broker does not provide: {0}. Processors may import only weir:processor/host and WASI"
    )]
    UnsupportedImport(String),
    #[error(
        "the component has {count} {what}; a processor instance may have at most {max} (each instance's share of the broker's pool)"
    )]
    TooBig { what: &'static str, count: u32, max: u32 },
}

/// What one instance of a component takes from the pool, beyond its linear memory: every
/// instance gets the same share of wasmtime's pool, so no component may need more (a Python
/// component, the largest known, has 14 core instances, 2 memories and 2 tables).
pub const CORE_INSTANCES_PER_INSTANCE: u32 = 32;
pub const MEMORIES_PER_INSTANCE: u32 = 4;
pub const TABLES_PER_INSTANCE: u32 = 8;

/// Refuses a component that would take more than its share of the pool: counted from the
/// bytes (core module instantiations, nested components included) and from what wasmtime says
/// its static instantiations define (memories, tables).
pub fn check_size(bytes: &[u8], component: &Component) -> Result<(), ModuleError> {
    let mut instantiations = 0u32;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let Ok(wasmparser::Payload::InstanceSection(reader)) = payload {
            for instance in reader.into_iter().flatten() {
                if matches!(instance, wasmparser::Instance::Instantiate { .. }) {
                    instantiations += 1;
                }
            }
        }
    }
    let needs = component.resources_required();
    let (memories, tables) = needs.map_or((u32::MAX, u32::MAX), |r| (r.num_memories, r.num_tables));
    for (what, count, max) in [
        ("core module instances", instantiations, CORE_INSTANCES_PER_INSTANCE),
        ("memories", memories, MEMORIES_PER_INSTANCE),
        ("tables", tables, TABLES_PER_INSTANCE),
    ] {
        if count > max {
            return Err(ModuleError::TooBig { what, count, max });
        }
    }
    Ok(())
}

/// Looks at the header bytes: not wasm, a core module, or (probably) a component.
pub fn sniff(bytes: &[u8]) -> Result<(), ModuleError> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(ModuleError::NotWasm);
    }
    // Bytes 6..8 are the layer: 0 for core modules, 1 for components.
    if bytes[6..8] == [0, 0] {
        return Err(ModuleError::CoreModule);
    }
    Ok(())
}

/// The world `component` implements, and the contract version, from its exports.
pub fn kind(engine: &Engine, component: &Component) -> Result<(ModuleKind, Contract), ModuleError> {
    let ty = component.component_type();
    let names: Vec<String> = ty.exports(engine).map(|(name, _)| name.to_owned()).collect();
    for (prefix, kind) in [
        (PACKED_EXPORT, ModuleKind::Packed),
        (LATIN1_EXPORT, ModuleKind::PackedLatin1),
        (TYPED_EXPORT, ModuleKind::Typed),
    ] {
        for n in &names {
            let Some(version) = n.strip_prefix(prefix) else {
                continue;
            };
            if version.starts_with("0.2.") {
                return Ok((kind, Contract::V0_2));
            }
            if version.starts_with("0.1.") {
                return Ok((kind, Contract::V0_1));
            }
        }
    }
    let exports = if names.is_empty() {
        "nothing".to_owned()
    } else {
        names.join(", ")
    };
    Err(ModuleError::WrongWorld { exports })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_core_modules_are_told_apart() {
        assert!(matches!(sniff(b"hello world"), Err(ModuleError::NotWasm)));
        assert!(matches!(sniff(b"\0asm\x01\0\0\0"), Err(ModuleError::CoreModule)));
        assert!(sniff(b"\0asm\x0d\0\x01\0").is_ok());
        assert!(ModuleError::CoreModule.to_string().contains("wasm32-wasip2"));
    }
}
