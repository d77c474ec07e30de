//! The simd-json baseline: simdjson's design (a SIMD structural index, then
//! a tape of the whole document), read into the same `Event` the decoder
//! builds rows from, through `Decoder::decode_with`, so the Arrow output and
//! the checks are the decoder's own and only the parser differs.
//!
//! Like the fast path it converts only the fields the projection reads;
//! unlike it, simd-json builds the whole tape first (it has no way to skip
//! a subtree without indexing it). `requestObject`/`responseObject` are
//! written back from the tape (simd-json keeps no source offsets), the one
//! place its text can differ from the input's; the generated events are
//! compact, so it does not here.

use std::borrow::Cow;

use eksaudit::decode::event::{Event, Json, ObjectRef, ResponseStatus, UserInfo};
use eksaudit::decode::fast::Want;
use eksaudit::decode::lenient::{Int, Map, Presence, Str, StrList};
use simd_json::prelude::*;
use simd_json::tape::Value;

pub struct SimdJson {
    want: Want,
    buffers: simd_json::Buffers,
    scratch: Vec<u8>,
}

impl SimdJson {
    pub fn new(want: Want) -> Self {
        Self {
            want,
            buffers: simd_json::Buffers::default(),
            scratch: Vec::new(),
        }
    }

    /// `Decoder::decode_with`'s parser.
    pub fn parse(&mut self, text: &str, row: &mut dyn FnMut(&Event<'_>)) -> bool {
        let Self {
            want,
            buffers,
            scratch,
        } = self;
        scratch.clear();
        scratch.extend_from_slice(text.as_bytes());
        let Ok(tape) = simd_json::to_tape_with_buffers(scratch, buffers) else {
            return false;
        };
        let Some(top) = tape.as_value().as_object() else {
            return false;
        };
        let (mut request, mut response) = (None, None);
        let mut e = Event {
            presence: Presence::Present,
            ..Default::default()
        };
        for (key, v) in top.iter() {
            match key {
                "kind" => e.kind = string(v),
                "apiVersion" => e.api_version = string(v),
                "auditID" => e.audit_id = string(v),
                "verb" => e.verb = string(v),
                "requestURI" => e.request_uri = string(v),
                "level" if want.level => e.level = string(v),
                "stage" if want.stage => e.stage = string(v),
                "user" if want.user => e.user = user(v),
                "impersonatedUser" if want.impersonated_user => e.impersonated_user = user(v),
                "sourceIPs" if want.source_ips => e.source_ips = list(v),
                "userAgent" if want.user_agent => e.user_agent = string(v),
                "objectRef" if want.object_ref => e.object_ref = object_ref(v),
                "responseStatus" if want.response_status => e.response_status = status(v),
                "requestObject" if want.request_object => request = Some(v.encode()),
                "responseObject" if want.response_object => response = Some(v.encode()),
                "requestReceivedTimestamp" if want.times => {
                    e.request_received_timestamp = string(v)
                }
                "stageTimestamp" if want.times => e.stage_timestamp = string(v),
                "annotations" if want.annotations => e.annotations = map(v, string),
                _ => {}
            }
        }
        e.request_object = Json(request.as_deref());
        e.response_object = Json(response.as_deref());
        row(&e);
        true
    }
}

fn string<'i>(v: Value<'_, 'i>) -> Str<'i> {
    if v.is_null() {
        return Str::Absent;
    }
    match v.into_string() {
        Some(s) => Str::Value(Cow::Borrowed(s)),
        None => Str::Wrong("not a string"),
    }
}

fn list<'i>(v: Value<'_, 'i>) -> StrList<'i> {
    match v.as_array() {
        Some(items) => StrList::Value(
            items
                .iter()
                .map(|s| s.into_string().map(Cow::Borrowed))
                .collect(),
        ),
        None if v.is_null() => StrList::Absent,
        None => StrList::Wrong("not an array"),
    }
}

fn map<'i, V>(v: Value<'_, 'i>, value: fn(Value<'_, 'i>) -> V) -> Map<'i, V> {
    match v.as_object() {
        Some(o) => Map::Value(
            o.iter()
                .map(|(k, v)| (Cow::Borrowed(k), value(v)))
                .collect(),
        ),
        None if v.is_null() => Map::Absent,
        None => Map::Wrong("not an object"),
    }
}

fn user<'i>(v: Value<'_, 'i>) -> UserInfo<'i> {
    let mut u = UserInfo::default();
    if let Some(o) = v.as_object() {
        u.presence = Presence::Present;
        for (key, v) in o.iter() {
            match key {
                "username" => u.username = string(v),
                "uid" => u.uid = string(v),
                "groups" => u.groups = list(v),
                "extra" => u.extra = map(v, list),
                _ => {}
            }
        }
    }
    u
}

fn object_ref<'i>(v: Value<'_, 'i>) -> ObjectRef<'i> {
    let mut r = ObjectRef::default();
    if let Some(o) = v.as_object() {
        r.presence = Presence::Present;
        for (key, v) in o.iter() {
            let slot = match key {
                "resource" => &mut r.resource,
                "namespace" => &mut r.namespace,
                "name" => &mut r.name,
                "uid" => &mut r.uid,
                "apiGroup" => &mut r.api_group,
                "apiVersion" => &mut r.api_version,
                "resourceVersion" => &mut r.resource_version,
                "subresource" => &mut r.subresource,
                _ => continue,
            };
            *slot = string(v);
        }
    }
    r
}

fn status<'i>(v: Value<'_, 'i>) -> ResponseStatus<'i> {
    let mut s = ResponseStatus::default();
    if let Some(o) = v.as_object() {
        s.presence = Presence::Present;
        for (key, v) in o.iter() {
            match key {
                "code" => s.code = v.as_i64().map_or(Int::Absent, Int::Value),
                "status" => s.status = string(v),
                "reason" => s.reason = string(v),
                "message" => s.message = string(v),
                _ => {}
            }
        }
    }
    s
}
