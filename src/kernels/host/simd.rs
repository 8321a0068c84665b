//! The AVX2 inner product shared by the convolution and the fully connected kernel.

use core::arch::x86_64::*;

/// Values per AVX2 step: sixteen 16-bit activations against sixteen int8 weights.
pub(super) const STEP: usize = 16;

/// `P` widened activation vectors × `R` int8 weight rows over their first `len` elements:
/// `out[p][r] = Σᵢ xs[p][i] · rows[r][i]`, summed with wrapping 32-bit adds.
///
/// Each `xs[p]` must hold at least `len` rounded up to [`STEP`] values, zero past `len` (so
/// that the last partial step adds nothing whatever weights it meets), and each row at least
/// `len` weights; otherwise the result is `None`. A row may run on past `len` (the rest of the
/// filter): the last partial step then reads its weights in place, else from a zero-padded
/// copy. The products are exact in `_mm256_madd_epi16` (16 × 8 bits), and the pairwise sums
/// and lane sums wrap modulo 2^32 like the reference accumulator.
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
    let mut step = |at: usize, w: [__m256i; R]| {
        let mut x = [_mm256_setzero_si256(); P];
        for (v, xp) in x.iter_mut().zip(xs) {
            // SAFETY: `at + STEP ≤ padded ≤ xp.len()` (checked above).
            *v = unsafe { _mm256_loadu_si256(xp.as_ptr().add(at).cast()) };
        }
        for (r, w) in w.iter().enumerate() {
            for (a, v) in acc.iter_mut().zip(&x) {
                a[r] = _mm256_add_epi32(a[r], _mm256_madd_epi16(*v, *w));
            }
        }
    };
    for k in 0..steps {
        let at = k * STEP;
        let mut w = [_mm256_setzero_si256(); R];
        for (w, row) in w.iter_mut().zip(rows) {
            // SAFETY: `at + STEP ≤ steps · STEP ≤ len ≤ row.len()`.
            *w = _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(row.as_ptr().add(at).cast()) });
        }
        step(at, w);
    }
    let at = steps * STEP;
    if at < len {
        let mut w = [_mm256_setzero_si256(); R];
        for (w, row) in w.iter_mut().zip(rows) {
            let bytes = match row.get(at..at + STEP) {
                // Weights past `len` meet zero activations.
                // SAFETY: the span holds STEP bytes.
                Some(in_place) => unsafe { _mm_loadu_si128(in_place.as_ptr().cast()) },
                None => {
                    let mut tail = [0i8; STEP];
                    let part = row.get(at..len).unwrap_or_default();
                    for (t, &v) in tail.iter_mut().zip(part) {
                        *t = v;
                    }
                    // SAFETY: `tail` holds STEP bytes.
                    unsafe { _mm_loadu_si128(tail.as_ptr().cast()) }
                }
            };
            *w = _mm256_cvtepi8_epi16(bytes);
        }
        step(at, w);
    }
    let mut out = [[0i32; R]; P];
    for (o, a) in out.iter_mut().zip(&acc) {
        if R == 4 {
            let sums = hsum4([a[0], a[1], a[2], a[3]]);
            // SAFETY: `sums` is four i32, `o` holds four (R == 4).
            unsafe { _mm_storeu_si128(o.as_mut_ptr().cast(), sums) };
        } else {
            for (o, a) in o.iter_mut().zip(a) {
                *o = hsum(*a);
            }
        }
    }
    Some(out)
}

/// The wrapping lane sums of four vectors, in order, as one 128-bit vector.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum4(v: [__m256i; 4]) -> __m128i {
    let t = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
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

/// True when every shift is one [`requantize8`] reproduces exactly (those
/// `quantize_multiplier` makes are far inside).
pub(super) fn shifts_in_range(shifts: &[i32]) -> bool {
    shifts.iter().all(|s| (-31..=31).contains(s))
}

