//! Python and JavaScript: languages whose interpreter is bundled into the component by their
//! own componentizer (componentize-py, componentize-qjs).

use std::path::{Path, PathBuf};

use super::component::{LATIN1_WORLD, PACKED_WORLD};
use super::sdk;
use super::tools::{self, run};

/// Python: componentize-py over the generated entry module, with the project (for
/// `processor.py` and its modules) and the SDK on the module path.
pub fn build_python(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    super::source(project, "processor.py")?;
    let wit = sdk::write_wit(project)?;
    let python = sdk::write_python(project)?;
    let out = super::artifact(project, name)?;
    let mut cmd = tools::pip_tool("componentize-py")?.command();
    cmd.arg("-d")
        .arg(&wit)
        .args(["-w", LATIN1_WORLD, "componentize", "weir_main", "-p"])
        .arg(project)
        .arg("-p")
        .arg(&python)
        .arg("-o")
        .arg(&out);
    run(cmd, project, "componentize-py")?;
    Ok(out)
}

/// JavaScript: componentize-qjs (QuickJS) over the generated entry module, which imports the
/// project's `processor.js`.
///
/// QuickJS rather than componentize-js (SpiderMonkey): measured here, SpiderMonkey components
/// (componentize-js 0.22) grew their memory on every call until they hit the cap, ran half as
/// fast and came out seven times larger (12 MB against 1.6 MB).
pub fn build_js(project: &Path, name: &str) -> anyhow::Result<PathBuf> {
    super::source(project, "processor.js")?;
    let wit = sdk::write_wit(project)?;
    let js = sdk::write_js(project)?;
    let out = super::artifact(project, name)?;
    let mut cmd = tools::npm_tool(project, "componentize-qjs", "componentize-qjs")?.command();
    cmd.arg("--wit")
        .arg(&wit)
        .arg("--js")
        .arg(js.join("main.js"))
        .args(["-n", PACKED_WORLD, "--sync", "-o"])
        .arg(&out);
    run(cmd, project, "componentize-qjs")?;
    Ok(out)
}
