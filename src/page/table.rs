//! Tables of the page: built from query results, sortable in the browser
//! (each cell may carry a sort key: numbers and times sort as such).

use std::fmt::Write;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

use super::esc;

/// The most rows a table shows; the page says how many there were.
pub const MAX_ROWS: usize = 500;

/// One cell: its text, and how it sorts when that is not its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub text: String,
    pub sort: Option<String>,
    /// A CSS class: `flag` (something to look at), `long` (wraps anywhere),
    /// `list` (one value a line), `num` (a number, right-aligned).
    pub class: Option<&'static str>,
}

impl Cell {
    pub fn text(s: impl Into<String>) -> Self {
        Self {
            text: s.into(),
            sort: None,
            class: None,
        }
    }

    pub fn number(n: u64) -> Self {
        Self {
            text: n.to_string(),
            sort: Some(n.to_string()),
            class: Some("num"),
        }
    }

    pub fn flagged(mut self, flag: bool) -> Self {
        if flag {
            self.class = Some("flag");
        }
        self
    }
}

/// Rows under named columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows there were, shown or not.
    pub total: usize,
}

impl Table {
    /// The columns `names` of `batches` (all of them when empty), at most
    /// [`MAX_ROWS`] rows. Lists are one value a line, times are UTC to the
    /// second (sorting to the microsecond), booleans `yes` or nothing.
    pub fn from_batches(batches: &[RecordBatch], names: &[&str]) -> Self {
        let schema = batches.first().map(|b| b.schema());
        let names: Vec<String> = match (&schema, names.is_empty()) {
            (Some(s), true) => s.fields().iter().map(|f| f.name().clone()).collect(),
            _ => names.iter().map(|n| n.to_string()).collect(),
        };
        let mut rows = Vec::new();
        let mut total = 0;
        for batch in batches {
            total += batch.num_rows();
            let take = batch.num_rows().min(MAX_ROWS.saturating_sub(rows.len()));
            let columns: Vec<Option<&dyn Array>> = names
                .iter()
                .map(|n| batch.column_by_name(n).map(|c| c.as_ref()))
                .collect();
            for row in 0..take {
                rows.push(
                    columns
                        .iter()
                        .map(|c| c.map_or_else(|| Cell::text(""), |c| cell(c, row)))
                        .collect(),
                );
            }
        }
        Self {
            columns: names,
            rows,
            total,
        }
    }

    pub fn render(&self, out: &mut String) {
        if self.total > self.rows.len() {
            let _ = write!(
                out,
                "<p class=\"note\">The first {} of {} rows.</p>",
                self.rows.len(),
                self.total
            );
        }
        out.push_str("<div class=\"scroll\"><table class=\"sortable\"><thead><tr>");
        for c in &self.columns {
            let _ = write!(
                out,
                "<th scope=\"col\" tabindex=\"0\" title=\"Sort by {0}\">{0}</th>",
                esc(c)
            );
        }
        out.push_str("</tr></thead><tbody>");
        for row in &self.rows {
            out.push_str("<tr>");
            for c in row {
                out.push_str("<td");
                if let Some(class) = c.class {
                    let _ = write!(out, " class=\"{class}\"");
                }
                if let Some(key) = &c.sort {
                    let _ = write!(out, " data-sort=\"{}\"", esc(key));
                }
                let _ = write!(out, ">{}</td>", esc(&c.text));
            }
            out.push_str("</tr>");
        }
        out.push_str("</tbody></table></div>");
    }
}

/// The cell for `row` of `array`.
fn cell(array: &dyn Array, row: usize) -> Cell {
    if array.is_null(row) {
        return Cell::text("");
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let us = array.as_primitive::<TimestampMicrosecondType>().value(row);
            let text = chrono::DateTime::from_timestamp_micros(us)
                .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default();
            Cell {
                text,
                sort: Some(format!("{us:020}")),
                class: None,
            }
        }
        DataType::Boolean => {
            let yes = array.as_boolean().value(row);
            Cell::text(if yes { "yes" } else { "" }).flagged(yes)
        }
        DataType::List(_) => {
            let values = array.as_list::<i32>().value(row);
            let items: Vec<String> = (0..values.len())
                .map(|i| cell(values.as_ref(), i).text)
                .collect();
            Cell {
                text: items.join("\n"),
                sort: None,
                class: Some("list"),
            }
        }
        t => {
            let options = FormatOptions::default();
            let text = ArrayFormatter::try_new(array, &options)
                .map(|f| f.value(row).to_string())
                .unwrap_or_default();
            let number = t.is_integer() || t.is_floating();
            let sort = number.then(|| text.clone());
            let class = if number {
                Some("num")
            } else {
                (text.len() > 80).then_some("long")
            };
            Cell { text, sort, class }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder,
        TimestampMicrosecondArray,
    };

    use super::*;

    #[test]
    fn cells_from_arrow() {
        let mut list = ListBuilder::new(StringBuilder::new());
        list.append_value([Some("a"), Some("b")]);
        list.append_null();
        let batch = RecordBatch::try_from_iter([
            (
                "who",
                Arc::new(StringArray::from(vec![Some("x"), None])) as _,
            ),
            ("n", Arc::new(Int64Array::from(vec![12, 3])) as _),
            (
                "at",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![1_700_000_000_000_000, 0])
                        .with_timezone("UTC"),
                ) as _,
            ),
            (
                "admin",
                Arc::new(BooleanArray::from(vec![true, false])) as _,
            ),
            ("ips", Arc::new(list.finish()) as _),
        ])
        .unwrap();
        let t = Table::from_batches(&[batch], &["who", "n", "at", "admin", "ips", "gone"]);
        assert_eq!(t.total, 2);
        let r = &t.rows[0];
        assert_eq!(r[0].text, "x");
        assert_eq!(r[1].sort.as_deref(), Some("12"));
        assert_eq!(r[2].text, "2023-11-14 22:13:20");
        assert_eq!(r[3].class, Some("flag"));
        assert_eq!(r[4].text, "a\nb");
        assert_eq!(r[5].text, "");
        assert_eq!(t.rows[1][0].text, "");
        assert_eq!(t.rows[1][3].text, "");
    }
}
