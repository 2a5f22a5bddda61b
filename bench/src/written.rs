//! What this process has written, from Linux's `/proc/self/io`: `wchar`, the bytes
//! passed to `write`-family calls (LMDB writes every dirty page and the meta page with
//! `pwrite`/`writev`, so this is the pages a commit writes), and `write_bytes`, the bytes
//! the process caused to be sent to storage (page-cache pages it dirtied, counted once per
//! page until written back). Both are counters of the whole process; the rows that read
//! them run nothing else while they count.

/// The two counters, at one moment (or the growth between two moments).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub(super) wchar: u64,
    pub(super) write_bytes: u64,
}

/// A page of LMDB (and of the page cache) on this platform.
pub(super) const PAGE: u64 = 4_096;

impl Written {
    /// The counters now; `None` where `/proc/self/io` cannot be read (not Linux, or
    /// a kernel without task I/O accounting).
    pub(super) fn now() -> Option<Written> {
        parse(&std::fs::read_to_string("/proc/self/io").ok()?)
    }

    /// Growth since `earlier`.
    pub(super) fn since(self, earlier: Written) -> Written {
        Written {
            wchar: self.wchar.saturating_sub(earlier.wchar),
            write_bytes: self.write_bytes.saturating_sub(earlier.write_bytes),
        }
    }

    pub(super) fn add(&mut self, other: Written) {
        self.wchar += other.wchar;
        self.write_bytes += other.write_bytes;
    }
}

fn parse(text: &str) -> Option<Written> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|value| value.trim().parse::<u64>().ok())
    };
    Some(Written {
        wchar: field("wchar")?,
        write_bytes: field("write_bytes")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_counters_are_read_by_name() {
        let text = "rchar: 10\nwchar: 8192\nsyscr: 1\nsyscw: 2\nread_bytes: 0\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n";
        assert_eq!(
            parse(text),
            Some(Written {
                wchar: 8_192,
                write_bytes: 4_096
            })
        );
        assert_eq!(parse("rchar: 10\n"), None);
        let later = Written {
            wchar: 10_000,
            write_bytes: 4_096,
        };
        let earlier = Written {
            wchar: 1_808,
            write_bytes: 0,
        };
        assert_eq!(
            later.since(earlier),
            Written {
                wchar: 8_192,
                write_bytes: 4_096
            }
        );
    }
}
