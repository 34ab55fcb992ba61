//! The decision logic, pure: from the configuration to compiled rules
//! ([`plugin`], [`rules`]) and from a request to a destination
//! ([`rules::RuleSet::decide`]), and what the rules lean on (host names,
//! matchers, weighted and sticky picks, cluster names, the issued cookie).
//! The guards ([`guard`]) and the rule-source poller ([`poll`]) hold their
//! whole protocol here too, with the host behind a small trait
//! ([`shared::SharedStore`], [`poll::PollHost`]).

pub mod cluster;
pub mod cookie;
pub mod guard;
pub mod guarded;
pub mod hosts;
pub mod judge;
pub mod matcher;
pub mod pick;
pub mod plugin;
pub mod poll;
pub mod ramp;
pub mod revision;
pub mod rules;
pub mod shared;
pub mod stats;
pub mod text;
