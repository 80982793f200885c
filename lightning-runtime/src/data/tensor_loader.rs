//! A DataLoader over in-memory tensors (written next).

/// Placeholder until the loader lands.
pub struct DataLoader;
/// Placeholder until the loader lands.
pub trait Dataset {}
