//! Finding the end of a string's plain run: sixteen bytes at a time with
//! SSE2 (part of every x86-64 CPU), then eight at a time in a `u64`.

/// The offset of the quote or backslash that ends the plain run of a string
/// starting at `i`, or `None` if the string is cut short or holds a raw
/// control character (JSON forbids them).
#[inline]
pub(super) fn string_run_end(b: &[u8], i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let i = match sse2::run_end(b, i) {
        Ok(j) => return (b[j] >= 0x20).then_some(j),
        Err(i) => i,
    };
    word_run_end(b, i)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };

    /// `Ok(offset)` of the first `"`, `\\` or byte below 0x20 from `i` in
    /// whole 16-byte blocks, else `Err(offset)` where fewer than 16 bytes
    /// are left.
    #[inline]
    pub(super) fn run_end(b: &[u8], mut i: usize) -> Result<usize, usize> {
        // SAFETY: SSE2 is in the x86-64 baseline, so the intrinsics exist
        // on every CPU this code runs on; each load reads the 16 bytes
        // `b[i..i + 16]`, which the loop condition keeps inside `b`, and
        // `loadu` takes any alignment.
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            let control = _mm_set1_epi8(0x1f);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i).cast::<__m128i>());
                // `min(v, 0x1f) == v` exactly where `v <= 0x1f` (unsigned).
                let hits = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
                    _mm_cmpeq_epi8(_mm_min_epu8(v, control), v),
                );
                let mask = _mm_movemask_epi8(hits) as u32;
                if mask != 0 {
                    return Ok(i + mask.trailing_zeros() as usize);
                }
                i += 16;
            }
        }
        Err(i)
    }
}

/// [`string_run_end`] eight bytes at a time: a byte is flagged when it is
/// `"`, `\\` or below 0x20 (the classic "has zero byte" test; its lowest
/// flag is always exact, and only the lowest is used).
#[inline]
fn word_run_end(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    const QUOTE: u64 = ONES * b'"' as u64;
    const BACKSLASH: u64 = ONES * b'\\' as u64;
    const SPACE: u64 = ONES * 0x20;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let (q, s) = (w ^ QUOTE, w ^ BACKSLASH);
        let flags =
            (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s | w.wrapping_sub(SPACE) & !w)
                & HIGH;
        if flags != 0 {
            let j = i + (flags.trailing_zeros() / 8) as usize;
            return (b[j] >= 0x20).then_some(j);
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        match c {
            b'"' | b'\\' => return Some(i),
            c if c < 0x20 => return None,
            _ => i += 1,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{string_run_end, word_run_end};

    /// The word-at-a-time scan against a byte loop: every special byte at
    /// every offset, after every kind of plain byte, in and out of words.
    #[test]
    fn string_run_end_matches_a_byte_loop() {
        let reference = |b: &[u8], i: usize| {
            let j = i + b[i..]
                .iter()
                .position(|&c| c == b'"' || c == b'\\' || c < 0x20)?;
            (b[j] >= 0x20).then_some(j)
        };
        for filler in [b'a', b' ', 0x7f, 0x80, 0xa0, 0xff, b'!', b'#', b'[', b']'] {
            for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                for len in 0..40 {
                    for at in 0..=len {
                        let mut b = vec![filler; len];
                        if at < len {
                            b[at] = special;
                        }
                        for start in [0, 1, 7, 9].into_iter().filter(|&s| s <= len) {
                            assert_eq!(
                                string_run_end(&b, start),
                                reference(&b, start),
                                "{b:?} from {start}"
                            );
                            assert_eq!(
                                word_run_end(&b, start),
                                reference(&b, start),
                                "{b:?} from {start} (words)"
                            );
                        }
                    }
                }
            }
        }
    }
}
