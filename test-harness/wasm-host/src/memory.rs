//! Guest memory: bounds-checked reads and writes, and returning bytes to the guest the way
//! Envoy does (allocate with the guest's `malloc`/`proxy_on_memory_allocate`, copy, write
//! pointer and size; nothing to copy gives a null pointer and size 0).

use super::state::HostState;
use super::types::Status;
use wasmtime::Caller;

pub(crate) type Ctx<'a> = Caller<'a, HostState>;

/// Guest memory and host state, borrowed together.
pub(crate) fn parts<'a>(
    caller: &'a mut Ctx<'_>,
) -> wasmtime::Result<(&'a mut [u8], &'a mut HostState)> {
    let memory = caller
        .data()
        .memory
        .ok_or_else(|| wasmtime::Error::msg("the module exports no memory named `memory`"))?;
    Ok(memory.data_and_store_mut(caller))
}

fn range(ptr: u32, len: u32) -> std::ops::Range<usize> {
    let start = ptr as usize;
    start..start.saturating_add(len as usize)
}

/// `len` bytes at `ptr`.
pub(crate) fn read(mem: &[u8], ptr: u32, len: u32) -> Result<&[u8], Status> {
    mem.get(range(ptr, len)).ok_or(Status::InvalidMemoryAccess)
}

/// `len` writable bytes at `ptr`.
pub(crate) fn slice_mut(mem: &mut [u8], ptr: u32, len: u32) -> Result<&mut [u8], Status> {
    mem.get_mut(range(ptr, len))
        .ok_or(Status::InvalidMemoryAccess)
}

/// Writes `bytes` at `ptr`.
pub(crate) fn write(mem: &mut [u8], ptr: u32, bytes: &[u8]) -> Result<(), Status> {
    slice_mut(mem, ptr, bytes.len() as u32)?.copy_from_slice(bytes);
    Ok(())
}

/// Writes a little-endian `u32` at `ptr`.
pub(crate) fn write_u32(mem: &mut [u8], ptr: u32, value: u32) -> Result<(), Status> {
    write(mem, ptr, &value.to_le_bytes())
}

/// Writes a little-endian `u64` at `ptr`.
pub(crate) fn write_u64(mem: &mut [u8], ptr: u32, value: u64) -> Result<(), Status> {
    write(mem, ptr, &value.to_le_bytes())
}

/// Reads a little-endian `u32` at `ptr`.
pub(crate) fn read_u32(mem: &[u8], ptr: u32) -> Result<u32, Status> {
    let bytes = read(mem, ptr, 4)?;
    let mut word = [0; 4];
    word.copy_from_slice(bytes);
    Ok(u32::from_le_bytes(word))
}

/// Allocates `size` bytes in the guest. `Ok(None)` when the allocator returned null.
pub(crate) fn alloc(caller: &mut Ctx<'_>, size: u32) -> wasmtime::Result<Option<u32>> {
    let malloc = caller.data().malloc.clone().ok_or_else(|| {
        wasmtime::Error::msg("the module exports neither `malloc` nor `proxy_on_memory_allocate`")
    })?;
    let ptr = malloc.call(&mut *caller, size)?;
    Ok((ptr != 0).then_some(ptr))
}

/// Returns `size` bytes to the guest: allocates them, lets `fill` write them (it can read the
/// host state at the same time), then writes the pointer at `ptr_ptr` and the size at
/// `size_ptr`. A size of 0 allocates nothing and returns a null pointer, like Envoy.
pub(crate) fn return_with(
    caller: &mut Ctx<'_>,
    size: usize,
    ptr_ptr: u32,
    size_ptr: u32,
    fill: impl FnOnce(&mut [u8], &HostState),
) -> wasmtime::Result<Status> {
    let Ok(size) = u32::try_from(size) else {
        return Ok(Status::InvalidMemoryAccess);
    };
    let mut addr = 0;
    if size > 0 {
        match alloc(caller, size)? {
            Some(ptr) => addr = ptr,
            None => return Ok(Status::InvalidMemoryAccess),
        }
    }
    let (mem, state) = parts(caller)?;
    let result = (|| {
        if size > 0 {
            fill(slice_mut(mem, addr, size)?, state);
        }
        write_u32(mem, ptr_ptr, addr)?;
        write_u32(mem, size_ptr, size)
    })();
    Ok(match result {
        Ok(()) => Status::Ok,
        Err(status) => status,
    })
}

/// Returns a copy of `bytes` to the guest (see [`return_with`]).
pub(crate) fn return_bytes(
    caller: &mut Ctx<'_>,
    bytes: &[u8],
    ptr_ptr: u32,
    size_ptr: u32,
) -> wasmtime::Result<Status> {
    return_with(caller, bytes.len(), ptr_ptr, size_ptr, |out, _| {
        out.copy_from_slice(bytes)
    })
}
