//! C, Zig and AssemblyScript: languages that compile to a core module, which this binary then
//! wraps into a component of the world `packed-processor`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::component::{PACKED_WORLD, componentize};
use super::sdk;
use super::tools::{self, run};

/// Stack of a C or Zig guest. Zig's default, 16 MiB, would make every instance start with
/// 16 MiB of memory; records are decoded in place, so a small stack is plenty.
const STACK_BYTES: u32 = 1024 * 1024;

/// Zig's caches go into the project unless the user chose a place: by default Zig writes tens
/// of megabytes under the home directory.
fn zig_command(project: &Path) -> anyhow::Result<std::process::Command> {
    let mut cmd = tools::zig()?.command();
    let cache = project.join(sdk::GENERATED_DIR).join("zig-cache");
    if std::env::var_os("ZIG_GLOBAL_CACHE_DIR").is_none() {
        cmd.env("ZIG_GLOBAL_CACHE_DIR", &cache);
    }
    if std::env::var_os("ZIG_LOCAL_CACHE_DIR").is_none() {
        cmd.env("ZIG_LOCAL_CACHE_DIR", &cache);
    }
    Ok(cmd)
}

/// The `.c` files of the project: `processor.c` and any others at its top level or in `src/`.
fn c_sources(project: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in [project.to_path_buf(), project.join("src")] {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "c") {
                out.push(path);
            }
        }
    }
    out.sort();
    anyhow::ensure!(
        !out.is_empty(),
        "no .c files in {} (a C processor defines weir_process in processor.c)",
        project.display()
    );
    Ok(out)
}

fn finish(project: &Path, name: &str, core: &Path) -> anyhow::Result<PathBuf> {
    let bytes = std::fs::read(core).with_context(|| format!("cannot read {}", core.display()))?;
    let component = componentize(&bytes, PACKED_WORLD)?;
    let out = super::artifact(project, name)?;
    tools::write_if_changed(&out, &component)?;
    Ok(out)
}

/// Where the compiler writes the core module (the directory is created).
fn core_path(project: &Path) -> anyhow::Result<PathBuf> {
    let dir = project.join(sdk::GENERATED_DIR).join("build");
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join("core.wasm"))
}

/// C: `zig cc` compiles the project's sources with the SDK and the bindings.
pub fn build_c(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let gen_dir = sdk::write_c(project)?;
    let core = core_path(project)?;
    let mut cmd = zig_command(project)?;
    cmd.args(["cc", "-target", "wasm32-wasi", "-O2", "-mexec-model=reactor", "-s"])
        .arg(format!("-Wl,-z,stack-size={STACK_BYTES}"))
        .args(["-Wall", "-Wextra", "-Wno-unused-parameter", "-I"])
        .arg(&gen_dir)
        .arg("-o")
        .arg(&core)
        .args(c_sources(project)?)
        .arg(gen_dir.join("weir.c"))
        .arg(gen_dir.join("packed_processor.c"));
    run(cmd, project, "zig cc (wasm32-wasi)")?;
    finish(project, name, &core)
}

/// Zig: the project's `processor.zig` as the root module, importing `weir` (over the C SDK).
pub fn build_zig(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let c_dir = sdk::write_c(project)?;
    let zig_dir = sdk::write_zig(project)?;
    let root = super::source(project, "processor.zig")?;
    let core = core_path(project)?;
    let mut cmd = zig_command(project)?;
    cmd.args([
        "build-exe",
        "-target",
        "wasm32-wasi",
        "-fno-entry",
        "-mexec-model=reactor",
    ])
    .args(["-O", "ReleaseFast", "-fstrip", "--stack"])
    .arg(STACK_BYTES.to_string())
    .arg(format!("-femit-bin={}", core.display()))
    .args(["-lc", "--dep", "weir"])
    .arg(format!("-Mroot={}", root.display()))
    .arg("-I")
    .arg(&c_dir)
    .args(["-cflags", "-O2", "--"])
    .arg(c_dir.join("weir.c"))
    .arg(c_dir.join("packed_processor.c"))
    .arg(format!("-Mweir={}", zig_dir.join("weir.zig").display()));
    run(cmd, project, "zig build-exe (wasm32-wasi)")?;
    finish(project, name, &core)
}

/// AssemblyScript: asc compiles the generated entry, which imports the project's
/// `processor.ts` and the SDK package `weir`.
pub fn build_assemblyscript(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = sdk::write_assemblyscript(project)?;
    super::source(project, "processor.ts")?;
    let core = core_path(project)?;
    let rel = |p: &Path| p.strip_prefix(project).unwrap_or(p).to_path_buf();
    let mut cmd = tools::npm_tool(project, "asc", "assemblyscript")?.command();
    cmd.arg(rel(&dir.join("main.ts")))
        .arg("--path")
        .arg(rel(&dir))
        .arg("--transform")
        .arg(format!("./{}", rel(&dir.join("transform.mjs")).display()))
        .args(["--use", "abort=~lib/weir/index/abort", "-O3", "--noAssert", "-o"])
        .arg(rel(&core));
    run(cmd, project, "asc")?;
    finish(project, name, &core)
}
