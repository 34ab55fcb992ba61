pub mod envoy;
