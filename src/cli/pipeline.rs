//! Decoding on every core: a reader thread, decoder threads and a
//! reorder step, for the commands that consume decoded batches themselves
//! (hunting, the report) rather than through a query's `audit` table.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;

use crate::decode::Decoder;
use crate::report::Report;
use crate::source::{Chunk, ChunkSource};

/// Reads `source` on a thread of its own and decodes it on `threads` more,
/// handing the batches over in input order (a reorder step numbers the
/// chunks) through short queues, so memory stays bounded.
pub(super) fn decoded(
    source: Arc<dyn ChunkSource>,
    decoder: Decoder,
    report: Arc<Report>,
    threads: usize,
) -> tokio::sync::mpsc::Receiver<anyhow::Result<RecordBatch>> {
    type Numbered = (u64, anyhow::Result<RecordBatch>);
    let threads = threads.max(1);
    let (chunk_tx, chunk_rx) = crossbeam_channel::bounded::<(u64, Chunk)>(threads);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Numbered>(threads);
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let read_done = done_tx.clone();
    let spawn = |name: &str, f: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(f)
            .expect("spawning a reader or decoder thread");
    };
    spawn(
        "eksaudit-read",
        Box::new(move || {
            let mut seq = 0;
            let result = source.run(&mut |chunk| {
                seq += 1;
                chunk_tx.send((seq - 1, chunk)).is_ok()
            });
            if let Err(e) = result {
                // Numbered after the chunks before it.
                let _ = read_done.send((seq, Err(e.into())));
            }
        }),
    );
    for _ in 0..threads {
        let (chunks, done) = (chunk_rx.clone(), done_tx.clone());
        let (decoder, report) = (decoder.clone(), report.clone());
        spawn(
            "eksaudit-decode",
            Box::new(move || {
                for (seq, chunk) in chunks {
                    let batch = decoder.decode(&chunk, &report).map_err(Into::into);
                    if done.send((seq, batch)).is_err() {
                        break;
                    }
                }
            }),
        );
    }
    drop(done_tx);
    spawn(
        "eksaudit-order",
        Box::new(move || {
            let mut next = 0;
            let mut waiting = BTreeMap::new();
            for (seq, item) in done_rx {
                waiting.insert(seq, item);
                while let Some(item) = waiting.remove(&next) {
                    if tx.blocking_send(item).is_err() {
                        return;
                    }
                    next += 1;
                }
            }
        }),
    );
    rx
}
