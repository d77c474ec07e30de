//! `eksaudit rbac unused`: the grants of a cluster's RBAC the log never
//! used, as rows in the query formats.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use serde_json::Value;

use super::UnusedArgs;
use super::output::{Format, ResultWriter};
use super::query::{Job, run_over};
use super::rbac::{ALLOWED, REQUESTS, load};
use crate::error::Error;
use crate::lake::Lake;
use crate::rbac::{self, unused::Finding};

pub const UNUSED_HELP: &str = "\
The RBAC dump: kubectl get roles,clusterroles,rolebindings,clusterrolebindings -A -o json
(aggregated ClusterRoles are taken with the rules the controller filled in,
or the union of the ClusterRoles their selectors pick when the dump has
none). Only allowed requests count as use; a request uses every rule that
allows it, through every binding of its user, its groups or its service
account (in the binding's namespace for a RoleBinding).

Findings, one row each:
  unused rule      a rule of a bound role no request of that subject used
  unused binding   a binding none of whose subjects used any of its rules
  wildcard         a rule granting * (verbs, apiGroups, resources or URLs)
  role missing     the binding names a role the dump does not hold
  outside RBAC     what a user or service account did that no binding in
                   the dump allows (system:masters, EKS access policies,
                   the node authorizer): the rule `rbac suggest` would make
Bindings named system:* or eks:* are left out unless --include-system.

Examples:
  kubectl get roles,clusterroles,rolebindings,clusterrolebindings -A -o json > rbac.json
  eksaudit rbac unused --rbac rbac.json /var/log/eks/
  eksaudit rbac unused --rbac rbac.json --lake s3://lake/eks --since 90d --format json";

pub fn unused(args: UnusedArgs) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(&args.rbac).with_context(|| args.rbac.display().to_string())?;
    let dump: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", args.rbac.display()))?;
    let bindings =
        rbac::dump::bindings(&dump).map_err(|e| anyhow::anyhow!("{}: {e}", args.rbac.display()))?;
    let sql = REQUESTS.replace("WHO", "true").replace("ALLOWED", ALLOWED);
    let job = Unused {
        sql,
        bindings,
        args: &args,
    };
    run_over(&args.input, &args.paths, job)
}

struct Unused<'a> {
    sql: String,
    bindings: Vec<rbac::dump::Binding>,
    args: &'a UnusedArgs,
}

impl Job for Unused<'_> {
    async fn run(
        self,
        ctx: SessionContext,
        _lake: Option<Lake>,
        before_output: &mut dyn FnMut(),
    ) -> Result<(), Error> {
        let seen = load(&ctx, &self.sql, None).await?;
        before_output();
        let findings = rbac::unused::findings(&self.bindings, &seen, self.args.include_system);
        write_findings(
            &findings,
            self.args.out.format,
            self.args.out.output.as_deref(),
        )
    }
}

fn write_findings(
    findings: &[Finding],
    format: Option<Format>,
    output: Option<&std::path::Path>,
) -> Result<(), Error> {
    let text = |f: fn(&Finding) -> &str| {
        Arc::new(StringArray::from_iter_values(findings.iter().map(f))) as _
    };
    let schema = Arc::new(Schema::new(
        [
            "subject_kind",
            "subject",
            "binding",
            "role",
            "rule",
            "finding",
        ]
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .chain([Field::new("requests", DataType::Int64, false)])
        .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            text(|f| &f.subject.0),
            text(|f| &f.subject.1),
            text(|f| &f.binding),
            text(|f| &f.role),
            text(|f| &f.rule),
            text(|f| f.finding),
            Arc::new(Int64Array::from_iter_values(
                findings.iter().map(|f| f.requests),
            )),
        ],
    )
    .map_err(|e| Error::Query(e.into()))?;
    let (out, what, format) = super::output::open(output, format)?;
    let mut w = ResultWriter::new(format, schema, out);
    w.push(&batch)
        .and_then(|()| w.finish())
        .map_err(|e| Error::Rbac(format!("writing {what}: {e}")))
}
