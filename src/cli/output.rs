//! Writing query results: a table for people, CSV / JSON / NDJSON for
//! programs. Results stream out batch by batch except for the table, which
//! needs every row to size its columns.
//!
//! CSV follows RFC 4180: a header row, fields quoted when needed, NULL as an
//! empty field. Nested values (structs, lists, maps) become JSON text in CSV,
//! so `user` or `sourceIPs` stay machine-readable.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::Path;
use std::sync::Arc;

use clap::ValueEnum;
use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::arrow::util::pretty::pretty_format_batches_with_schema;
use datafusion::arrow::{csv, json};

/// Where results go: the `--output` file (its format from `format`, else
/// its extension, else CSV) or stdout (a table on a terminal, CSV when
/// piped). Also says what it is, for errors.
pub fn open(
    output: Option<&Path>,
    format: Option<Format>,
) -> Result<(Box<dyn Write>, String, Format), crate::error::Error> {
    Ok(match output {
        Some(path) => {
            let what = path.display().to_string();
            let file =
                std::fs::File::create(path).map_err(|cause| crate::error::Error::Output {
                    what: what.clone(),
                    cause,
                })?;
            let format = format
                .or_else(|| Format::from_extension(path))
                .unwrap_or(Format::Csv);
            (
                Box::new(BufWriter::with_capacity(1 << 16, file)),
                what,
                format,
            )
        }
        None => {
            let stdout = std::io::stdout();
            let default = if stdout.is_terminal() {
                Format::Table
            } else {
                Format::Csv
            };
            (
                Box::new(BufWriter::with_capacity(1 << 16, stdout.lock())),
                "stdout".to_string(),
                format.unwrap_or(default),
            )
        }
    })
}

/// Result formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned table (the default on a terminal).
    Table,
    /// RFC 4180 CSV with a header row (the default when piped).
    Csv,
    /// One JSON array of row objects.
    Json,
    /// One JSON object per line.
    Ndjson,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
            Format::Ndjson => "ndjson",
        }
    }

    /// The format an output file's extension asks for (`.parquet` is
    /// handled apart).
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "txt" => Some(Format::Table),
            _ => None,
        }
    }
}

/// Writes batches in one format. `push` as they come, then `finish`.
pub enum ResultWriter<W: Write> {
    Table {
        out: W,
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Csv {
        w: Box<csv::Writer<W>>,
        schema: SchemaRef,
        /// Whether a batch (and with it the header) was written.
        started: bool,
    },
    Json(json::ArrayWriter<W>),
    Ndjson(json::LineDelimitedWriter<W>),
}

impl<W: Write> ResultWriter<W> {
    pub fn new(format: Format, schema: SchemaRef, out: W) -> Self {
        let json = || json::WriterBuilder::new().with_explicit_nulls(true);
        match format {
            Format::Table => ResultWriter::Table {
                out,
                schema,
                batches: Vec::new(),
            },
            Format::Csv => ResultWriter::Csv {
                w: Box::new(csv::WriterBuilder::new().with_header(true).build(out)),
                schema,
                started: false,
            },
            Format::Json => ResultWriter::Json(json().build(out)),
            Format::Ndjson => ResultWriter::Ndjson(json().build(out)),
        }
    }

    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), ArrowError> {
        match self {
            ResultWriter::Table { batches, .. } => batches.push(batch.clone()),
            ResultWriter::Csv { w, started, .. } => {
                w.write(&nested_as_json(batch)?)?;
                *started = true;
            }
            ResultWriter::Json(w) => w.write(batch)?,
            ResultWriter::Ndjson(w) => w.write(batch)?,
        }
        Ok(())
    }

    pub fn finish(self) -> Result<(), ArrowError> {
        match self {
            ResultWriter::Table {
                mut out,
                schema,
                batches,
            } => {
                let table = pretty_format_batches_with_schema(schema, &batches)?;
                writeln!(out, "{table}")?;
                out.flush()?;
            }
            ResultWriter::Csv {
                mut w,
                schema,
                started,
            } => {
                if !started {
                    // No rows: the header still says what the columns are.
                    w.write(&nested_as_json(&RecordBatch::new_empty(schema))?)?;
                }
                let mut out = w.into_inner();
                out.flush()?;
            }
            ResultWriter::Json(mut w) => {
                w.finish()?;
                let mut out = w.into_inner();
                // A text file ends with a newline.
                writeln!(out)?;
                out.flush()?;
            }
            ResultWriter::Ndjson(mut w) => {
                w.finish()?;
                w.into_inner().flush()?;
            }
        }
        Ok(())
    }
}

fn is_nested(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Struct(_)
            | DataType::List(_)
            | DataType::LargeList(_)
            | DataType::ListView(_)
            | DataType::FixedSizeList(_, _)
            | DataType::Map(_, _)
    )
}

/// Replaces nested columns by their JSON text (CSV has no nesting).
pub fn nested_as_json(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return Ok(batch.clone());
    }
    let options = EncoderOptions::default().with_explicit_nulls(true);
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(fields.capacity());
    for (field, array) in schema.fields().iter().zip(batch.columns()) {
        if !is_nested(field.data_type()) {
            fields.push(field.as_ref().clone());
            columns.push(array.clone());
            continue;
        }
        let mut encoder = make_encoder(field, array.as_ref(), &options)?;
        let mut text = StringBuilder::with_capacity(array.len(), array.len() * 32);
        let mut buf = Vec::new();
        for i in 0..array.len() {
            if array.is_null(i) {
                text.append_null();
                continue;
            }
            buf.clear();
            encoder.encode(i, &mut buf);
            text.append_value(String::from_utf8_lossy(&buf));
        }
        fields.push(Field::new(field.name(), DataType::Utf8, true));
        columns.push(Arc::new(text.finish()));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
