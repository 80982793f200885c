//! A data module whose hooks say nothing of its batch type is told to declare it.
use lightning::prelude::*;

struct Data;

#[lightning_datamodule]
impl Data {
    fn setup(&mut self, _stage: Stage) {}
}

fn main() {}
