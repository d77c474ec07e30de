//! One audit event as read from JSON, borrowing from the input where it can.
//!
//! This is the reference reading of an event: every field of the schema is
//! parsed leniently (see `lenient`), `requestObject` / `responseObject` are
//! kept as their verbatim JSON text, and `audit.k8s.io/v1beta1` time fields
//! (`timestamp`, `metadata.creationTimestamp`) fill in for the v1 ones.

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use super::fast::{Fields, Want};
use super::lenient::{Int, Map, Presence, Str, StrList, lenient_struct};

/// A value kept as its JSON text (`requestObject`, `responseObject`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Json<'a>(pub Option<&'a str>);

impl<'a> Json<'a> {
    /// The text, or `None` for an absent value or JSON `null`.
    pub fn get(&self) -> Option<&'a str> {
        self.0.filter(|s| *s != "null")
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Option<&'de RawValue> = Deserialize::deserialize(d)?;
        Ok(Json(raw.map(RawValue::get)))
    }
}

lenient_struct! {
    /// `user` / `impersonatedUser` (authentication.k8s.io/v1 UserInfo).
    pub struct UserInfo<'a> {
        "username" => username: Str<'a>,
        "uid" => uid: Str<'a>,
        "groups" => groups: StrList<'a>,
        "extra" => extra: Map<'a, StrList<'a>>,
    }
}

lenient_struct! {
    /// `objectRef`.
    pub struct ObjectRef<'a> {
        "resource" => resource: Str<'a>,
        "namespace" => namespace: Str<'a>,
        "name" => name: Str<'a>,
        "uid" => uid: Str<'a>,
        "apiGroup" => api_group: Str<'a>,
        "apiVersion" => api_version: Str<'a>,
        "resourceVersion" => resource_version: Str<'a>,
        "subresource" => subresource: Str<'a>,
    }
}

impl<'a> ObjectRef<'a> {
    /// The fields in `schema::OBJECT_REF_FIELDS` order.
    pub fn fields(&self) -> [&Str<'a>; 8] {
        [
            &self.resource,
            &self.namespace,
            &self.name,
            &self.uid,
            &self.api_group,
            &self.api_version,
            &self.resource_version,
            &self.subresource,
        ]
    }
}

lenient_struct! {
    /// `responseStatus` (metav1.Status, the parts queries use).
    pub struct ResponseStatus<'a> {
        "code" => code: Int,
        "status" => status: Str<'a>,
        "reason" => reason: Str<'a>,
        "message" => message: Str<'a>,
    }
}

lenient_struct! {
    /// v1beta1 `metadata`, read only for its creation time.
    pub struct ObjectMeta<'a> {
        "creationTimestamp" => creation_timestamp: Str<'a>,
    }
}

lenient_struct! {
    /// An `audit.k8s.io` Event.
    pub struct Event<'a> {
        "kind" => kind: Str<'a>,
        "apiVersion" => api_version: Str<'a>,
        "level" => level: Str<'a>,
        "auditID" => audit_id: Str<'a>,
        "stage" => stage: Str<'a>,
        "requestURI" => request_uri: Str<'a>,
        "verb" => verb: Str<'a>,
        "user" => user: UserInfo<'a>,
        "impersonatedUser" => impersonated_user: UserInfo<'a>,
        "sourceIPs" => source_ips: StrList<'a>,
        "userAgent" => user_agent: Str<'a>,
        "objectRef" => object_ref: ObjectRef<'a>,
        "responseStatus" => response_status: ResponseStatus<'a>,
        "requestObject" => request_object: Json<'a>,
        "responseObject" => response_object: Json<'a>,
        "requestReceivedTimestamp" => request_received_timestamp: Str<'a>,
        "stageTimestamp" => stage_timestamp: Str<'a>,
        "annotations" => annotations: Map<'a, Str<'a>>,
        "timestamp" => v1beta1_timestamp: Str<'a>,
        "metadata" => metadata: ObjectMeta<'a>,
    }
}

/// Why a JSON object is not taken as an audit event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotAnEvent {
    NotAnObject(&'static str),
    Kind(String),
    ApiVersion(String),
    NoAuditFields,
}

