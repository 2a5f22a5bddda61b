//! Per-IP and per-pubkey rate limits (governor's keyed token buckets, GCRA).
//!
//! A refused message is answered, never dropped: `OK` false or `CLOSED` with NIP-01's
//! `rate-limited:` prefix. The buckets of keys not seen for a while are forgotten now
//! and then, so what the limiters hold is bounded by the clients active recently.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use nostr::prelude::PublicKey;

use crate::options::{Rate, RateLimits};

/// Checks between two sweeps of forgotten keys.
const SWEEP_EVERY: u64 = 4_096;

/// The relay's limiters.
#[derive(Debug, Default)]
pub(crate) struct Limiters {
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_pubkey: Option<DefaultKeyedRateLimiter<[u8; 32]>>,
    checks: AtomicU64,
}

fn quota(rate: Rate) -> Quota {
    Quota::per_second(rate.per_second).allow_burst(rate.burst)
}

impl Limiters {
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            per_ip: limits.per_ip.map(|r| RateLimiter::keyed(quota(r))),
            per_pubkey: limits.per_pubkey.map(|r| RateLimiter::keyed(quota(r))),
            checks: AtomicU64::new(0),
        }
    }

    fn sweep(&self) {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY != SWEEP_EVERY - 1 {
            return;
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_pubkey {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// The refusal for one more message from `ip`, if it is over its rate.
    pub(crate) fn check_ip(&self, ip: Option<IpAddr>) -> Option<String> {
        let (limiter, ip) = (self.per_ip.as_ref()?, ip?);
        self.sweep();
        limiter
            .check_key(&ip)
            .is_err()
            .then(|| "rate-limited: too many messages from this address; slow down".to_owned())
    }

    /// The refusal for one more event signed by `pubkey`, if it is over its rate.
    pub(crate) fn check_pubkey(&self, pubkey: &PublicKey) -> Option<String> {
        let limiter = self.per_pubkey.as_ref()?;
        self.sweep();
        limiter
            .check_key(&pubkey.to_bytes())
            .is_err()
            .then(|| "rate-limited: too many events from this pubkey; slow down".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::Limiters;
    use crate::options::{Rate, RateLimits};

    #[test]
    fn a_burst_is_allowed_and_the_next_message_refused() {
        let one = NonZeroU32::MIN;
        let limiters = Limiters::new(RateLimits {
            per_ip: Some(Rate {
                per_second: one,
                burst: NonZeroU32::new(3).unwrap(),
            }),
            per_pubkey: None,
        });
        let ip = Some("192.0.2.1".parse().unwrap());
        for _ in 0..3 {
            assert_eq!(limiters.check_ip(ip), None);
        }
        let refused = limiters.check_ip(ip).expect("the fourth is over the burst");
        assert!(refused.starts_with("rate-limited:"));
        assert_eq!(
            limiters.check_ip(Some("192.0.2.2".parse().unwrap())),
            None,
            "another address has its own bucket"
        );
    }
}
