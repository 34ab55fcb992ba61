//! `memcmp`: the one C function the compiled code calls that neither the
//! module nor `compiler_builtins` provides on `wasm32-wasip1` without libc
//! (slice and string comparisons lower to it; `memcpy`, `memmove` and
//! `memset` lower to bulk-memory instructions). The symbol is defined on
//! wasm32 only; [`compare`] is the same code, on every target, for tests.

/// C's `memcmp`, for the module.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes, as C requires.
#[cfg(all(target_arch = "wasm32", not(test)))]
#[no_mangle]
pub unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    compare(a, b, n)
}

/// Compares `n` bytes: negative, zero or positive as the first differing
/// byte of `a` is smaller than, equal to, or larger than that of `b`.
///
/// # Safety
/// `a` and `b` are valid for reads of `n` bytes, as C requires.
#[inline(always)]
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
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

#[cfg(test)]
mod tests {
    use super::compare;

    /// The sign of `compare` is the order of the slices (C's contract, and
    /// what `<[u8] as Ord>` says), at every length and difference position
    /// around the 8-byte steps.
    #[test]
    fn the_sign_is_the_order_of_the_bytes() {
        let base: Vec<u8> = (0..40u8).map(|i| i.wrapping_mul(37)).collect();
        for n in 0..=base.len() {
            let a = &base[..n];
            assert_eq!(unsafe { compare(a.as_ptr(), a.as_ptr(), n) }, 0);
            for at in 0..n {
                for delta in [1u8, 0x80, 0xff] {
                    let mut b = a.to_vec();
                    b[at] = b[at].wrapping_add(delta);
                    let got = unsafe { compare(a.as_ptr(), b.as_ptr(), n) };
                    assert_eq!(got.signum(), a.cmp(&b[..]) as i32, "n {n} at {at} +{delta}");
                    assert_eq!(i32::from(a[at]) - i32::from(b[at]), got);
                }
            }
        }
    }
}
