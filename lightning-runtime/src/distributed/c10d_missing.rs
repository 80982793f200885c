//! This build has no distributed training: Gloo's headers were not found when it was compiled (see
//! `scripts/setup-torch.sh`). The same API as `c10d.rs`; connecting is an error that says what to install, so
//! no group, and nothing that needs one, can exist.

use std::time::Duration;

use tch::Tensor;

use super::ReduceOp;
use crate::{Error, Result};

/// Whether this build has distributed training.
pub(crate) const AVAILABLE: bool = false;
/// Whether it has NCCL.
pub(crate) const NCCL: bool = false;

enum Never {}

pub(crate) struct Group(Never);

impl Group {
    pub fn connect(_: &str, _: u16, _: usize, _: usize, _: Duration, _: Option<&str>, _: bool) -> Result<Group> {
        Err(Error::Config(super::NOT_BUILT.to_string()))
    }
    pub fn rank(&self) -> usize {
        match self.0 {}
    }
    pub fn size(&self) -> usize {
        match self.0 {}
    }
    pub fn all_reduce(&self, _: &Tensor, _: ReduceOp) -> Result<()> {
        match self.0 {}
    }
    pub fn all_reduce_start(&self, _: &Tensor, _: ReduceOp) -> Result<Pending> {
        match self.0 {}
    }
    pub fn broadcast(&self, _: &[Tensor], _: usize) -> Result<()> {
        match self.0 {}
    }
    pub fn all_gather(&self, _: &Tensor) -> Result<Vec<Tensor>> {
        match self.0 {}
    }
    pub fn barrier(&self) -> Result<()> {
        match self.0 {}
    }
    pub fn store_set(&self, _: &str, _: &[u8]) -> Result<()> {
        match self.0 {}
    }
    pub fn store_try_get(&self, _: &str) -> Result<Option<Vec<u8>>> {
        match self.0 {}
    }
}

pub(crate) struct Pending(Never);

impl Pending {
    pub fn wait(self) -> Result<()> {
        match self.0 {}
    }
}

pub(crate) struct Reducer(Never);

impl Reducer {
    pub fn new(group: &Group, _: &[Tensor], _: usize, _: bool) -> Result<Reducer> {
        match group.0 {}
    }
    pub fn prepare(&mut self, _: Option<&Tensor>) -> Result<()> {
        match self.0 {}
    }
}
