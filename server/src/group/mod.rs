//! Committed offsets. Today its one kind of member is a processor task (processor x input
//! partition), which commits its input offset in the same transaction as its outputs and state
//! ([`offsets`]); consumer groups over HTTP will keep their offsets here too.

pub mod offsets;

pub use offsets::{CommitKind, OffsetStore, PartBound, TaskCommit};
