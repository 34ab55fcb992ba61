//! The one C function the compiled code calls that neither the module nor
//! `compiler_builtins` provides on `wasm32-wasip1` without libc: `memcmp`
//! (slice and string comparisons lower to it; `memcpy`, `memmove` and
//! `memset` lower to bulk-memory instructions).

/// Compares `n` bytes: negative, zero or positive as the first differing
/// byte of `a` is smaller than, equal to, or larger than that of `b`.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes, as C requires.
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    let mut i = 0;
    // Eight bytes at a time while they are equal (header values and names
    // are compared on the request path), then the differing byte.
    while i + 8 <= n {
        let x = a.add(i).cast::<u64>().read_unaligned();
        let y = b.add(i).cast::<u64>().read_unaligned();
        if x != y {
            break;
        }
        i += 8;
    }
    while i < n {
        let (x, y) = (*a.add(i), *b.add(i));
        if x != y {
            return i32::from(x) - i32::from(y);
        }
        i += 1;
    }
    0
}
