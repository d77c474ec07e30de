//! The fast path's event slot: one event read after another, and the
//! lists and maps of each emptied and kept for the next.

use std::borrow::Cow;

use crate::decode::event::{Event, UserInfo};
use crate::decode::lenient::{Map, Str, StrList};

/// Where the events of one chunk are read, one after the other: an event is
/// over a kilobyte, and returning it by value copied it several times per
/// line; and the lists and maps of one event are emptied and reused for
/// the next, not allocated anew for each.
#[derive(Default)]
pub struct Slot<'a> {
    pub event: Event<'a>,
    pub(super) spare: Spare<'a>,
}

/// Emptied lists and maps, for the next event's.
#[derive(Default)]
pub(super) struct Spare<'a> {
    pub(super) lists: Vec<Vec<Option<Cow<'a, str>>>>,
    str_maps: Vec<Vec<(Cow<'a, str>, Str<'a>)>>,
    list_maps: Vec<Vec<(Cow<'a, str>, StrList<'a>)>>,
    /// The last event's keys, in order (see `guess`).
    pub(super) guesses: super::guess::AllGuesses,
}

impl<'a> Spare<'a> {
    /// Takes the lists and maps out of `ev`, emptied.
    pub(super) fn keep_event(&mut self, ev: &mut Event<'a>) {
        self.keep_user(&mut ev.user);
        self.keep_user(&mut ev.impersonated_user);
        self.keep_list(&mut ev.source_ips);
        if let Map::Value(mut entries) = std::mem::take(&mut ev.annotations) {
            entries.clear();
            self.str_maps.push(entries);
        }
    }

    fn keep_user(&mut self, user: &mut UserInfo<'a>) {
        self.keep_list(&mut user.groups);
        if let Map::Value(mut entries) = std::mem::take(&mut user.extra) {
            for (_, mut list) in entries.drain(..) {
                self.keep_list(&mut list);
            }
            self.list_maps.push(entries);
        }
    }

    fn keep_list(&mut self, list: &mut StrList<'a>) {
        if let StrList::Value(mut items) = std::mem::take(list) {
            items.clear();
            self.lists.push(items);
        }
    }
}

/// The values a map's entries may hold, each with its spare entry lists.
pub(super) trait Spared<'a>: Sized {
    fn spare<'s>(spare: &'s mut Spare<'a>) -> &'s mut Vec<Vec<(Cow<'a, str>, Self)>>;
}

impl<'a> Spared<'a> for Str<'a> {
    fn spare<'s>(spare: &'s mut Spare<'a>) -> &'s mut Vec<Vec<(Cow<'a, str>, Self)>> {
        &mut spare.str_maps
    }
}

impl<'a> Spared<'a> for StrList<'a> {
    fn spare<'s>(spare: &'s mut Spare<'a>) -> &'s mut Vec<Vec<(Cow<'a, str>, Self)>> {
        &mut spare.list_maps
    }
}
