//! Every saved query runs over samples/ and answers the story.

use eksaudit::query::saved;

use super::{run_sql, samples, table};

#[test]
fn every_saved_query_answers_on_samples() {
    for q in saved::all() {
        let mut sql = q.sql.to_string();
        for (k, v) in &q.params {
            sql = sql.replace(&format!("${k}"), &format!("'{v}'"));
        }
        let (batches, counts) =
            run_sql(&sql, &[samples()]).unwrap_or_else(|e| panic!("{}: {e}", q.name));
        assert_eq!(counts.problems(), 0);
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert!(rows > 0, "{} returned nothing on samples/", q.name);
        insta::assert_snapshot!(q.name, table(&batches));
    }
}
