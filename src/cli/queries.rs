//! `eksaudit queries`: the saved queries and the question each answers.

use std::io::Write;
use std::process::ExitCode;

use crate::query::saved;

pub fn run(out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let all = saved::all();
    let width = all.iter().map(|q| q.name.len()).max().unwrap_or(0);
    for q in &all {
        let params: String = q
            .params
            .iter()
            .map(|(k, v)| format!(" [--param {k}={v}]"))
            .collect();
        writeln!(out, "{:width$}  {}{params}", q.name, q.description)?;
    }
    writeln!(out, "\nRun one with: eksaudit query --saved NAME PATH...")?;
    Ok(ExitCode::SUCCESS)
}
