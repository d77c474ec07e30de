//! Lenient serde types for audit fields.
//!
//! Real audit logs are not always well-typed (`"code":"200"`, an `extra`
//! value that is a bare string, a `user` that is `null`). A field of the wrong
//! JSON type must not cost the whole event: each type here accepts any JSON
//! value, keeps what matches, and remembers what did not (`Wrong`) so the
//! decoder can null that one field and report it with the event's location.
//! Later duplicate keys win, as in every JSON object model we compare with.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// What a JSON value was, for "expected X, found Y" messages.
pub fn kind_of_map() -> &'static str {
    "object"
}

/// A field that must be a string.
#[derive(Debug, Default, Clone, PartialEq)]
pub enum Str<'a> {
    #[default]
    Absent,
    Value(Cow<'a, str>),
    /// The JSON type that was found instead.
    Wrong(&'static str),
}

impl<'a> Str<'a> {
    pub fn get(&self) -> Option<&str> {
        match self {
            Str::Value(s) => Some(s),
            _ => None,
        }
    }
    pub fn wrong(&self) -> Option<&'static str> {
        match self {
            Str::Wrong(w) => Some(w),
            _ => None,
        }
    }
}

/// Implements the visitor methods shared by every lenient type: each JSON
/// type that is not the wanted one maps to `$wrong(name)`, consuming nested
/// values so the parser stays in sync.
macro_rules! reject_other_types {
    ($wrong:expr; $($skip:ident),*) => {
        $($crate::decode::lenient::reject_other_types!(@one $wrong, $skip);)*
    };
    (@one $wrong:expr, bool) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> { Ok($wrong("boolean")) }
    };
    (@one $wrong:expr, num) => {
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> { Ok($wrong("number")) }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> { Ok($wrong("number")) }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> { Ok($wrong("number")) }
    };
    (@one $wrong:expr, str) => {
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> { Ok($wrong("string")) }
    };
    (@one $wrong:expr, seq) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($wrong("array"))
        }
    };
    (@one $wrong:expr, map) => {
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($wrong($crate::decode::lenient::kind_of_map()))
        }
    };
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Str::Value(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Str::Value(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Str::Value(Cow::Owned(v)))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Str::Absent)
    }
    reject_other_types!(Str::Wrong; bool, num, seq, map);
}

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

/// A field that must be an integer (`responseStatus.code`).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Int {
    #[default]
    Absent,
    Value(i64),
    Wrong(&'static str),
}

struct IntVisitor;

impl<'de> Visitor<'de> for IntVisitor {
    type Value = Int;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Int::Value(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(i64::try_from(v).map_or(Int::Wrong("number out of range"), Int::Value))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        // 200.0 is an integer written by a float-minded producer; 200.5 is not.
        if v.fract() != 0.0 {
            Ok(Int::Wrong("fractional number"))
        } else if v.abs() < 9.0e15 {
            Ok(Int::Value(v as i64))
        } else {
            Ok(Int::Wrong("number out of range"))
        }
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Int::Absent)
    }
    reject_other_types!(Int::Wrong; bool, str, seq, map);
}

impl<'de> Deserialize<'de> for Int {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntVisitor)
    }
}

/// A field that must be an array of strings (`groups`, `sourceIPs`).
#[derive(Debug, Default, Clone, PartialEq)]
pub enum StrList<'a> {
    #[default]
    Absent,
    Value(Vec<Option<Cow<'a, str>>>),
    Wrong(&'static str),
}

struct StrListVisitor;

impl<'de> Visitor<'de> for StrListVisitor {
    type Value = StrList<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of strings")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(2));
        let mut wrong = None;
        while let Some(item) = seq.next_element::<Str<'de>>()? {
            match item {
                Str::Value(s) => items.push(Some(s)),
                Str::Absent => items.push(None),
                Str::Wrong(w) => wrong = Some(w),
            }
        }
        Ok(match wrong {
            Some(_) => StrList::Wrong("array with a non-string item"),
            None => StrList::Value(items),
        })
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(StrList::Absent)
    }
    reject_other_types!(StrList::Wrong; bool, num, str, map);
}

impl<'de> Deserialize<'de> for StrList<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrListVisitor)
    }
}

