//! An event's top-level members, each key checked against a guess first.
//!
//! The events of one log list their fields in one order (the API server
//! writes them from one struct), so the key at each position is nearly
//! always the one the last event had there. Comparing the bytes with that
//! guess, quotes included, replaces the scan for the key's end and the
//! match of its name against every field's; a key that differs is read as
//! before, and becomes the guess for that position.

use super::{Parser, Want};
use crate::decode::event::Event;
use crate::decode::lenient::Presence;

/// Positions guessed: an audit event has about 15 members at the top.
const GUESSED: usize = 32;

macro_rules! fields {
    ($($field:ident = $name:literal,)*) => {
        /// The top-level fields the fast path reads, and any other key.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum Top {
            $($field,)*
            Other,
        }

        impl Top {
            /// The key as it is written, quotes included; empty for `Other`.
            fn quoted(self) -> &'static [u8] {
                match self {
                    $(Top::$field => concat!("\"", $name, "\"").as_bytes(),)*
                    Top::Other => b"",
                }
            }

            fn of(key: &str) -> Top {
                match key {
                    $($name => Top::$field,)*
                    _ => Top::Other,
                }
            }
        }
    };
}

fields! {
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

/// The key at each position of the last event read (of this slot).
#[derive(Default)]
pub(super) struct Guesses(Vec<Top>);

impl<'a> Parser<'a, '_> {
    /// The key of the `n`th member and its colon; positioned at the value.
    #[inline]
    fn top_key(&mut self, n: usize) -> Option<Top> {
        if let Some(&guess) = self.spare.guesses.0.get(n) {
            let quoted = guess.quoted();
            if !quoted.is_empty() && self.b.get(self.i..self.i + quoted.len()) == Some(quoted) {
                // The same bytes `key` would have read up to the colon.
                self.i += quoted.len();
                self.ws();
                self.eat(b':')?;
                self.ws();
                return Some(guess);
            }
        }
        let top = Top::of(self.key()?);
        let guesses = &mut self.spare.guesses.0;
        if n < guesses.len() {
            guesses[n] = top;
        } else if n == guesses.len() && n < GUESSED {
            guesses.push(top);
        }
        Some(top)
    }

    pub(super) fn event(&mut self, want: &Want, e: &mut Event<'a>) -> Option<()> {
        e.clear();
        e.presence = Presence::Present;
        let mut n = 0;
        members!(
            self,
            {
                n += 1;
                self.top_key(n - 1)
            },
            |top| {
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
                    Top::ResponseObject if want.response_object => {
                        e.response_object = self.raw()?
                    }
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
            }
        );
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Slot, Want, parse_event, parse_event_into};
    use super::Top;

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
        assert_eq!(slot.spare.guesses.0[..order.len()], order);
        // And each event above was read the same as alone.
        assert!(parse_event(texts[3], &want).is_some());
        assert!(parse_event(texts[4], &want).is_none());
        assert!(parse_event(texts[5], &want).is_none());
    }
}
