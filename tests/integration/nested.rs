//! Nested projection (only the struct fields a query names are built)
//! changes no answer: each query gives the same rows with the rule that
//! finds those fields as without it.

use std::sync::Arc;

use eksaudit::query::{self, Query};
use eksaudit::report::Report;
use eksaudit::source::{FileSource, SourceOptions, expand_paths};

use super::{samples, table};

fn answer(sql: &str, nested: bool) -> String {
    let inputs = expand_paths(&[samples()]).unwrap();
    let report = Arc::new(Report::new());
    let source = FileSource::new(inputs, SourceOptions::default(), report.clone());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let batches = rt
        .block_on(async {
            let ctx = query::session(Arc::new(source), report, 2, false)?;
            if !nested {
                assert!(ctx.remove_optimizer_rule("eksaudit_nested_fields"));
            }
            Query::plan(&ctx, sql).await?.collect().await
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    table(&batches)
}

#[test]
fn struct_fields_left_out_change_no_answer() {
    for sql in [
        "select user.username, count(*) as n from audit group by 1 order by 2 desc, 1",
        "select user, objectRef, auditID, stage from audit order by source_file, source_line, auditID, stage",
        "select * from audit order by source_file, source_line, auditID, stage limit 5",
        "select user.username, user.groups, user.extra['arn'][1], auditID, stage from audit \
         order by source_file, source_line, auditID, stage",
        "select distinct user.username from (select distinct * from audit) order by 1",
        "select objectRef.resource, responseStatus.code, count(*) from audit \
         where objectRef.namespace is not null group by 1, 2 order by 1, 2",
        "select u.username from (select user as u from audit) order by 1",
        "select count(*) from audit where user is not null and objectRef is null",
        "select verb from audit where user.username in \
         (select impersonatedUser.username from audit where impersonatedUser is not null) order by 1",
        "select a.user.username, b.verb from audit a join audit b on a.auditID = b.auditID \
         order by a.source_file, a.source_line, b.source_file, b.source_line, 1, 2 limit 20",
        "select user.username from audit union select impersonatedUser.username from audit order by 1",
        "select unnest(user.groups) as g, count(*) from audit group by 1 order by 1",
    ] {
        let (with, without) = (answer(sql, true), answer(sql, false));
        let first_difference = with.lines().zip(without.lines()).find(|(a, b)| a != b);
        assert!(with == without, "{sql}: {first_difference:?}");
    }
}