impl std::fmt::Display for NotAnEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotAnEvent::NotAnObject(found) => {
                write!(
                    f,
                    "not an audit event: expected a JSON object, found {found}"
                )
            }
            NotAnEvent::Kind(k) => write!(f, "not an audit event: kind is {k}, not \"Event\""),
            NotAnEvent::ApiVersion(v) => {
                write!(
                    f,
                    "not an audit event: apiVersion {v:?} is not audit.k8s.io"
                )
            }
            NotAnEvent::NoAuditFields => {
                f.write_str("not an audit event: no kind, auditID, verb or requestURI")
            }
        }
    }
}

impl<'a> Event<'a> {
    /// Checks that this object is an audit Event. Core `v1` Events share
    /// `kind: Event`, so a present `apiVersion` must be `audit.k8s.io/*`;
    /// some real fixtures omit `apiVersion` (and a few `kind`), so an object
    /// with audit fields and no contradicting kind is accepted.
    pub fn check_is_audit(&self) -> Result<(), NotAnEvent> {
        if let Presence::Wrong(found) = self.presence {
            return Err(NotAnEvent::NotAnObject(found));
        }
        match &self.kind {
            Str::Value(k) if k != "Event" => return Err(NotAnEvent::Kind(format!("{k:?}"))),
            Str::Wrong(w) => return Err(NotAnEvent::Kind(format!("a {w}"))),
            _ => {}
        }
        if let Str::Value(v) = &self.api_version
            && !v.starts_with("audit.k8s.io/")
        {
            return Err(NotAnEvent::ApiVersion(v.to_string()));
        }
        let has_audit_fields = self.kind.get().is_some()
            || self.audit_id.get().is_some()
            || self.verb.get().is_some()
            || self.request_uri.get().is_some();
        if has_audit_fields {
            Ok(())
        } else {
            Err(NotAnEvent::NoAuditFields)
        }
    }

    /// Time the apiserver received the request; v1beta1 events only carry
    /// `timestamp` (and `metadata.creationTimestamp`).
    pub fn received_time(&self) -> (&'static str, &Str<'a>) {
        first_present([
            ("requestReceivedTimestamp", &self.request_received_timestamp),
            ("timestamp", &self.v1beta1_timestamp),
            (
                "metadata.creationTimestamp",
                &self.metadata.creation_timestamp,
            ),
        ])
    }

    /// Time of the event's stage, with the same v1beta1 fallbacks.
    pub fn stage_time(&self) -> (&'static str, &Str<'a>) {
        first_present([
            ("stageTimestamp", &self.stage_timestamp),
            ("timestamp", &self.v1beta1_timestamp),
            (
                "metadata.creationTimestamp",
                &self.metadata.creation_timestamp,
            ),
        ])
    }
}

fn first_present<'s, 'a, const N: usize>(
    candidates: [(&'static str, &'s Str<'a>); N],
) -> (&'static str, &'s Str<'a>) {
    candidates
        .iter()
        .find(|(_, v)| !matches!(v, Str::Absent))
        .copied()
        .unwrap_or(candidates[0])
}

/// A field of the wrong JSON type, nulled in the row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub expected: &'static str,
    pub found: &'static str,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (expected {}, found {})",
            self.field, self.expected, self.found
        )
    }
}

/// Times of an event, parsed once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Times {
    pub received_us: Option<i64>,
    pub stage_us: Option<i64>,
}

struct Problems<'p>(&'p mut Vec<Problem>);

/// `parent.name`, built only when there is a problem to report.
fn path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

impl Problems<'_> {
    fn add(&mut self, field: String, expected: &'static str, found: &'static str) {
        self.0.push(Problem {
            field,
            expected,
            found,
        });
    }
    #[inline]
    fn str(&mut self, parent: &str, name: &str, v: &Str<'_>) {
        if let Some(found) = v.wrong() {
            self.add(path(parent, name), "string", found);
        }
    }
    #[inline]
    fn list(&mut self, parent: &str, name: &str, v: &StrList<'_>) {
        if let StrList::Wrong(found) = v {
            self.add(path(parent, name), "array of strings", found);
        }
    }
    #[inline]
    fn object(&mut self, name: &str, p: Presence) {
        if let Presence::Wrong(found) = p {
            self.add(name.to_string(), "object", found);
        }
    }
    fn user(&mut self, field: &str, u: &UserInfo<'_>) {
        self.object(field, u.presence);
        self.str(field, "username", &u.username);
        self.str(field, "uid", &u.uid);
        self.list(field, "groups", &u.groups);
        match &u.extra {
            Map::Wrong(found) => self.add(path(field, "extra"), "object", found),
            Map::Value(entries) => {
                for (k, v) in entries {
                    if let StrList::Wrong(found) = v {
                        self.add(format!("{field}.extra.{k}"), "array of strings", found);
                    }
                }
            }
            Map::Absent => {}
        }
    }
    fn time(&mut self, (field, v): (&'static str, &Str<'_>)) -> Option<i64> {
        match v {
            Str::Value(s) => {
                let t = super::time::parse_micros(s);
                if t.is_none() {
                    self.add(field.to_string(), "RFC 3339 timestamp", "another string");
                }
                t
            }
            Str::Wrong(found) => {
                self.add(field.to_string(), "string", found);
                None
            }
            Str::Absent => None,
        }
    }
}