/// [`Requantize::apply`](crate::kernels::Requantize) on eight lanes at once: `acc` (bias
/// included) with per-lane `multiplier` and `shift` (each shift in `−31..=31`), plus
/// `output_offset`, clamped to `[lo, hi]`.
///
/// Step by step as `multiply_by_quantized_multiplier`: the left shift wraps (`sllv`); the high
/// multiply takes the exact 64-bit products of even and odd lanes, adds the same nudge and
/// truncates toward zero (adding `2^31 − 1` to a negative value before the shift), whose low
/// 32 bits a logical shift gives exactly; `MIN · MIN` saturates to `MAX`; the rounding divide
/// uses gemmlowp's mask and threshold with per-lane shifts.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn requantize8(
    acc: __m256i,
    multiplier: __m256i,
    shift: __m256i,
    output_offset: __m256i,
    lo: __m256i,
    hi: __m256i,
) -> __m256i {
    let zero = _mm256_setzero_si256();
    let left = _mm256_max_epi32(shift, zero);
    let right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
    let a = _mm256_sllv_epi32(acc, left);

    // Saturating rounding doubling high multiply.
    let high = |a: __m256i, b: __m256i| -> __m256i {
        let p = _mm256_mul_epi32(a, b);
        let negative = _mm256_cmpgt_epi64(zero, p);
        let nudge = _mm256_add_epi64(
            _mm256_set1_epi64x(1 << 30),
            _mm256_and_si256(negative, _mm256_set1_epi64x(1 - (1i64 << 31))),
        );
        let x = _mm256_add_epi64(p, nudge);
        let x = _mm256_add_epi64(
            x,
            _mm256_and_si256(negative, _mm256_set1_epi64x((1i64 << 31) - 1)),
        );
        _mm256_srli_epi64::<31>(x)
    };
    let even = high(a, multiplier);
    let odd = high(
        _mm256_srli_epi64::<32>(a),
        _mm256_srli_epi64::<32>(multiplier),
    );
    let low_words = _mm256_set1_epi64x(0xFFFF_FFFF);
    let mut x = _mm256_or_si256(
        _mm256_and_si256(even, low_words),
        _mm256_slli_epi64::<32>(odd),
    );
    let min = _mm256_set1_epi32(i32::MIN);
    let saturate = _mm256_and_si256(
        _mm256_cmpeq_epi32(a, min),
        _mm256_cmpeq_epi32(multiplier, min),
    );
    // The only overflow gives exactly MIN; MIN ^ !0 = MAX.
    x = _mm256_xor_si256(x, saturate);

    // Rounding divide by 2^right.
    let one = _mm256_set1_epi32(1);
    let mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, right), one);
    let remainder = _mm256_and_si256(x, mask);
    let threshold = _mm256_sub_epi32(_mm256_srai_epi32::<1>(mask), _mm256_cmpgt_epi32(zero, x));
    let rounded = _mm256_sub_epi32(
        _mm256_srav_epi32(x, right),
        _mm256_cmpgt_epi32(remainder, threshold),
    );

    let out = _mm256_add_epi32(rounded, output_offset);
    _mm256_min_epi32(_mm256_max_epi32(out, lo), hi)
}

/// Requantizes `acc` (bias not yet added) for channels `first..first + acc.len()` into `out`:
/// eight channels at a time with [`requantize8`] when `vector`, the scalar
/// [`Requantize::apply`](crate::kernels::Requantize) for the rest.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn requantize_run(
    q: &crate::kernels::Requantize,
    bias: &[i32],
    first: usize,
    acc: &mut [i32],
    out: &mut [i8],
    vector: bool,
) -> Result<(), crate::Error> {
    use crate::Error;
    let n = acc.len().min(out.len());
    let acc = acc.get_mut(..n).ok_or(Error::ShapeMismatch)?;
    if let Some(b) = bias.get(first..first + n) {
        for (a, &b) in acc.iter_mut().zip(b) {
            *a = a.wrapping_add(b);
        }
    }
    let m = q
        .multipliers
        .get(first..first + n)
        .ok_or(Error::ShapeMismatch)?;
    let s = q.shifts.get(first..first + n).ok_or(Error::ShapeMismatch)?;
    let mut done = 0;
    if vector {
        let offset = _mm256_set1_epi32(q.output_offset);
        let lo = _mm256_set1_epi32(i32::from(q.act_min));
        let hi = _mm256_set1_epi32(i32::from(q.act_max));
        // The low byte of each 32-bit lane, four per 128-bit half.
        let low_bytes = _mm256_setr_epi8(
            0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, 0, 4, 8, 12, -1, -1, -1,
            -1, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        let blocks = acc
            .chunks_exact(8)
            .zip(m.chunks_exact(8).zip(s.chunks_exact(8)))
            .zip(out.chunks_exact_mut(8));
        for ((a, (m, s)), o) in blocks {
            // SAFETY: every chunk holds eight i32, one YMM register.
            let (a, m, s) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().cast()),
                    _mm256_loadu_si256(m.as_ptr().cast()),
                    _mm256_loadu_si256(s.as_ptr().cast()),
                )
            };
            // Clamped to the int8 activation range: each lane's low byte is its value.
            let r = _mm256_shuffle_epi8(requantize8(a, m, s, offset, lo, hi), low_bytes);
            let low = _mm256_cvtsi256_si32(r) as u32;
            let high = _mm256_extract_epi32::<4>(r) as u32;
            let bytes = (u64::from(high) << 32 | u64::from(low)).to_le_bytes();
            for (o, b) in o.iter_mut().zip(bytes) {
                *o = b as i8;
            }
            done += 8;
        }
    }
    let rest = acc
        .iter()
        .zip(m.iter().zip(s))
        .zip(out.iter_mut())
        .skip(done);
    for ((&a, (&m, &s)), o) in rest.take(n - done) {
        *o = q.apply(a, m, s);
    }
    Ok(())
}
