//! What operators write: the configuration's types, each declared once
//! ([`decode::schema!`](decode)), how they are read from JSON, the errors
//! of a rule set (each with the JSON path it is about) and the documented
//! limits of one.

pub mod config;
pub mod decode;
pub mod error;
pub mod limits;
