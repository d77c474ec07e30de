//! The fast path: a JSON reader built for audit events.
//!
//! It fills the same [`Event`] the serde path does, in one pass over the
//! bytes, but only materialises the top-level fields a query needs
//! ([`Want`]); every other value is skipped after a syntax check, without
//! building anything. It gives up (returns `None`) on anything unusual (a
//! field of the wrong type, an escaped key, a non-integer status code), and
//! the caller then reads the event with the serde path, which produces the
//! same row and reports the problem. So for every input the rows are those of
//! the serde path; property tests and the fuzz target hold it to that.
//!
//! The input must already be valid UTF-8 (the decoder checks each message
//! once), so strings without escapes are borrowed as they are.

use std::borrow::Cow;

mod scan;
mod skip;
mod slot;

use scan::string_run_end;
pub use slot::Slot;
use slot::{Spare, Spared};

use super::event::{Event, Json, ObjectMeta, ObjectRef, ResponseStatus, UserInfo};
use super::lenient::{Int, Map, Presence, Str, StrList};
use crate::schema::Column;

/// Which children of a struct column a query reads: a bit per field, in
/// the schema's order (`schema::user_fields`, `OBJECT_REF_FIELDS`,
/// `response_status_fields`). The others are left null, unparsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields(pub u16);

impl Fields {
    pub const ALL: Fields = Fields(u16::MAX);

    #[inline]
    pub fn has(self, i: usize) -> bool {
        self.0 & (1 << i) != 0
    }
}

impl Default for Fields {
    fn default() -> Self {
        Self::ALL
    }
}

/// Which top-level fields to materialise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Want {
    pub level: bool,
    pub stage: bool,
    pub user: bool,
    pub impersonated_user: bool,
    pub source_ips: bool,
    pub user_agent: bool,
    pub object_ref: bool,
    pub response_status: bool,
    pub request_object: bool,
    pub response_object: bool,
    /// Either time column (the v1beta1 fallbacks serve both).
    pub times: bool,
    pub annotations: bool,
    pub user_fields: Fields,
    pub impersonated_fields: Fields,
    pub object_ref_fields: Fields,
    pub status_fields: Fields,
}

impl Want {
    /// What the columns need. `kind`, `apiVersion`, `auditID`, `verb` and
    /// `requestURI` are always read: they decide whether this is an event.
    pub fn for_columns(columns: &[Column]) -> Self {
        let mut w = Want::default();
        for c in columns {
            match c {
                Column::Level => w.level = true,
                Column::Stage => w.stage = true,
                Column::User => w.user = true,
                Column::ImpersonatedUser => w.impersonated_user = true,
                Column::SourceIps => w.source_ips = true,
                Column::UserAgent => w.user_agent = true,
                Column::ObjectRef => w.object_ref = true,
                Column::ResponseStatus => w.response_status = true,
                Column::RequestObject => w.request_object = true,
                Column::ResponseObject => w.response_object = true,
                Column::RequestReceivedTimestamp | Column::StageTimestamp => w.times = true,
                Column::Annotations => w.annotations = true,
                _ => {}
            }
        }
        w
    }

    /// The struct fields built of `column` (all of a non-struct column).
    pub fn fields_of(&self, column: Column) -> Fields {
        match column {
            Column::User => self.user_fields,
            Column::ImpersonatedUser => self.impersonated_fields,
            Column::ObjectRef => self.object_ref_fields,
            Column::ResponseStatus => self.status_fields,
            _ => Fields::ALL,
        }
    }

    /// Everything.
    pub fn all() -> Self {
        Self::for_columns(&Column::ALL)
    }
}

/// Reads one event, or `None` to let the serde path read it.
pub fn parse_event<'a>(text: &'a str, want: &Want) -> Option<Event<'a>> {
    let mut slot = Slot::default();
    parse_event_into(text, want, &mut slot).then_some(slot.event)
}

/// Reads one event into `slot.event` (overwriting it), or returns false to
/// let the serde path read it, leaving the event in an unspecified state.
pub fn parse_event_into<'a>(text: &'a str, want: &Want, slot: &mut Slot<'a>) -> bool {
    slot.spare.keep_event(&mut slot.event);
    let mut p = Parser {
        b: text.as_bytes(),
        s: text,
        i: 0,
        spare: &mut slot.spare,
    };
    p.ws();
    if p.event(want, &mut slot.event).is_none() {
        return false;
    }
    p.ws();
    p.i == p.b.len()
}

