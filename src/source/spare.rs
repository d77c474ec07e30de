//! The buffers of dropped chunks, kept for the next ones. A chunk's buffer
//! is a block of a file (megabytes) and its message list hundreds of
//! kilobytes; a fresh allocation that size is mapped from the kernel and
//! faulted in page by page, every time where large blocks are mapped apart
//! (see `memory`): a third of a hunt's page faults. A few are kept; the
//! rest are freed as before.

use std::sync::Mutex;

use super::Message;

/// Enough for the blocks in flight between a reader and its decoders.
const KEEP: usize = 4;

/// Smaller buffers are cheap to allocate and not worth keeping.
const WORTH_KEEPING: usize = 256 << 10;

type Buffers = (Vec<u8>, Vec<Message>);

static SPARE: Mutex<Vec<Buffers>> = Mutex::new(Vec::new());

/// An empty buffer and message list, reused if one is spare.
pub(super) fn take() -> Buffers {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    spare.pop().unwrap_or_default()
}

/// Keeps `buf` and `messages` (emptied) for [`take`], if worth it and
/// there is room.
pub(super) fn give(mut buf: Vec<u8>, mut messages: Vec<Message>) {
    // A chunk of a mapped file has only its message list to give.
    if buf.capacity() < WORTH_KEEPING && messages.capacity() * size_of::<Message>() < WORTH_KEEPING
    {
        return;
    }
    buf.clear();
    messages.clear();
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    if spare.len() < KEEP {
        spare.push((buf, messages));
    }
}
