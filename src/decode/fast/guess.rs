//! Object keys, each checked against a guess first.
//!
//! The events of one log list their fields in one order (the API server
//! writes them from one struct), so the key at each position of an event,
//! or of its `user`, `objectRef` or `responseStatus`, is nearly always the
//! one the last event had there. Comparing the bytes with that guess,
//! quotes included, replaces the scan for the key's end and the match of
//! its name against every field's; a key that differs is read as before,
//! and becomes the guess for that position.

use super::{Parser, Want};
use crate::decode::event::Event;
use crate::decode::lenient::Presence;

/// Positions guessed in one object: an audit event has about 15 members.
const GUESSED: usize = 32;

/// A key as written, quotes included, to compare 32 bytes at a time.
pub(super) struct Pattern {
    bytes: &'static [u8],
    words: [u128; 2],
    masks: [u128; 2],
}

impl Pattern {
    const fn new(bytes: &'static [u8]) -> Self {
        assert!(bytes.len() <= 32);
        let (mut words, mut masks) = ([[0u8; 16]; 2], [[0u8; 16]; 2]);
        let mut i = 0;
        while i < bytes.len() {
            words[i / 16][i % 16] = bytes[i];
            masks[i / 16][i % 16] = 0xff;
            i += 1;
        }
        Self {
            bytes,
            words: [u128::from_le_bytes(words[0]), u128::from_le_bytes(words[1])],
            masks: [u128::from_le_bytes(masks[0]), u128::from_le_bytes(masks[1])],
        }
    }

    /// Whether `b[i..]` starts with the key: two 16-byte compares, not a
    /// call to `memcmp`, where 32 bytes are left.
    #[inline]
    fn starts(&self, b: &[u8], i: usize) -> bool {
        let Some(w) = b.get(i..i + 32) else {
            return b.get(i..i + self.bytes.len()) == Some(self.bytes);
        };
        let (Some(lo), Some(hi)) = (w.first_chunk::<16>(), w.last_chunk::<16>()) else {
            return false;
        };
        let lo = (u128::from_le_bytes(*lo) ^ self.words[0]) & self.masks[0];
        let hi = (u128::from_le_bytes(*hi) ^ self.words[1]) & self.masks[1];
        lo | hi == 0
    }
}

/// The keys of one kind of object.
pub(super) trait Key: Copy {
    /// The key as written; None for a key not known.
    fn pattern(self) -> Option<&'static Pattern>;
    fn of(key: &str) -> Self;
}

macro_rules! keys {
    ($(#[$doc:meta])* $keys:ident { $($field:ident = $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum $keys {
            $($field,)*
            Other,
        }

        impl Key for $keys {
            #[inline]
            fn pattern(self) -> Option<&'static Pattern> {
                const PATTERNS: &[Pattern] =
                    &[$(Pattern::new(concat!("\"", $name, "\"").as_bytes()),)*];
                PATTERNS.get(self as usize)
            }

            fn of(key: &str) -> Self {
                match key {
                    $($name => $keys::$field,)*
                    _ => $keys::Other,
                }
            }
        }
    };
}

keys! {
    /// An event's fields the fast path reads, and any other key.
    Top {
        Kind = "kind",
        ApiVersion = "apiVersion",
        AuditId = "auditID",
        Verb = "verb",
        RequestUri = "requestURI",
        Level = "level",
        Stage = "stage",
        User = "user",
        ImpersonatedUser = "impersonatedUser",
        SourceIps = "sourceIPs",
        UserAgent = "userAgent",
        ObjectRef = "objectRef",
        ResponseStatus = "responseStatus",
        RequestObject = "requestObject",
        ResponseObject = "responseObject",
        RequestReceivedTimestamp = "requestReceivedTimestamp",
        StageTimestamp = "stageTimestamp",
        Timestamp = "timestamp",
        Metadata = "metadata",
        Annotations = "annotations",
    }
}

keys! {
    /// `user` and `impersonatedUser`, in the order of `schema::user_fields`.
    UserKey {
        Username = "username",
        Uid = "uid",
        Groups = "groups",
        Extra = "extra",
    }
}

