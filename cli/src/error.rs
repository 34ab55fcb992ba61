//! The error of a subcommand: a message for stderr and the exit code.

use std::fmt;

/// Exit code when rules (or an import) are rejected.
pub const EXIT_REJECTED: u8 = 1;
/// Exit code for a usage error, or a file or endpoint that cannot be read.
pub const EXIT_USAGE: u8 = 2;

/// What a subcommand failed with.
#[derive(Debug)]
pub struct CliError {
    /// Printed after `error: ` (nothing is printed when empty: the subcommand
    /// already explained).
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl CliError {
    /// Rules were rejected (exit code 1).
    pub fn rejected(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_REJECTED,
        }
    }

    /// A usage error or unreadable input (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        CliError {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Shorthand for results of subcommands.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
