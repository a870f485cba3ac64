//! Builds the eBPF programs in `nono-ebpf` with aya-build and leaves the
//! object in `OUT_DIR/nono`, where `record::loader` embeds it.
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (for quick userspace-only work);
//! an empty object is embedded and the recorder says so when it is used.

use std::path::Path;

use anyhow::{Context as _, anyhow};

fn main() -> anyhow::Result<()> {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR not set")?;
    let ebpf_dir = Path::new(&manifest_dir).parent().ok_or_else(|| anyhow!("nono has no parent directory"))?.join("nono-ebpf");
    let common_dir = ebpf_dir.with_file_name("nono-common");
    println!("cargo:rerun-if-changed={}", common_dir.display());
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let out_dir = std::env::var("OUT_DIR").context("OUT_DIR not set")?;
    let object = Path::new(&out_dir).join("nono");
    let skip = std::env::var("AYA_BUILD_SKIP").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"));
    if skip {
        if !object.exists() {
            std::fs::write(&object, b"").context("writing the empty eBPF placeholder")?;
        }
        return Ok(());
    }
    let root_dir = ebpf_dir.to_str().ok_or_else(|| anyhow!("nono-ebpf path is not UTF-8: {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package { name: "nono-ebpf", root_dir, ..Default::default() }],
        aya_build::Toolchain::default(),
    )
    .context("building the eBPF programs (run `cargo xtask setup` if bpf-linker or rust-src is missing)")
}
