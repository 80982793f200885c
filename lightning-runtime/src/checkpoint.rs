//! What a checkpoint holds, as the checkpoint hooks see it.

use std::collections::BTreeMap;

/// A checkpoint being written or restored. `on_save_checkpoint` adds the module's own entries;
/// `on_load_checkpoint` reads them back before the weights are loaded.
///
/// ```
/// let mut ckpt = lightning_runtime::Checkpoint::default();
/// ckpt.insert("vocab_size", "512");
/// assert_eq!(ckpt.get("vocab_size"), Some("512"));
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Checkpoint {
    /// The module's own entries.
    pub extra: BTreeMap<String, String>,
    /// The epoch the checkpoint was written in.
    pub epoch: usize,
    /// The optimizer steps taken when it was written.
    pub global_step: usize,
}

impl Checkpoint {
    /// Adds an entry of the module's own.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        self.extra.insert(key.to_string(), value.into());
    }

    /// An entry of the module's own.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extra.get(key).map(String::as_str)
    }
}
