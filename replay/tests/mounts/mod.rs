//! Mounting in tests: whether this process may mount, and a mount point unmounted on
//! drop. Tests that need a mount skip only that case, with the reason printed, when the
//! machine forbids mounts — and fail when it allows them but mounting failed.

use std::path::PathBuf;
use std::process::Command;

/// Whether this process holds `CAP_SYS_ADMIN` (needed to mount), from /proc.
pub(crate) fn has_cap_sys_admin() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 21) != 0)
}

/// A mount point, lazily unmounted on drop.
#[derive(Debug)]
pub(crate) struct Unmount(pub(crate) PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}
