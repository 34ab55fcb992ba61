//! The few WASI (`wasi_snapshot_preview1`) calls a proxy-wasm module built for
//! `wasm32-wasip1` makes, answered like Envoy answers them: stdout/stderr go to the log,
//! randomness and clocks come from the VM's seeded generator and manual clock, the environment
//! is what the test configured, there are no files, and `proc_exit` is an error.

use super::memory::{parts, read, read_u32, slice_mut, write, write_u32, write_u64, Ctx};
use super::state::{HostCall, HostState};
use wasmtime::Linker;

type R = wasmtime::Result<u32>;

const SUCCESS: u32 = 0;
const EBADF: u32 = 8;
const EFAULT: u32 = 21;
const EINVAL: u32 = 28;

/// Unwraps a memory access, answering `EFAULT` on failure.
macro_rules! mem {
    ($e:expr) => {
        match $e {
            Ok(value) => value,
            Err(_) => return Ok(EFAULT),
        }
    };
}

fn count(c: &mut Ctx<'_>, call: HostCall) {
    // Failures are only injected into proxy-wasm calls; this only counts.
    let _ = c.data_mut().enter(call);
}

pub(crate) fn add_wasi_calls(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    let wasi = "wasi_snapshot_preview1";
    linker.func_wrap(wasi, "args_get", args_get)?;
    linker.func_wrap(wasi, "args_sizes_get", args_sizes_get)?;
    linker.func_wrap(wasi, "environ_get", environ_get)?;
    linker.func_wrap(wasi, "environ_sizes_get", environ_sizes_get)?;
    linker.func_wrap(wasi, "clock_time_get", clock_time_get)?;
    linker.func_wrap(wasi, "clock_res_get", clock_res_get)?;
    linker.func_wrap(wasi, "random_get", random_get)?;
    linker.func_wrap(wasi, "fd_write", fd_write)?;
    linker.func_wrap(wasi, "fd_read", fd_read)?;
    linker.func_wrap(wasi, "fd_close", fd_close)?;
    linker.func_wrap(wasi, "fd_seek", fd_seek)?;
    linker.func_wrap(wasi, "fd_fdstat_get", fd_fdstat_get)?;
    linker.func_wrap(wasi, "fd_prestat_get", fd_prestat_get)?;
    linker.func_wrap(wasi, "fd_prestat_dir_name", fd_prestat_dir_name)?;
    linker.func_wrap(wasi, "proc_exit", proc_exit)?;
    linker.func_wrap(wasi, "sched_yield", sched_yield)?;
    linker.func_wrap(wasi, "poll_oneoff", poll_oneoff)?;
    Ok(())
}

fn args_get(mut c: Ctx<'_>, _argv: u32, _argv_buf: u32) -> R {
    count(&mut c, HostCall::ArgsGet);
    Ok(SUCCESS)
}

fn args_sizes_get(mut c: Ctx<'_>, argc_ptr: u32, argv_buf_size_ptr: u32) -> R {
    count(&mut c, HostCall::ArgsSizesGet);
    let (mem, _) = parts(&mut c)?;
    mem!(write_u32(mem, argc_ptr, 0));
    mem!(write_u32(mem, argv_buf_size_ptr, 0));
    Ok(SUCCESS)
}

fn environ_sizes_get(mut c: Ctx<'_>, count_ptr: u32, buf_size_ptr: u32) -> R {
    count(&mut c, HostCall::EnvironSizesGet);
    let (mem, st) = parts(&mut c)?;
    let size: usize = st.env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    mem!(write_u32(mem, count_ptr, st.env.len() as u32));
    mem!(write_u32(mem, buf_size_ptr, size as u32));
    Ok(SUCCESS)
}

fn environ_get(mut c: Ctx<'_>, environ_ptr: u32, buf_ptr: u32) -> R {
    count(&mut c, HostCall::EnvironGet);
    let (mem, st) = parts(&mut c)?;
    let mut at = buf_ptr;
    for (i, (key, value)) in st.env.iter().enumerate() {
        let entry = format!("{key}={value}\0");
        mem!(write_u32(mem, environ_ptr + 4 * i as u32, at));
        mem!(write(mem, at, entry.as_bytes()));
        at += entry.len() as u32;
    }
    Ok(SUCCESS)
}

fn clock_time_get(mut c: Ctx<'_>, clock_id: u32, _precision: u64, ret: u32) -> R {
    count(&mut c, HostCall::ClockTimeGet);
    let (mem, st) = parts(&mut c)?;
    let nanos = match clock_id {
        0 => st.clock.nanos(),
        // Monotonic, and the CPU-time clocks (Envoy answers those from the monotonic clock).
        1..=3 => st.clock.monotonic_nanos(),
        _ => return Ok(EINVAL),
    };
    mem!(write_u64(mem, ret, nanos));
    Ok(SUCCESS)
}

