pub mod envoy;
pub mod fixtures;
