//! Skipping values the query does not need: a syntax check as strict as
//! serde_json's, so that the fast path never accepts what the reference
//! path rejects, but nothing is built. Iterative: nesting depth is unbounded.

use super::{Parser, string_run_end};

/// A stack of booleans that needs no allocation for the first 128 levels.
#[derive(Default)]
struct Nesting {
    depth: usize,
    bits: u128,
    deeper: Vec<bool>,
}

impl Nesting {
    #[inline]
    fn push(&mut self, v: bool) {
        if self.depth < 128 {
            self.bits = (self.bits & !(1 << self.depth)) | (u128::from(v) << self.depth);
        } else {
            self.deeper.push(v);
        }
        self.depth += 1;
    }

    #[inline]
    fn last(&self) -> Option<bool> {
        match self.depth {
            0 => None,
            d if d <= 128 => Some(self.bits >> (d - 1) & 1 == 1),
            _ => self.deeper.last().copied(),
        }
    }

    #[inline]
    fn pop(&mut self) {
        if self.depth > 128 {
            self.deeper.pop();
        }
        self.depth = self.depth.saturating_sub(1);
    }
}

impl Parser<'_, '_> {
    /// [`Parser::skip`], with a string (the most common value no column
    /// needs: `level`, `stage`, an `objectRef`'s other names) skipped
    /// here, inlined into the caller, without setting up for nesting.
    #[inline]
    pub(super) fn skip_value(&mut self) -> Option<()> {
        if self.peek() == Some(b'"') {
            self.skip_string()
        } else {
            self.skip()
        }
    }

    /// Skips one value, checking its syntax as strictly as serde_json does,
    /// without recursion (nesting depth is unbounded).
    pub(super) fn skip(&mut self) -> Option<()> {
        // Open containers: true for an object, false for an array.
        let mut stack = Nesting::default();
        loop {
            // A value.
            match self.peek()? {
                b'"' => self.skip_string()?,
                b'{' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        self.skip_string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        continue;
                    }
                }
                b'[' => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        continue;
                    }
                }
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                _ => self.skip_number()?,
            }
            // After a value: close containers or move to the next member.
            loop {
                let Some(in_object) = stack.last() else {
                    return Some(());
                };
                self.ws();
                match (self.next()?, in_object) {
                    (b',', true) => {
                        self.ws();
                        self.skip_string()?;
                        self.ws();
                        self.eat(b':')?;
                        self.ws();
                        break;
                    }
                    (b',', false) => {
                        self.ws();
                        break;
                    }
                    (b'}', true) | (b']', false) => {
                        stack.pop();
                    }
                    _ => return None,
                }
            }
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    fn skip_string(&mut self) -> Option<()> {
        self.eat(b'"')?;
        loop {
            let j = string_run_end(self.b, self.i)?;
            self.i = j + 1;
            if self.b[j] == b'"' {
                return Some(());
            }
            match self.next()? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                // A surrogate escape goes to the serde path: serde_json
                // rejects a lone one where it reads the string, which a
                // syntax check cannot tell.
                b'u' => {
                    if (0xD800..0xE000).contains(&self.hex4()?) {
                        return None;
                    }
                }
                _ => return None,
            }
        }
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`. Exponents and integers past 18
    /// digits go to the serde path: serde_json rejects some of them as out
    /// of range (`2e555`) where it reads a field, which a syntax check
    /// cannot tell.
    fn skip_number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let start = self.i;
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.i - start > 18 {
            return None;
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        match self.peek() {
            Some(b'e' | b'E') => None,
            _ => Some(()),
        }
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }
}
