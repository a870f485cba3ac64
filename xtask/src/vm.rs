//! `cargo xtask vm-test`: boots Debian kernels under QEMU and runs the
//! privileged end-to-end suite inside them.

#[derive(Debug, clap::Args)]
pub struct VmArgs {}

pub fn run(_args: &VmArgs) -> anyhow::Result<()> {
    anyhow::bail!("vm-test is not implemented yet")
}
