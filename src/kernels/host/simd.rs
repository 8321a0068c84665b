//! The AVX2 inner product shared by the convolution and the fully connected kernel.

use core::arch::x86_64::*;

/// Values per AVX2 step: sixteen 16-bit activations against sixteen int8 weights.
pub(super) const STEP: usize = 16;

/// `P` widened activation vectors × `R` int8 weight rows over their first `len` elements:
/// `out[p][r] = Σᵢ xs[p][i] · rows[r][i]`, summed with wrapping 32-bit adds.
///
/// Each `xs[p]` must hold at least `len` rounded up to [`STEP`] values, zero past `len` (so
/// that the last partial step adds nothing), and each row at least `len` weights; otherwise
/// the result is `None`. The products are exact in `_mm256_madd_epi16` (16 × 8 bits), and
/// the pairwise sums and lane sums wrap modulo 2^32 like the reference accumulator.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn dot<const P: usize, const R: usize>(
    xs: [&[i16]; P],
    rows: [&[i8]; R],
    len: usize,
) -> Option<[[i32; R]; P]> {
    let steps = len / STEP;
    let padded = len.div_ceil(STEP) * STEP;
    if xs.iter().any(|x| x.len() < padded) || rows.iter().any(|w| w.len() < len) {
        return None;
    }
    let mut acc = [[_mm256_setzero_si256(); R]; P];
    for k in 0..steps {
        let at = k * STEP;
        let mut x = [_mm256_setzero_si256(); P];
        for (v, xp) in x.iter_mut().zip(xs) {
            // SAFETY: `at + STEP ≤ padded ≤ xp.len()` (checked above).
            *v = unsafe { _mm256_loadu_si256(xp.as_ptr().add(at).cast()) };
        }
        for (r, row) in rows.iter().enumerate() {
            // SAFETY: `at + STEP ≤ steps · STEP ≤ len ≤ row.len()`.
            let w = unsafe { _mm_loadu_si128(row.as_ptr().add(at).cast()) };
            let w = _mm256_cvtepi8_epi16(w);
            for (a, v) in acc.iter_mut().zip(&x) {
                a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(*v, w));
            }
        }
    }
    let at = steps * STEP;
    if at < len {
        let mut x = [_mm256_setzero_si256(); P];
        for (v, xp) in x.iter_mut().zip(xs) {
            // SAFETY: `at + STEP = padded ≤ xp.len()`.
            *v = unsafe { _mm256_loadu_si256(xp.as_ptr().add(at).cast()) };
        }
        for (r, row) in rows.iter().enumerate() {
            // The last weights, zero-padded: the row may end here.
            let mut tail = [0i8; STEP];
            let part = row.get(at..len).unwrap_or_default();
            for (t, &w) in tail.iter_mut().zip(part) {
                *t = w;
            }
            // SAFETY: `tail` holds STEP bytes.
            let w = unsafe { _mm_loadu_si128(tail.as_ptr().cast()) };
            let w = _mm256_cvtepi8_epi16(w);
            for (a, v) in acc.iter_mut().zip(&x) {
                a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(*v, w));
            }
        }
    }
    let mut out = [[0i32; R]; P];
    for (o, a) in out.iter_mut().zip(&acc) {
        for (o, a) in o.iter_mut().zip(a) {
            *o = hsum(*a);
        }
    }
    Some(out)
}

/// The wrapping sum of the eight 32-bit lanes of `v`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// `dst[i] = src[i] + offset` as 16-bit values (the caller keeps them in range), the rest of
/// `dst` untouched.
#[inline]
pub(super) fn widen(src: &[i8], offset: i16, dst: &mut [i16]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = i16::from(s).wrapping_add(offset);
    }
}
