//! The contract as a library: the WIT compiled in, C bindings generated from it (wit-bindgen-c),
//! and core modules turned into components (wit-component with the WASI adapter), so a user
//! needs neither wit-bindgen nor wasm-tools installed.

use anyhow::Context;
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};
use wit_bindgen_core::wit_parser::{PackageId, Resolve, WorldId};
use wit_component::{ComponentEncoder, StringEncoding};

/// `wit/processor.wit`, the contract this binary speaks.
pub const WIT: &str = include_str!("../../../../wit/processor.wit");

/// The contract's worlds that guests target.
pub const PACKED_WORLD: &str = "packed-processor";
pub const LATIN1_WORLD: &str = "packed-latin1-processor";

fn resolve() -> (Resolve, PackageId) {
    let mut resolve = Resolve::default();
    let package = resolve
        .push_str("processor.wit", WIT)
        .expect("the compiled-in WIT parses");
    (resolve, package)
}

fn world(resolve: &Resolve, package: PackageId, name: &str) -> WorldId {
    resolve
        .select_world(&[package], Some(name))
        .expect("the world is in the compiled-in WIT")
}

/// C bindings for `world`: `(file name, contents)`, e.g. `packed_processor.h` and `.c`.
///
/// The type information goes into the module later ([`componentize`]), so the generated code's
/// reference to a separate type object is satisfied here.
pub fn c_bindings(world_name: &str) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let (mut resolve, package) = resolve();
    let id = world(&resolve, package, world_name);
    let mut files = wit_bindgen_core::Files::default();
    let opts = wit_bindgen_c::Opts {
        no_object_file: true,
        ..Default::default()
    };
    opts.build()
        .generate(&mut resolve, id, &mut files)
        .context("generating C bindings")?;
    let stem = world_name.replace('-', "_");
    let mut out: Vec<(String, Vec<u8>)> = files.iter().map(|(n, b)| (n.to_owned(), b.to_vec())).collect();
    for (name, bytes) in &mut out {
        if *name == format!("{stem}.c") {
            bytes.extend_from_slice(
                format!(
                    "\n// Added by `weir processor build`, which embeds the component type itself.\n\
                     void __component_type_object_force_link_{stem}(void) {{}}\n"
                )
                .as_bytes(),
            );
        }
    }
    Ok(out)
}

/// Turns a core module that implements `world_name` into a component: embeds the world's type
/// information, then wraps it, adapting WASI preview 1 imports (C and Zig's libc) to preview 2.
pub fn componentize(core: &[u8], world_name: &str) -> anyhow::Result<Vec<u8>> {
    let (resolve, package) = resolve();
    let id = world(&resolve, package, world_name);
    let mut module = core.to_vec();
    wit_component::embed_component_metadata(&mut module, &resolve, id, StringEncoding::UTF8)
        .context("embedding the WIT world in the module")?;
    let mut encoder = ComponentEncoder::default();
    encoder
        .validate(true)
        .module(&module)
        .context("reading the core module")?;
    if imports_wasi_preview1(core) {
        encoder
            .adapter(
                WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME,
                WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
            )
            .context("adding the WASI adapter")?;
    }
    encoder.encode().with_context(|| {
        format!("the module does not implement the world `{world_name}` (its exports or imports do not match wit/processor.wit)")
    })
}

/// Whether a core module imports anything from `wasi_snapshot_preview1`. The name is searched
/// for as bytes: it can only appear in an import (or a custom section naming one).
fn imports_wasi_preview1(core: &[u8]) -> bool {
    let needle = WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME.as_bytes();
    core.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_bindings_name_the_world_and_define_the_type_object_symbol() {
        let files = c_bindings(PACKED_WORLD).unwrap();
        let names: Vec<_> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["packed_processor.c", "packed_processor.h"]);
        let c = String::from_utf8(files[0].1.clone()).unwrap();
        assert!(c.contains("void __component_type_object_force_link_packed_processor(void) {}"));
    }

    #[test]
    fn a_module_without_the_exports_is_refused_with_the_world_named() {
        // The smallest valid core module: no exports at all.
        let err = componentize(b"\0asm\x01\0\0\0", PACKED_WORLD).unwrap_err();
        assert!(format!("{err:#}").contains("packed-processor"), "{err:#}");
    }
}
