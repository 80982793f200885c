//! `ModelCheckpoint` (being written).

/// Saves checkpoints during `fit` (being written).
#[derive(Debug, Default)]
pub struct ModelCheckpoint;

impl crate::Callback for ModelCheckpoint {}
