//! The last committed transaction id, read from LMDB's lock file without a lock.
//!
//! Every read of the engine first asks whether another process has committed since this
//! process last looked (`follow::refresh`). LMDB answers that in two places: the meta
//! pages of the data file, which `mdb_env_info` reads through the data map — a map that
//! a resize replaces, so the read must hold `Shared::resize` shared, two atomic
//! read-modify-writes on a hot path of about a hundred nanoseconds — and the lock file's
//! header, `MDB_txninfo.mti_txnid`, which the writer of any process sets right after
//! its commit is durable and before the commit returns, and which every read
//! transaction takes its snapshot from (`mdb_txn_renew0`). The lock file is mapped once
//! and never remapped, so this module maps it read-only itself and reads that word with
//! one acquire load.
//!
//! **The lock file's descriptor is never closed.** LMDB knows whether other processes
//! have the environment open through POSIX record locks on `lock.mdb`, and POSIX
//! record locks belong to the process and the file, not to a descriptor: closing *any*
//! descriptor of `lock.mdb` drops *every* lock this process holds on it, LMDB's
//! included. The next process to open the database then believes it is alone and
//! re-initialises the lock file under the live writers and readers (lost commits, a
//! reader table wiped under open snapshots). So the descriptor this module opens to map
//! the file is kept open for the life of the process ([`kept_open`]), one per lock
//! file, and nothing else in the workspace opens `lock.mdb` or `data.mdb`
//! (`store/tests/lock_file.rs` checks LMDB's own promise from another process).
//!
//! The word's place is LMDB's on-disk lock format (`MDB_txbody`: the magic, the format,
//! then the transaction id, a `size_t`, at byte 8). [`LockFileTxn::open`] checks the
//! magic and that the word equals what `mdb_env_info` reports before it is trusted;
//! when either check fails (another LMDB build, a 32-bit target, no lock file), the
//! store keeps reading the meta pages under the resize lock.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use heed::{Env, WithoutTls};
use memmap2::Mmap;

/// `MDB_MAGIC`, the first word of a lock file.
const MAGIC: u32 = 0xBEEF_C0DE;
/// Offset of `mtb_txnid` in the lock file.
const TXNID_AT: usize = 8;

/// Every `lock.mdb` this process has opened, by device and inode. The descriptors are
/// never closed (see the module documentation): closing one would release LMDB's
/// record locks on the file for the whole process.
static KEPT_OPEN: parking_lot::Mutex<BTreeMap<(u64, u64), &'static File>> =
    parking_lot::Mutex::new(BTreeMap::new());

/// A read-only descriptor of the lock file at `path`, opened once per lock file and
/// never closed. A lookup by path takes no descriptor (`stat`), so a lock file this
/// process already holds is not opened again.
fn kept_open(path: &Path) -> std::io::Result<&'static File> {
    let mut kept = KEPT_OPEN.lock();
    if let Ok(meta) = std::fs::metadata(path)
        && let Some(file) = kept.get(&(meta.dev(), meta.ino()))
    {
        return Ok(file);
    }
    // Leaked before anything else can fail: from here on this descriptor is never
    // closed, even if the file was replaced between the `stat` above and the open.
    let file: &'static File = Box::leak(Box::new(File::open(path)?));
    let meta = file.metadata()?;
    Ok(*kept.entry((meta.dev(), meta.ino())).or_insert(file))
}

/// The lock file, mapped read-only.
#[derive(Debug)]
pub(crate) struct LockFileTxn {
    map: Mmap,
}

impl LockFileTxn {
    /// Maps `dir/lock.mdb` and checks it against `env`, whose lock file it must be.
    /// `None` (with the reason logged) when the word cannot be trusted.
    pub(crate) fn open(
        dir: &Path,
        env: &Env<WithoutTls>,
        resize: &parking_lot::RwLock<()>,
    ) -> Option<Self> {
        if !cfg!(target_pointer_width = "64") {
            return None;
        }
        let path = dir.join("lock.mdb");
        let map = match kept_open(&path).and_then(|file| {
            #[expect(unsafe_code, reason = "mapping LMDB's lock file; see SAFETY")]
            // SAFETY: `Mmap::map` requires that the file is not truncated or changed
            // under the map in a way that makes a reference to its bytes invalid. LMDB
            // sizes the lock file once, when the first process opens the environment,
            // and never truncates it while any process has it open — this process holds
            // the environment open for as long as this map lives (`Shared` drops the map
            // with the environment). The bytes do change under the map (other
            // processes' commits): nothing here takes a reference to them; the one word
            // read is read atomically (`txn`).
            unsafe {
                Mmap::map(file)
            }
        }) {
            Ok(map) => map,
            Err(error) => {
                tracing::debug!(%error, "not reading the lock file's transaction id");
                return None;
            }
        };
        if map.len() < TXNID_AT + 8
            || map.as_ptr().align_offset(8) != 0
            || map[..4] != MAGIC.to_ne_bytes()
        {
            tracing::debug!("the lock file's header is not the expected layout");
            return None;
        }
        let probe = Self { map };
        // Another process may commit between two reads: the word must equal the meta
        // pages' id read on both sides of it.
        for _ in 0..100 {
            let _shared = resize.read_recursive();
            let before = env.info().last_txn_id as u64;
            let word = probe.txn();
            let after = env.info().last_txn_id as u64;
            if before == after {
                if word == before {
                    return Some(probe);
                }
                tracing::debug!(
                    word,
                    meta = before,
                    "the lock file's transaction id disagrees with the meta pages"
                );
                return None;
            }
        }
        None
    }

