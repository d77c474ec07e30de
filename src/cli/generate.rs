//! `eksaudit generate`: a synthetic audit log on stdout or in a file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::GenerateArgs;
use crate::synth::{GenOptions, generate};

pub fn run(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    let opts = GenOptions {
        events: args.events,
        seed: args.seed,
        export_lines: args.export_lines,
        mix: args.mix,
        span: args
            .span
            .as_deref()
            .map(crate::source::cloudwatch::parse_duration)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--span: {e}"))?,
    };
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::with_capacity(
            1 << 20,
            File::create(path).with_context(|| format!("{}", path.display()))?,
        )),
        None => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    generate(&opts, &mut out).context("writing the generated log")?;
    Ok(ExitCode::SUCCESS)
}
