//! One self-contained HTML page (`eksaudit report`): inline CSS, inline
//! SVG charts, a few lines of inline script that sort the tables, and a
//! Content-Security-Policy that forbids every request, so opening the file
//! fetches nothing, and anything that tried would show as an error in the
//! browser's console.

pub mod chart;
pub mod table;

use std::fmt::Write;

pub use chart::Chart;
pub use table::{Cell, Table};

const CSS: &str = include_str!("page.css");
const SCRIPT: &str = include_str!("page.js");

/// Nothing may be loaded: no network, no other file. Inline style and
/// script only.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; \
                   script-src 'unsafe-inline'; img-src data:";

/// A part of the page under its own heading.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: String,
    pub title: String,
    /// What the section shows and how it was worked out.
    pub intro: String,
    pub charts: Vec<Chart>,
    pub table: Option<Table>,
    /// What an empty table means ("No exec into pods.").
    pub empty: String,
}

impl Section {
    pub fn new(id: &str, title: &str, intro: &str, empty: &str) -> Self {
        Self {
            id: id.into(),
            title: title.into(),
            intro: intro.into(),
            charts: Vec::new(),
            table: None,
            empty: empty.into(),
        }
    }

    pub fn with_table(mut self, table: Table) -> Self {
        self.table = Some(table);
        self
    }
}

/// The whole report.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub title: String,
    /// Key facts shown first: (label, value).
    pub facts: Vec<(String, String)>,
    /// Where the events came from and the window asked for.
    pub scope: Vec<(String, String)>,
    pub sections: Vec<Section>,
    /// Small print at the end (generator, version, time written).
    pub footer: String,
}

impl Page {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64 * 1024);
        let _ = write!(
            out,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{}</title><style>{CSS}</style></head><body><header><h1>{}</h1>",
            esc(&self.title),
            esc(&self.title)
        );
        out.push_str("<dl class=\"scope\">");
        for (k, v) in &self.scope {
            let _ = write!(out, "<dt>{}</dt><dd>{}</dd>", esc(k), esc(v));
        }
        out.push_str("</dl><ul class=\"facts\">");
        for (k, v) in &self.facts {
            let _ = write!(
                out,
                "<li><span class=\"value\">{}</span> <span class=\"label\">{}</span></li>",
                esc(v),
                esc(k)
            );
        }
        out.push_str("</ul><nav><ul>");
        for s in &self.sections {
            let _ = write!(
                out,
                "<li><a href=\"#{}\">{}</a></li>",
                esc(&s.id),
                esc(&s.title)
            );
        }
        out.push_str("</ul></nav></header><main>");
        for s in &self.sections {
            let _ = write!(
                out,
                "<section id=\"{}\"><h2>{}</h2><p class=\"intro\">{}</p>",
                esc(&s.id),
                esc(&s.title),
                esc(&s.intro)
            );
            for c in &s.charts {
                c.render(&mut out);
            }
            match &s.table {
                Some(t) if !t.rows.is_empty() => t.render(&mut out),
                Some(_) => {
                    let _ = write!(out, "<p class=\"empty\">{}</p>", esc(&s.empty));
                }
                None => {}
            }
            out.push_str("</section>");
        }
        let _ = writeln!(
            out,
            "</main><footer>{}</footer><script>{SCRIPT}</script></body></html>",
            esc(&self.footer)
        );
        out
    }
}

/// `s` safe inside HTML text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_self_contained_and_escaped() {
        let table = Table {
            columns: vec!["who".into(), "n".into()],
            rows: vec![vec![Cell::text("<script>x</script>"), Cell::number(3)]],
            total: 1,
        };
        let page = Page {
            title: "Audit & more".into(),
            facts: vec![("events".into(), "3".into())],
            scope: vec![("inputs".into(), "a.log".into())],
            sections: vec![
                Section::new("who", "Who", "intro", "nobody").with_table(table),
                Section::new("none", "None", "intro", "Nothing here.").with_table(Table {
                    columns: vec!["x".into()],
                    rows: Vec::new(),
                    total: 0,
                }),
            ],
            footer: "f".into(),
        };
        let html = page.render();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<title>Audit &amp; more</title>"));
        assert!(html.contains("&lt;script&gt;x&lt;/script&gt;"));
        assert!(html.contains("default-src 'none'"));
        assert!(html.contains("<p class=\"empty\">Nothing here.</p>"));
        assert!(html.contains("<a href=\"#who\">Who</a>"));
        // Nothing is loaded from anywhere.
        for needle in ["src=\"http", "href=\"http", "url(", "@import"] {
            assert!(!html.contains(needle), "{needle}");
        }
    }
}