    /// The id of the last transaction committed by any process.
    pub(crate) fn txn(&self) -> u64 {
        #[expect(
            clippy::cast_ptr_alignment,
            reason = "8-byte aligned: the map is page-aligned (checked at open)"
        )]
        let word = self
            .map
            .as_ptr()
            .wrapping_add(TXNID_AT)
            .cast::<u64>()
            .cast_mut();
        #[expect(unsafe_code, reason = "an atomic view of a shared word; see SAFETY")]
        // SAFETY: `word` is 8-byte aligned (the map is page-aligned, `open` checks it)
        // and lies inside the map, which lives as long as `self`. Writers of other
        // processes store it as one aligned machine word, which on the 64-bit targets
        // this is enabled for is single-copy atomic; this process only loads it, and
        // never through a non-atomic reference.
        let word = unsafe { AtomicU64::from_ptr(word) };
        word.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use heed::types::Bytes;

    use super::*;
    use crate::env::open_env;
    use crate::options::StoreOptions;

    fn env_in(dir: &Path) -> Env<WithoutTls> {
        open_env(dir, &StoreOptions::default()).unwrap().0
    }

    /// Commits one put to a database of `env`.
    fn commit(env: &Env<WithoutTls>, key: &[u8]) {
        let mut txn = env.write_txn().unwrap();
        let db: heed::Database<Bytes, Bytes> = env.create_database(&mut txn, Some("t")).unwrap();
        db.put(&mut txn, key, b"v").unwrap();
        txn.commit().unwrap();
    }

    fn meta_txn(env: &Env<WithoutTls>) -> u64 {
        env.info().last_txn_id as u64
    }

    #[test]
    fn the_word_follows_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let resize = parking_lot::RwLock::new(());
        let probe =
            LockFileTxn::open(dir.path(), &env, &resize).expect("the lock file is readable");
        assert_eq!(probe.txn(), meta_txn(&env));
        for i in 0..5u8 {
            let before = probe.txn();
            commit(&env, &[i]);
            assert_eq!(probe.txn(), before + 1);
            assert_eq!(probe.txn(), meta_txn(&env));
        }
        // A read transaction takes its snapshot from the same word.
        let txn = env.read_txn().unwrap();
        assert_eq!(txn.id() as u64, probe.txn());
    }

    #[test]
    fn a_lock_file_that_is_not_this_environment_s_is_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_in(dir.path());
        let resize = parking_lot::RwLock::new(());
        commit(&env, b"a");

        // No lock file at all.
        let empty = tempfile::tempdir().unwrap();
        assert!(LockFileTxn::open(empty.path(), &env, &resize).is_none());

        // Another environment's lock file, at another transaction.
        let other = tempfile::tempdir().unwrap();
        let other_env = env_in(other.path());
        for key in [b"x", b"y", b"z"] {
            commit(&other_env, key);
        }
        assert_ne!(meta_txn(&other_env), meta_txn(&env));
        assert!(LockFileTxn::open(other.path(), &env, &resize).is_none());
        assert!(LockFileTxn::open(other.path(), &other_env, &resize).is_some());

        // Files that are not lock files: the wrong magic, or too short for the word.
        let fake = tempfile::tempdir().unwrap();
        let mut header = vec![0u8; 64];
        header[TXNID_AT..TXNID_AT + 8].copy_from_slice(&meta_txn(&env).to_ne_bytes());
        std::fs::write(fake.path().join("lock.mdb"), &header).unwrap();
        assert!(LockFileTxn::open(fake.path(), &env, &resize).is_none());
        header[..4].copy_from_slice(&MAGIC.to_ne_bytes());
        std::fs::write(fake.path().join("lock.mdb"), &header).unwrap();
        assert!(
            LockFileTxn::open(fake.path(), &env, &resize).is_some(),
            "the same header with the magic is accepted"
        );
        std::fs::write(fake.path().join("lock.mdb"), &header[..TXNID_AT + 8]).unwrap();
        assert!(
            LockFileTxn::open(fake.path(), &env, &resize).is_some(),
            "the magic, the format and the word are all it needs"
        );
        std::fs::write(fake.path().join("lock.mdb"), &header[..TXNID_AT + 4]).unwrap();
        assert!(LockFileTxn::open(fake.path(), &env, &resize).is_none());
    }
}