/// Empties `slot` (to its absent default) unless `f` has field `i`.
fn keep<T: Default>(f: Fields, i: usize, slot: &mut T) {
    if !f.has(i) {
        *slot = T::default();
    }
}

impl Event<'_> {
    /// Drops the struct fields `want` does not ask for, as the fast path
    /// never reads them: both paths give the same rows and problems.
    pub fn trim(&mut self, want: &Want) {
        for (u, f) in [
            (&mut self.user, want.user_fields),
            (&mut self.impersonated_user, want.impersonated_fields),
        ] {
            keep(f, 0, &mut u.username);
            keep(f, 1, &mut u.uid);
            keep(f, 2, &mut u.groups);
            keep(f, 3, &mut u.extra);
        }
        let o = &mut self.object_ref;
        let refs = [
            &mut o.resource,
            &mut o.namespace,
            &mut o.name,
            &mut o.uid,
            &mut o.api_group,
            &mut o.api_version,
            &mut o.resource_version,
            &mut o.subresource,
        ];
        for (i, field) in refs.into_iter().enumerate() {
            keep(want.object_ref_fields, i, field);
        }
        let (s, f) = (&mut self.response_status, want.status_fields);
        keep(f, 0, &mut s.code);
        keep(f, 1, &mut s.status);
        keep(f, 2, &mut s.reason);
        keep(f, 3, &mut s.message);
    }

    /// Parses the times and lists every field of the wrong type among those
    /// `want` asks for. Fields a query does not read are not checked: the
    /// fast path does not parse them, and both paths must agree.
    pub fn check_fields(&self, want: &Want, out: &mut Vec<Problem>) -> Times {
        let mut p = Problems(out);
        p.str("", "auditID", &self.audit_id);
        p.str("", "requestURI", &self.request_uri);
        p.str("", "verb", &self.verb);
        if want.level {
            p.str("", "level", &self.level);
        }
        if want.stage {
            p.str("", "stage", &self.stage);
        }
        if want.user {
            p.user("user", &self.user);
        }
        if want.impersonated_user {
            p.user("impersonatedUser", &self.impersonated_user);
        }
        if want.source_ips {
            p.list("", "sourceIPs", &self.source_ips);
        }
        if want.user_agent {
            p.str("", "userAgent", &self.user_agent);
        }
        if want.object_ref {
            p.object("objectRef", self.object_ref.presence);
            for (name, v) in crate::schema::OBJECT_REF_FIELDS
                .iter()
                .zip(self.object_ref.fields())
            {
                p.str("objectRef", name, v);
            }
        }
        if want.response_status {
            let rs = &self.response_status;
            p.object("responseStatus", rs.presence);
            match rs.code {
                Int::Wrong(found) => p.add("responseStatus.code".into(), "integer", found),
                Int::Value(c) if i32::try_from(c).is_err() => p.add(
                    "responseStatus.code".into(),
                    "32-bit integer",
                    "a larger number",
                ),
                _ => {}
            }
            p.str("responseStatus", "status", &rs.status);
            p.str("responseStatus", "reason", &rs.reason);
            p.str("responseStatus", "message", &rs.message);
        }
        if want.annotations {
            match &self.annotations {
                Map::Wrong(found) => p.add("annotations".into(), "object", found),
                Map::Value(entries) => {
                    for (k, v) in entries {
                        p.str("annotations", k, v);
                    }
                }
                Map::Absent => {}
            }
        }
        if !want.times {
            return Times::default();
        }
        Times {
            received_us: p.time(self.received_time()),
            stage_us: p.time(self.stage_time()),
        }
    }
}