struct Parser<'a, 's> {
    b: &'a [u8],
    s: &'a str,
    i: usize,
    spare: &'s mut Spare<'a>,
}

/// Reads an object's members: `$body` runs with the key bound, positioned
/// at the value, and must consume it.
/// `$next_key` reads a key instead of [`Parser::key`] when given.
macro_rules! members {
    ($p:ident, |$key:ident| $body:block) => {
        members!($p, $p.key(), |$key| $body)
    };
    // Each key guessed from the table `$guesses` picks (see `guess`).
    ($p:ident, guessed($guesses:expr), |$key:ident| $body:block) => {{
        let mut n = 0;
        members!(
            $p,
            {
                n += 1;
                $p.guessed_key(n - 1, $guesses)
            },
            |$key| $body
        )
    }};
    ($p:ident, $next_key:expr, |$key:ident| $body:block) => {{
        $p.eat(b'{')?;
        $p.ws();
        if $p.peek() == Some(b'}') {
            $p.i += 1;
        } else {
            loop {
                let $key = $next_key?;
                $body
                $p.ws();
                match $p.next()? {
                    b',' => $p.ws(),
                    b'}' => break,
                    _ => return None,
                }
            }
        }
    }};
}

// After `members!`, which it uses.
mod guess;

use guess::{RefKey, StatusKey, UserKey};

