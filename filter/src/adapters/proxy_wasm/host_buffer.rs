//! A host buffer (the plugin configuration, a rule file's HTTP body) as a
//! configuration [`Source`]: read a piece at a time, so that the module
//! never holds the configuration whole while it compiles.

use alloc::{string::ToString, vec::Vec};

use crate::domain::plugin::Source;

use filter_runtime::json::PIECE;
use filter_runtime::proxy_wasm::hostcalls::{self, Buffer};

/// `size` bytes of the host's `buffer`.
pub struct HostBuffer {
    pub buffer: Buffer,
    pub size: usize,
}

impl Source for HostBuffer {
    fn size(&self) -> usize {
        self.size
    }

    fn read(&mut self, start: usize, out: &mut Vec<u8>) -> Result<(), alloc::string::String> {
        let max = self.size.saturating_sub(start).min(PIECE);
        if max > 0 {
            let piece = hostcalls::buffer(self.buffer, start, max).map_err(|s| s.to_string())?;
            out.extend_from_slice(piece.as_slice());
        }
        Ok(())
    }
}
