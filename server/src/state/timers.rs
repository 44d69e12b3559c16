//! Timers as entries of a task's timer store, ordered by when they are due:
//!
//! ```text
//! key   = DOMAIN u8 (0: event time, 1: processing time)
//!         AT     u64 big-endian, the time (ms) with its sign bit flipped (orders like i64)
//!         the timer's own key
//! value = empty
//! ```
//!
//! One entry per (key, time, domain), as Flink keeps them: setting a timer twice sets it once.

/// Which clock a timer follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    EventTime = 0,
    ProcessingTime = 1,
}

/// A timer that came due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    pub key: Vec<u8>,
    pub at: i64,
    pub domain: Domain,
}

/// The store key of a timer.
pub fn encode(domain: Domain, at: i64, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + key.len());
    k.push(domain as u8);
    k.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
    k.extend_from_slice(key);
    k
}

/// A timer from its store key.
pub fn decode(k: &[u8]) -> Option<Fired> {
    let domain = match *k.first()? {
        0 => Domain::EventTime,
        1 => Domain::ProcessingTime,
        _ => return None,
    };
    let at = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?) ^ (1 << 63);
    Some(Fired {
        key: k[9..].to_vec(),
        at: at as i64,
        domain,
    })
}

/// The first store key of `domain` (every timer of it sorts at or after it).
pub fn domain_start(domain: Domain) -> Vec<u8> {
    vec![domain as u8]
}

/// The first store key of `domain` past time `at`.
pub fn after(domain: Domain, at: i64) -> Vec<u8> {
    encode(domain, at.saturating_add(1), &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timer_keys_sort_by_domain_then_time_then_key_and_round_trip() {
        let mut keys = [
            encode(Domain::ProcessingTime, -5, b"a"),
            encode(Domain::EventTime, 10, b"b"),
            encode(Domain::EventTime, -1, b"z"),
            encode(Domain::EventTime, 10, b"a"),
        ];
        keys.sort();
        let decoded: Vec<Fired> = keys.iter().map(|k| decode(k).unwrap()).collect();
        assert_eq!(
            decoded[0],
            Fired {
                key: b"z".to_vec(),
                at: -1,
                domain: Domain::EventTime
            }
        );
        assert_eq!(decoded[1].key, b"a");
        assert_eq!(decoded[2].key, b"b");
        assert_eq!(decoded[3].domain, Domain::ProcessingTime);
        assert!(encode(Domain::EventTime, 10, b"zzz") < after(Domain::EventTime, 10));
        assert!(after(Domain::EventTime, 10) <= encode(Domain::EventTime, 11, b""));
    }
}
