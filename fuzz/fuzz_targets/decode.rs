//! The decoder over arbitrary bytes: it must never panic, and the fast path
//! must give exactly the batches and the report of the serde path, for every
//! column at once and for a projection that makes the fast path skip most
//! of the event.
#![no_main]

use eksaudit::Decoder;
use eksaudit::report::Report;
use eksaudit::schema::Column;
use eksaudit::source::Chunk;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let chunk = Chunk::from_texts("fuzz.log", data.split(|&b| b == b'\n'));
    let projected = vec![Column::Verb, Column::ObjectRef, Column::ResponseStatus];
    for columns in [Column::ALL.to_vec(), projected] {
        let (fast_report, ref_report) = (Report::new(), Report::new());
        let fast = Decoder::new(columns.clone()).decode(&chunk, &fast_report);
        let reference = Decoder::new(columns).reference().decode(&chunk, &ref_report);
        match (fast, reference) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (a, b) => panic!("decode failed: fast {:?}, serde {:?}", a.err(), b.err()),
        }
        assert_eq!(fast_report.counts(), ref_report.counts());
    }
});
