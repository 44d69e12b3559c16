//! The recovery point of a partition: how far its active segment is known to be whole, so that
//! recovery after a crash verifies only what was written after it instead of the whole segment
//! (Kafka keeps a recovery-point checkpoint for the same reason).
//!
//! ```text
//! DATA/topics/NAME/P/recovery-point, 68 bytes, little-endian:
//!    0  magic               [u8; 4]  "WRP1"
//!    4  boot_id             [u8; 16] the kernel's boot id when written (zeros: unknown)
//!   20  durable             u8       1: the log and indexes were fsynced up to `position`
//!   21  (zero)              [u8; 3]
//!   24  segment_base        u64      base offset of the segment it describes
//!   32  position            u64      bytes of whole, checked batches
//!   40  next_offset         u64      offset after the last of them
//!   48  max_timestamp       i64      largest timestamp among them (i64::MIN: none)
//!   56  index_entries       u32      offset index entries that describe them
//!   60  time_index_entries  u32      time index entries that describe them
//!   64  crc                 u32      CRC32C of bytes 0..64
//! ```
//!
//! When may recovery trust it? A `durable` point was written after an fsync of everything it
//! covers, so always. A point that is not durable (topics with `fsync: never`) describes data
//! that reached the page cache; that survives a killed process but not a machine crash, so it
//! is trusted only when the kernel's boot id is the one it was written under.

use std::path::Path;

use super::LogError;
use super::fs::{FsRef, Open};

const MAGIC: &[u8; 4] = b"WRP1";
const ENCODED_BYTES: usize = 68;
/// The file's name in a partition directory.
pub const FILE_NAME: &str = "recovery-point";

/// A snapshot of an active segment's verified prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryPoint {
    pub boot_id: [u8; 16],
    pub durable: bool,
    pub segment_base: u64,
    pub position: u64,
    pub next_offset: u64,
    pub max_timestamp: i64,
    pub index_entries: u32,
    pub time_index_entries: u32,
}

/// The running kernel's boot id, read once.
pub fn current_boot_id() -> [u8; 16] {
    static ID: std::sync::OnceLock<[u8; 16]> = std::sync::OnceLock::new();
    *ID.get_or_init(boot_id)
}

/// The running kernel's boot id (`/proc/sys/kernel/random/boot_id`), zeros when unknown.
pub fn boot_id() -> [u8; 16] {
    let mut id = [0u8; 16];
    if let Ok(text) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") {
        let hex: String = text.trim().chars().filter(|c| *c != '-').collect();
        if let Ok(bytes) = hex::decode(hex)
            && bytes.len() == 16
        {
            id.copy_from_slice(&bytes);
        }
    }
    id
}

impl RecoveryPoint {
    fn encode(&self) -> [u8; ENCODED_BYTES] {
        let mut b = [0u8; ENCODED_BYTES];
        b[0..4].copy_from_slice(MAGIC);
        b[4..20].copy_from_slice(&self.boot_id);
        b[20] = u8::from(self.durable);
        b[24..32].copy_from_slice(&self.segment_base.to_le_bytes());
        b[32..40].copy_from_slice(&self.position.to_le_bytes());
        b[40..48].copy_from_slice(&self.next_offset.to_le_bytes());
        b[48..56].copy_from_slice(&self.max_timestamp.to_le_bytes());
        b[56..60].copy_from_slice(&self.index_entries.to_le_bytes());
        b[60..64].copy_from_slice(&self.time_index_entries.to_le_bytes());
        let crc = crc32c::crc32c(&b[..64]);
        b[64..68].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8]) -> Option<Self> {
        if b.len() != ENCODED_BYTES || &b[0..4] != MAGIC {
            return None;
        }
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if u32_at(64) != crc32c::crc32c(&b[..64]) {
            return None;
        }
        let mut boot_id = [0u8; 16];
        boot_id.copy_from_slice(&b[4..20]);
        Some(Self {
            boot_id,
            durable: b[20] == 1,
            segment_base: u64_at(24),
            position: u64_at(32),
            next_offset: u64_at(40),
            max_timestamp: u64_at(48) as i64,
            index_entries: u32_at(56),
            time_index_entries: u32_at(60),
        })
    }

    /// Whether recovery may start from this point on a machine whose boot id is `boot_id`.
    pub fn trusted(&self, boot_id: &[u8; 16]) -> bool {
        self.durable || (self.boot_id == *boot_id && *boot_id != [0u8; 16])
    }

    /// The partition's recovery point, or `None` if it is missing or damaged (recovery then
    /// verifies the whole active segment).
    pub fn read(fs: &FsRef, dir: &Path) -> Option<Self> {
        Self::decode(&fs.read_file(&dir.join(FILE_NAME)).ok()??)
    }

    /// Replaces the partition's recovery point: a temporary file renamed over the old one.
    ///
    /// Nothing here is fsynced, on purpose: what a point describes was made durable before it
    /// was taken, and an older point still describes a correct (shorter) prefix of an
    /// append-only log. A machine crash leaves the old point, the new one, or a damaged file
    /// that fails its CRC and costs a full scan; none of them is wrong.
    pub fn write(&self, fs: &FsRef, dir: &Path) -> Result<(), LogError> {
        let path = dir.join(FILE_NAME);
        let tmp = dir.join(format!("{FILE_NAME}.tmp"));
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| LogError::Io { path, source }
        };
        let f = fs.open(&tmp, Open::Truncate).map_err(io(&tmp))?;
        f.write_all_at(&self.encode(), 0).map_err(io(&tmp))?;
        fs.rename(&tmp, &path).map_err(io(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(durable: bool) -> RecoveryPoint {
        RecoveryPoint {
            boot_id: [7; 16],
            durable,
            segment_base: 100,
            position: 4096,
            next_offset: 150,
            max_timestamp: 1_700_000_000_000,
            index_entries: 1,
            time_index_entries: 1,
        }
    }

    #[test]
    fn a_point_round_trips_and_a_damaged_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let fs = crate::log::RealFs::shared();
        assert_eq!(RecoveryPoint::read(&fs, dir.path()), None);
        point(true).write(&fs, dir.path()).unwrap();
        assert_eq!(RecoveryPoint::read(&fs, dir.path()), Some(point(true)));
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[33] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            RecoveryPoint::read(&fs, dir.path()),
            None,
            "a flipped bit fails the CRC"
        );
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(RecoveryPoint::read(&fs, dir.path()), None);
    }

    #[test]
    fn only_durable_points_survive_a_reboot() {
        assert!(point(true).trusted(&[9; 16]));
        assert!(point(false).trusted(&[7; 16]));
        assert!(
            !point(false).trusted(&[9; 16]),
            "page-cache data may be gone after a reboot"
        );
        let unknown = RecoveryPoint {
            boot_id: [0; 16],
            ..point(false)
        };
        assert!(!unknown.trusted(&[0; 16]), "an unknown boot id proves nothing");
    }

    #[test]
    fn this_machine_has_a_boot_id() {
        assert_ne!(boot_id(), [0; 16]);
    }
}
