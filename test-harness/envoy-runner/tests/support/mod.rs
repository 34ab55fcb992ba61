//! Helpers of the reload end-to-end tests: a rule server and background load.
#![allow(dead_code)]

pub mod ecds;
pub mod load;
pub mod rule_server;
pub mod stats;
