//! `eksaudit alerts import-sigma`: Sigma rules written out as eksaudit
//! rules, or refused with the line and why.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;

use super::ImportSigmaArgs;
use crate::alerts;

pub const SIGMA_HELP: &str = "\
Each Sigma rule becomes one eksaudit rule, named after its file: its
selections (maps of fields, lists of maps) as SQL, its condition (and, or,
not, parentheses, `1 of sel*`, `all of them`), its level as the severity,
its attack.* tags as MITRE tactic and technique. Modifiers: contains,
startswith, endswith, re, cidr, all, exists, cased; values match Sigma's
way, case-insensitively, with * and ? wildcards.

Fields are the audit event's own dotted paths: verb, requestURI, userAgent,
stage, level, auditID, objectRef.{resource,namespace,name,apiGroup,
apiVersion,subresource}, user.{username,uid,groups}, impersonatedUser.
{username,groups}, sourceIPs, responseStatus.{code,status,reason,message},
annotations.<key>, requestObject.<path>, responseObject.<path> (JSON paths).

Refused, with the file, the line and why (the rule could never fire, or
its meaning would change): another logsource, a field audit events do not
have (e.g. a top-level hostPath or apiGroup), a string compared with the
numeric responseStatus.code, keyword selections, aggregations (`| count()`),
other modifiers.

Exit status: 0 when every rule was imported, 1 when some were refused, 2 on
other errors.";

/// `alerts import-sigma`: each file imported or refused with a reason.
pub fn import(args: &ImportSigmaArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for p in &args.paths {
        if p.is_dir() {
            let mut inner: Vec<_> = std::fs::read_dir(p)
                .with_context(|| p.display().to_string())?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect();
            inner.sort();
            files.extend(inner);
        } else {
            files.push(p.clone());
        }
    }
    std::fs::create_dir_all(&args.output).with_context(|| args.output.display().to_string())?;
    let (mut imported, mut refused) = (0, 0);
    for f in &files {
        let text = std::fs::read_to_string(f).with_context(|| f.display().to_string())?;
        let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or("sigma");
        match alerts::sigma::import(&text, stem) {
            Ok(rule) => {
                let target = args.output.join(format!("{stem}.yaml"));
                let yaml = serde_norway::to_string(&rule)?;
                std::fs::write(&target, yaml).with_context(|| target.display().to_string())?;
                writeln!(out, "imported {} -> {}", f.display(), target.display())?;
                imported += 1;
            }
            Err(r) => {
                let at = r.line.map(|l| format!(":{l}")).unwrap_or_default();
                writeln!(out, "refused  {}{at}: {}", f.display(), r.reason)?;
                refused += 1;
            }
        }
    }
    writeln!(out, "{imported} imported, {refused} refused")?;
    Ok(if refused == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