impl<'a> Parser<'a, '_> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    /// A key without escapes, then the colon; positioned at the value.
    #[inline]
    fn key(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        let end = string_run_end(self.b, start)?;
        if self.b[end] != b'"' {
            return None;
        }
        self.i = end + 1;
        self.ws();
        self.eat(b':')?;
        self.ws();
        Some(&self.s[start..end])
    }

    /// The string starting here (at its quote), unescaped.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.eat(b'"')?;
        let start = self.i;
        let j = string_run_end(self.b, start)?;
        if self.b[j] == b'"' {
            self.i = j + 1;
            return Some(Cow::Borrowed(&self.s[start..j]));
        }
        // An escape: decode the rest of this string into an owned copy.
        let mut out = String::with_capacity(j - start + 16);
        out.push_str(&self.s[start..j]);
        self.i = j;
        self.escaped_rest(out).map(Cow::Owned)
    }

    /// Continues a string at a backslash, appending to `out`.
    fn escaped_rest(&mut self, mut out: String) -> Option<String> {
        loop {
            match self.next()? {
                b'"' => return Some(out),
                b'\\' => {
                    let c = match self.next()? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return None,
                    };
                    out.push(c);
                }
                c if c < 0x20 => return None,
                _ => {
                    // Copy the run up to the next quote or backslash.
                    let start = self.i - 1;
                    let end = string_run_end(self.b, start)?;
                    out.push_str(&self.s[start..end]);
                    self.i = end;
                }
            }
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.b.get(self.i..self.i + 4)?;
        self.i += 4;
        digits.iter().try_fold(0u32, |acc, &c| {
            let d = (c as char).to_digit(16)?;
            Some(acc * 16 + d)
        })
    }

    /// `\uXXXX`, with surrogate pairs; a lone surrogate goes to the serde
    /// path, which decides what it means.
    fn unicode_escape(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            if self.b.get(self.i..self.i + 2)? != b"\\u" {
                return None;
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return None;
            }
            char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))
        } else {
            char::from_u32(hi)
        }
    }

    #[inline]
    fn is_null(&mut self) -> bool {
        if self.b.get(self.i..self.i + 4) == Some(b"null") {
            self.i += 4;
            true
        } else {
            false
        }
    }

    /// A string field: anything but a string or null goes to serde.
    #[inline]
    fn str_field(&mut self) -> Option<Str<'a>> {
        match self.peek()? {
            b'"' => self.string().map(Str::Value),
            _ if self.is_null() => Some(Str::Absent),
            _ => None,
        }
    }

    fn str_list(&mut self) -> Option<StrList<'a>> {
        if self.is_null() {
            return Some(StrList::Absent);
        }
        self.eat(b'[')?;
        let mut items = self.spare.lists.pop().unwrap_or_default();
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some(StrList::Value(items));
        }
        loop {
            match self.str_field()? {
                Str::Value(s) => items.push(Some(s)),
                _ => items.push(None),
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b']' => return Some(StrList::Value(items)),
                _ => return None,
            }
        }
    }

    /// An object of `V`s, later duplicates replacing earlier ones.
    fn map<V: Spared<'a>>(&mut self, value: fn(&mut Self) -> Option<V>) -> Option<Map<'a, V>> {
        if self.is_null() {
            return Some(Map::Absent);
        }
        let mut entries = V::spare(self.spare).pop().unwrap_or_default();
        members!(self, |key| {
            let k = Cow::Borrowed(key);
            let v = value(self)?;
            match entries.iter_mut().find(|(ek, _)| *ek == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        });
        Some(Map::Value(entries))
    }

    fn user(&mut self, f: Fields, u: &mut UserInfo<'a>) -> Option<()> {
        u.clear();
        if self.is_null() {
            return Some(());
        }
        u.presence = Presence::Present;
        members!(self, guessed(|g| &mut g.user), |key| {
            match key {
                UserKey::Username if f.has(0) => u.username = self.str_field()?,
                UserKey::Uid if f.has(1) => u.uid = self.str_field()?,
                UserKey::Groups if f.has(2) => u.groups = self.str_list()?,
                UserKey::Extra if f.has(3) => u.extra = self.map(Self::str_list)?,
                _ => self.skip_value()?,
            }
        });
        Some(())
    }

    fn object_ref(&mut self, f: Fields, o: &mut ObjectRef<'a>) -> Option<()> {
        o.clear();
        if self.is_null() {
            return Some(());
        }
        o.presence = Presence::Present;
        members!(self, guessed(|g| &mut g.object_ref), |key| {
            match key {
                RefKey::Resource if f.has(0) => o.resource = self.str_field()?,
                RefKey::Namespace if f.has(1) => o.namespace = self.str_field()?,
                RefKey::Name if f.has(2) => o.name = self.str_field()?,
                RefKey::Uid if f.has(3) => o.uid = self.str_field()?,
                RefKey::ApiGroup if f.has(4) => o.api_group = self.str_field()?,
                RefKey::ApiVersion if f.has(5) => o.api_version = self.str_field()?,
                RefKey::ResourceVersion if f.has(6) => o.resource_version = self.str_field()?,
                RefKey::Subresource if f.has(7) => o.subresource = self.str_field()?,
                _ => self.skip_value()?,
            }
        });
        Some(())
    }

    fn status(&mut self, f: Fields, s: &mut ResponseStatus<'a>) -> Option<()> {
        s.clear();
        if self.is_null() {
            return Some(());
        }
        s.presence = Presence::Present;
        members!(self, guessed(|g| &mut g.status), |key| {
            match key {
                StatusKey::Code if f.has(0) => s.code = self.int()?,
                StatusKey::Status if f.has(1) => s.status = self.str_field()?,
                StatusKey::Reason if f.has(2) => s.reason = self.str_field()?,
                StatusKey::Message if f.has(3) => s.message = self.str_field()?,
                _ => self.skip_value()?,
            }
        });
        Some(())
    }

    fn metadata(&mut self, m: &mut ObjectMeta<'a>) -> Option<()> {
        m.clear();
        if self.is_null() {
            return Some(());
        }
        m.presence = Presence::Present;
        members!(self, |key| {
            match key.as_bytes() {
                b"creationTimestamp" => m.creation_timestamp = self.str_field()?,
                _ => self.skip_value()?,
            }
        });
        Some(())
    }

    /// A plain integer (`200`); fractions and exponents go to serde.
    fn int(&mut self) -> Option<Int> {
        if self.is_null() {
            return Some(Int::Absent);
        }
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let digits = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        let n = self.i - digits;
        let leading_zero = n > 1 && self.b[digits] == b'0';
        if n == 0 || n > 18 || leading_zero || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        self.s[start..self.i].parse().ok().map(Int::Value)
    }

    /// The raw text of any value, checked.
    fn raw(&mut self) -> Option<Json<'a>> {
        let start = self.i;
        self.skip()?;
        Some(Json(Some(&self.s[start..self.i])))
    }
}