fn clock_res_get(mut c: Ctx<'_>, clock_id: u32, ret: u32) -> R {
    count(&mut c, HostCall::ClockResGet);
    if clock_id > 3 {
        return Ok(EINVAL);
    }
    let (mem, _) = parts(&mut c)?;
    mem!(write_u64(mem, ret, 1));
    Ok(SUCCESS)
}

fn random_get(mut c: Ctx<'_>, buf: u32, len: u32) -> R {
    count(&mut c, HostCall::RandomGet);
    // Envoy's limit.
    if len > 64 * 1024 {
        return Ok(EINVAL);
    }
    let (mem, st) = parts(&mut c)?;
    st.random.fill(mem!(slice_mut(mem, buf, len)));
    Ok(SUCCESS)
}

fn fd_write(mut c: Ctx<'_>, fd: u32, iovs: u32, iovs_len: u32, nwritten_ptr: u32) -> R {
    count(&mut c, HostCall::FdWrite);
    if fd != 1 && fd != 2 {
        return Ok(EBADF);
    }
    let (mem, st) = parts(&mut c)?;
    let mut written = 0u32;
    for i in 0..iovs_len {
        let iov = iovs + 8 * i;
        let ptr = mem!(read_u32(mem, iov));
        let len = mem!(read_u32(mem, iov + 4));
        let bytes = mem!(read(mem, ptr, len));
        if fd == 1 {
            st.stdout.extend_from_slice(bytes);
        } else {
            st.stderr.extend_from_slice(bytes);
        }
        written += len;
    }
    st.flush_output(false);
    mem!(write_u32(mem, nwritten_ptr, written));
    Ok(SUCCESS)
}

fn fd_read(mut c: Ctx<'_>, _fd: u32, _iovs: u32, _iovs_len: u32, _nread_ptr: u32) -> R {
    count(&mut c, HostCall::FdRead);
    Ok(EBADF)
}

fn fd_close(mut c: Ctx<'_>, _fd: u32) -> R {
    count(&mut c, HostCall::FdClose);
    Ok(EBADF)
}

fn fd_seek(mut c: Ctx<'_>, _fd: u32, _offset: i64, _whence: u32, _ret: u32) -> R {
    count(&mut c, HostCall::FdSeek);
    Ok(EBADF)
}

fn fd_fdstat_get(mut c: Ctx<'_>, fd: u32, stat_ptr: u32) -> R {
    count(&mut c, HostCall::FdFdstatGet);
    if fd > 2 {
        return Ok(EBADF);
    }
    let (mem, _) = parts(&mut c)?;
    // fdstat: filetype u8 (2 = character device), flags u16 at 2, rights u64 at 8 and 16.
    let mut stat = [0u8; 24];
    stat[0] = 2;
    // fd_write (bit 6) for stdout/stderr, fd_read (bit 1) for stdin.
    let rights: u64 = if fd == 0 { 1 << 1 } else { 1 << 6 };
    stat[8..16].copy_from_slice(&rights.to_le_bytes());
    mem!(write(mem, stat_ptr, &stat));
    Ok(SUCCESS)
}

fn fd_prestat_get(mut c: Ctx<'_>, _fd: u32, _ptr: u32) -> R {
    count(&mut c, HostCall::FdPrestatGet);
    // No preopened directories.
    Ok(EBADF)
}

fn fd_prestat_dir_name(mut c: Ctx<'_>, _fd: u32, _ptr: u32, _len: u32) -> R {
    count(&mut c, HostCall::FdPrestatDirName);
    Ok(EBADF)
}

fn proc_exit(mut c: Ctx<'_>, code: u32) -> wasmtime::Result<()> {
    count(&mut c, HostCall::ProcExit);
    Err(wasmtime::Error::msg(format!(
        "the module called wasi proc_exit({code})"
    )))
}

fn sched_yield(mut c: Ctx<'_>) -> R {
    count(&mut c, HostCall::SchedYield);
    Ok(SUCCESS)
}

fn poll_oneoff(mut c: Ctx<'_>, _in: u32, _out: u32, _nsubscriptions: u32, nevents_ptr: u32) -> R {
    count(&mut c, HostCall::PollOneoff);
    let (mem, _) = parts(&mut c)?;
    mem!(write_u32(mem, nevents_ptr, 0));
    Ok(SUCCESS)
}