/// A JSON object read as ordered entries, later duplicates replacing earlier
/// ones. `V` is the lenient type of the values.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Map<'a, V> {
    #[default]
    Absent,
    Value(Vec<(Cow<'a, str>, V)>),
    Wrong(&'static str),
}

/// Object keys: borrowed when the JSON has no escapes in them.
pub struct Key<'a>(pub Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Str::deserialize(d)? {
            Str::Value(s) => Ok(Key(s)),
            _ => Err(de::Error::custom("object key is not a string")),
        }
    }
}

struct MapVisitor<V>(std::marker::PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for MapVisitor<V> {
    type Value = Map<'de, V>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(Cow<'de, str>, V)> = Vec::new();
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            let v = map.next_value::<V>()?;
            match entries.iter_mut().find(|(ek, _)| *ek == k) {
                Some(slot) => slot.1 = v,
                None => entries.push((k, v)),
            }
        }
        Ok(Map::Value(entries))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Map::Absent)
    }
    reject_other_types!(Map::Wrong; bool, num, str, seq);
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Map<'de, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MapVisitor(std::marker::PhantomData))
    }
}

impl<'a, V> Map<'a, V> {
    pub fn wrong(&self) -> Option<&'static str> {
        match self {
            Map::Wrong(w) => Some(w),
            _ => None,
        }
    }
}

/// Whether a struct-shaped field was there, and an object.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub enum Presence {
    #[default]
    Absent,
    Present,
    Wrong(&'static str),
}

/// Declares a struct-shaped audit field: every listed key is read with its
/// lenient type, unknown keys are skipped unparsed, later duplicates win.
/// A non-object value leaves all fields absent and `presence` = `Wrong`.
macro_rules! lenient_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident<$lt:lifetime> {
            $($key:literal => $field:ident : $ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Default, Clone)]
        pub struct $name<$lt> {
            pub presence: $crate::decode::lenient::Presence,
            $(pub $field: $ty,)*
        }

        impl $name<'_> {
            /// Back to the default (absent) state, field by field in place.
            #[allow(dead_code)]
            pub fn clear(&mut self) {
                self.presence = Default::default();
                $(self.$field = Default::default();)*
            }
        }

        impl<'de> serde::Deserialize<'de> for $name<'de> {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                use serde::de::{self, IgnoredAny, MapAccess, SeqAccess};
                use $crate::decode::lenient::Presence;
                struct V;
                impl<'de> de::Visitor<'de> for V {
                    type Value = $name<'de>;
                    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                        f.write_str("an object")
                    }
                    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                        let mut out = $name { presence: Presence::Present, ..Default::default() };
                        while let Some(key) = map.next_key::<$crate::decode::lenient::Key<'de>>()? {
                            match key.0.as_ref() {
                                $($key => out.$field = map.next_value()?,)*
                                _ => { map.next_value::<IgnoredAny>()?; }
                            }
                        }
                        Ok(out)
                    }
                    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                        Ok($name::default())
                    }
                    $crate::decode::lenient::reject_other_types!(
                        (|w| $name { presence: Presence::Wrong(w), ..Default::default() });
                        bool, num, str, seq
                    );
                }
                d.deserialize_any(V)
            }
        }
    };
}
pub(crate) use lenient_struct;
pub(crate) use reject_other_types;

/// serde_json refuses a number beyond f64's range (`1e400`) as invalid
/// JSON, which would drop the whole event for one field. The text with
/// each such number (outside strings) written as the largest finite one
/// instead, so the field that holds it reads as out of range, is nulled and
/// reported, and the event is kept; None if there is none.
pub fn clamp_huge_numbers(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                // Skip the string, escapes included.
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let number = &text[start..i];
                if number.parse::<f64>().is_ok_and(f64::is_infinite) {
                    out.push_str(&text[copied..start]);
                    out.push_str(if number.starts_with('-') {
                        "-1e308"
                    } else {
                        "1e308"
                    });
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    (copied > 0).then(|| {
        out.push_str(&text[copied..]);
        out
    })
}

#[cfg(test)]
mod tests {
    use super::clamp_huge_numbers;

    #[test]
    fn huge_numbers_clamped_outside_strings_only() {
        assert_eq!(
            clamp_huge_numbers(r#"{"a":"1e400 \" 1e400","b":1e400,"c":[-2E+999],"d":1.5}"#)
                .as_deref(),
            Some(r#"{"a":"1e400 \" 1e400","b":1e308,"c":[-1e308],"d":1.5}"#)
        );
        assert_eq!(clamp_huge_numbers(r#"{"a":1,"b":"1e400"}"#), None);
    }
}
