//! Run-time detection of AVX2 without `std` (CPUID and XGETBV), cached in an atomic.

use core::arch::x86_64::{__cpuid_count, _xgetbv};
use core::sync::atomic::{AtomicU8, Ordering};

const UNKNOWN: u8 = 0;
const OFF: u8 = 1;
const ON: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// True when the AVX2 kernels run: the CPU and the OS support AVX2 and [`set_enabled`] did not
/// turn them off.
#[inline]
pub fn avx2() -> bool {
    match STATE.load(Ordering::Relaxed) {
        ON => true,
        OFF => false,
        _ => {
            let on = detect();
            STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
            on
        }
    }
}

/// Turns the AVX2 kernels off (every call then takes the portable kernels, for comparing the
/// two) or back on when the CPU supports them. Process-wide.
pub fn set_enabled(enabled: bool) {
    let on = enabled && detect();
    STATE.store(if on { ON } else { OFF }, Ordering::Relaxed);
}

/// CPUID leaf 7 reports AVX2, leaf 1 AVX and OSXSAVE, and the OS saves the YMM registers
/// (XCR0 bits 1 and 2): all four are needed before a YMM instruction may run.
fn detect() -> bool {
    let max_leaf = __cpuid_count(0, 0).eax;
    if max_leaf < 7 {
        return false;
    }
    let ecx1 = __cpuid_count(1, 0).ecx;
    let osxsave = ecx1 & (1 << 27) != 0;
    let avx = ecx1 & (1 << 28) != 0;
    if !(osxsave && avx) {
        return false;
    }
    // SAFETY: OSXSAVE is set, so XGETBV is available.
    let xcr0 = unsafe { xcr0() };
    if xcr0 & 0b110 != 0b110 {
        return false;
    }
    __cpuid_count(7, 0).ebx & (1 << 5) != 0
}

/// XCR0, the register of the state components the OS saves.
///
/// # Safety
/// The CPU must report OSXSAVE.
#[target_feature(enable = "xsave")]
unsafe fn xcr0() -> u64 {
    // SAFETY: the caller checked OSXSAVE.
    unsafe { _xgetbv(0) }
}
