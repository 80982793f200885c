//! Shared pieces of the end-to-end tests: a module and a callback that record every hook call.
#![allow(dead_code)]

pub mod recorder;