keys! {
    /// `objectRef`, in the order of `schema::OBJECT_REF_FIELDS`.
    RefKey {
        Resource = "resource",
        Namespace = "namespace",
        Name = "name",
        Uid = "uid",
        ApiGroup = "apiGroup",
        ApiVersion = "apiVersion",
        ResourceVersion = "resourceVersion",
        Subresource = "subresource",
    }
}

keys! {
    /// `responseStatus`, in the order of `schema::response_status_fields`.
    StatusKey {
        Code = "code",
        Status = "status",
        Reason = "reason",
        Message = "message",
    }
}

/// The keys at each position of one kind of object, as the last one read
/// (in this slot) had them.
pub(super) struct Guesses<K>(Vec<K>);

impl<K> Default for Guesses<K> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

/// The guesses for each kind of object.
#[derive(Default)]
pub(super) struct AllGuesses {
    pub(super) top: Guesses<Top>,
    pub(super) user: Guesses<UserKey>,
    pub(super) object_ref: Guesses<RefKey>,
    pub(super) status: Guesses<StatusKey>,
}

impl<'a> Parser<'a, '_> {
    /// The key of an object's `n`th member and its colon, guessed from
    /// `guesses`; positioned at the value.
    #[inline]
    pub(super) fn guessed_key<K: Key>(
        &mut self,
        n: usize,
        guesses: fn(&mut AllGuesses) -> &mut Guesses<K>,
    ) -> Option<K> {
        if let Some(&guess) = guesses(&mut self.spare.guesses).0.get(n)
            && let Some(pattern) = guess.pattern()
            && pattern.starts(self.b, self.i)
        {
            // The same bytes `key` would have read up to the colon.
            self.i += pattern.bytes.len();
            self.ws();
            self.eat(b':')?;
            self.ws();
            return Some(guess);
        }
        let key = K::of(self.key()?);
        let guesses = &mut guesses(&mut self.spare.guesses).0;
        if n < guesses.len() {
            guesses[n] = key;
        } else if n == guesses.len() && n < GUESSED {
            guesses.push(key);
        }
        Some(key)
    }

    pub(super) fn event(&mut self, want: &Want, e: &mut Event<'a>) -> Option<()> {
        e.clear();
        e.presence = Presence::Present;
        members!(self, guessed(|g| &mut g.top), |top| {
            match top {
                Top::Kind => e.kind = self.str_field()?,
                Top::ApiVersion => e.api_version = self.str_field()?,
                Top::AuditId => e.audit_id = self.str_field()?,
                Top::Verb => e.verb = self.str_field()?,
                Top::RequestUri => e.request_uri = self.str_field()?,
                Top::Level if want.level => e.level = self.str_field()?,
                Top::Stage if want.stage => e.stage = self.str_field()?,
                Top::User if want.user => self.user(want.user_fields, &mut e.user)?,
                Top::ImpersonatedUser if want.impersonated_user => {
                    self.user(want.impersonated_fields, &mut e.impersonated_user)?
                }
                Top::SourceIps if want.source_ips => e.source_ips = self.str_list()?,
                Top::UserAgent if want.user_agent => e.user_agent = self.str_field()?,
                Top::ObjectRef if want.object_ref => {
                    self.object_ref(want.object_ref_fields, &mut e.object_ref)?
                }
                Top::ResponseStatus if want.response_status => {
                    self.status(want.status_fields, &mut e.response_status)?
                }
                Top::RequestObject if want.request_object => e.request_object = self.raw()?,
                Top::ResponseObject if want.response_object => e.response_object = self.raw()?,
                Top::RequestReceivedTimestamp if want.times => {
                    e.request_received_timestamp = self.str_field()?
                }
                Top::StageTimestamp if want.times => e.stage_timestamp = self.str_field()?,
                Top::Timestamp if want.times => e.v1beta1_timestamp = self.str_field()?,
                Top::Metadata if want.times => self.metadata(&mut e.metadata)?,
                Top::Annotations if want.annotations => {
                    e.annotations = self.map(Self::str_field)?
                }
                _ => self.skip_value()?,
            }
        });
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Slot, Want, parse_event, parse_event_into};
    use super::{Pattern, Top, UserKey};

    /// Events read one after another in one slot (the keys guessed from
    /// the last event's) read as each does alone (nothing guessed): when a
    /// guess holds, and when the key differs from it only after the guess's
    /// length, by spacing or by an escape, is unknown, or breaks the syntax.
    #[test]
    fn guessed_keys_read_as_unguessed() {
        let first = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","user":{"username":"a"},"userAgent":"x","requestURI":"/"}"#;
        let texts = [
            first,
            first,
            // `"user"` guessed where `"userAgent"` is, and the reverse.
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"list","userAgent":"y","user":{"username":"b"},"requestURI":"/a"}"#,
            r#"{"kind" :"Event",  "apiVersion"	: "audit.k8s.io/v1","verb":"get","user":{"username":"c"}}"#,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb"."get"}"#,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","ver\u0062":"get"}"#,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","verb":"get","verb":"watch"}"#,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","vrb":"get","user":null}"#,
            r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","vrb":"get","user":{"username":"d"}}"#,
            first,
            // The structs' keys guessed likewise, in one order and another.
            r#"{"kind":"Event","user":{"username":"e","uid":"1"},"objectRef":{"resource":"pods","namespace":"a"},"responseStatus":{"metadata":{},"code":200}}"#,
            r#"{"kind":"Event","user":{"username":"e","uid":"1"},"objectRef":{"resource":"pods","namespace":"a"},"responseStatus":{"metadata":{},"code":200}}"#,
            r#"{"kind":"Event","user":{"uid":"2","username":"f"},"objectRef":{"namespace":"b","resource":"secrets"},"responseStatus":{"code":403,"metadata":{}}}"#,
            r#"{"kind":"Event","user":{"uid":"2","usernames":"g"},"objectRef":{"namespaces":"c","name":"x"},"responseStatus":{"code":"403"}}"#,
            first,
        ];
        let want = Want::all();
        let mut slot = Slot::default();
        for text in texts {
            let guessed =
                parse_event_into(text, &want, &mut slot).then(|| format!("{:?}", slot.event));
            let alone = parse_event(text, &want).map(|e| format!("{e:?}"));
            assert_eq!(guessed, alone, "{text}");
        }
        // The last event's keys are the guesses now.
        use Top::*;
        let order = [Kind, ApiVersion, Verb, User, UserAgent, RequestUri];
        assert_eq!(slot.spare.guesses.top.0[..order.len()], order);
        // `first`'s user has one key; the second position keeps the guess
        // from the event before.
        assert_eq!(
            slot.spare.guesses.user.0[..2],
            [UserKey::Username, UserKey::Other]
        );
        // Both outcomes were compared: events read, and events left to serde.
        assert!(parse_event(texts[3], &want).is_some());
        assert!(parse_event(texts[4], &want).is_none());
        assert!(parse_event(texts[5], &want).is_none());
        assert!(parse_event(texts[13], &want).is_none());
    }

    /// A pattern matches exactly the texts that start with its key, where
    /// 32 bytes are left and where fewer are.
    #[test]
    fn patterns_match_what_starts_with_the_key() {
        for key in [&b"\"a\""[..], b"\"requestReceivedTimestamp\"", &[b'x'; 32]] {
            let pattern = Pattern::new(key);
            for pad in 0..40 {
                let mut text = key.to_vec();
                text.extend(std::iter::repeat_n(b'"', pad));
                assert!(pattern.starts(&text, 0), "{pad}");
                for at in 0..key.len() {
                    let mut other = text.clone();
                    other[at] ^= 0x20;
                    assert!(!pattern.starts(&other, 0), "{pad} {at}");
                }
                assert!(!pattern.starts(&text[1..], 0));
                assert!(!pattern.starts(&text[..key.len() - 1], 0));
            }
        }
    }
}
