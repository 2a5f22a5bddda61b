//! `highwater bench` (placeholder until the benchmark module lands; the helper owning it replaces this file).

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {}

pub(crate) fn run(_args: &BenchArgs) -> anyhow::Result<std::process::ExitCode> {
    anyhow::bail!("bench is not built yet")
}
