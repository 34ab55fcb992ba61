//! Errors of the test API.

use std::fmt;

/// What went wrong loading a module or running the guest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The module could not be read, compiled, linked or instantiated, or is not a
    /// proxy-wasm ABI 0.2.1 module.
    Load {
        /// The module (file name, or `<bytes>`).
        module: String,
        /// Why.
        message: String,
    },
    /// A call into the guest trapped (a panic aborts, which traps), or a host call failed
    /// loudly (an unimplemented import, an unsupported property, `proc_exit`). The VM is dead
    /// from then on, as Envoy marks a VM that trapped as failed.
    Trap {
        /// The export that was running.
        export: &'static str,
        /// The context it was called for.
        context_id: u32,
        /// The trap or host error.
        message: String,
        /// The last lines the guest logged (the SDK logs the panic message before aborting).
        last_logs: Vec<String>,
    },
    /// The VM failed earlier (trap, `on_vm_start` returned false) and can no longer be used.
    Failed {
        /// Why it failed.
        reason: String,
    },
    /// The test asked for something that cannot happen in Envoy (answering an unknown HTTP
    /// call, responding to a paused or closed stream, a request before configuration...).
    Usage(String),
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Load { module, message } => {
                write!(f, "cannot load wasm module {module}: {message}")
            }
            HostError::Trap {
                export,
                context_id,
                message,
                last_logs,
            } => {
                write!(f, "`{export}` (context #{context_id}) failed: {message}")?;
                if last_logs.is_empty() {
                    write!(f, "\n(the guest logged nothing)")
                } else {
                    write!(f, "\nlast guest log lines:")?;
                    for line in last_logs {
                        write!(f, "\n  {line}")?;
                    }
                    Ok(())
                }
            }
            HostError::Failed { reason } => write!(f, "the VM has failed: {reason}"),
            HostError::Usage(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for HostError {}
