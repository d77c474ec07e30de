//! Insights functions as SQL: string, general, numeric, datetime and IP
//! functions, and the aggregates `stats` takes.

use super::InsightsError;
use super::parser::Expr;
use super::sql::{TIMESTAMP, Translator};

pub(super) fn call(
    t: &Translator<'_>,
    name: &str,
    args: &[Expr],
    at: usize,
) -> Result<String, InsightsError> {
    let a: Vec<String> = args.iter().map(|x| t.expr(x)).collect::<Result<_, _>>()?;
    let want = |n: usize| -> Result<(), InsightsError> {
        if a.len() == n {
            Ok(())
        } else {
            Err(t.err(at, format!("{name} takes {n} argument(s), got {}", a.len())))
        }
    };
    let text = |i: usize| format!("cast({} as varchar)", a[i]);
    Ok(match name.to_ascii_lowercase().as_str() {
        "strcontains" => {
            want(2)?;
            format!("(strpos({}, {}) > 0)", text(0), text(1))
        }
        "strlen" => {
            want(1)?;
            format!("character_length({})", text(0))
        }
        "toupper" => {
            want(1)?;
            format!("upper({})", text(0))
        }
        "tolower" => {
            want(1)?;
            format!("lower({})", text(0))
        }
        // Insights counts from 0.
        "substr" if a.len() == 2 => format!("substr({}, {} + 1)", text(0), a[1]),
        "substr" => {
            want(3)?;
            format!("substr({}, {} + 1, {})", text(0), a[1], a[2])
        }
        "replace" => {
            want(3)?;
            format!("replace({}, {}, {})", text(0), a[1], a[2])
        }
        "trim" | "ltrim" | "rtrim" => {
            want(1)?;
            format!("{}({})", name.to_ascii_lowercase(), text(0))
        }
        "concat" => format!(
            "concat({})",
            (0..a.len()).map(text).collect::<Vec<_>>().join(", ")
        ),
        "isempty" => {
            want(1)?;
            format!("({0} is null or {1} = '')", a[0], text(0))
        }
        "isblank" => {
            want(1)?;
            format!("({0} is null or trim({1}) = '')", a[0], text(0))
        }
        "ispresent" => {
            want(1)?;
            format!("({} is not null)", a[0])
        }
        "coalesce" | "greatest" | "least" | "abs" | "ceil" | "floor" | "sqrt" => {
            format!("{}({})", name.to_ascii_lowercase(), a.join(", "))
        }
        "log" => {
            want(1)?;
            format!("ln({})", a[0])
        }
        "bin" => {
            want(1)?;
            format!("date_bin({}, {TIMESTAMP})", a[0])
        }
        "datefloor" => {
            want(2)?;
            format!("date_bin({}, {})", a[1], a[0])
        }
        "dateceil" => {
            want(2)?;
            format!(
                "(date_bin({1}, {0} - interval '1 microsecond') + {1})",
                a[0], a[1]
            )
        }
        "frommillis" => {
            want(1)?;
            format!("to_timestamp_millis(cast({} as bigint))", a[0])
        }
        "tomillis" => {
            want(1)?;
            format!("cast(date_part('epoch', {}) * 1000 as bigint)", a[0])
        }
        "now" => {
            want(0)?;
            "now()".into()
        }
        "isvalidip" => {
            want(1)?;
            format!("is_valid_ip({})", text(0))
        }
        "isvalidipv4" => {
            want(1)?;
            format!("(is_valid_ip({0}) and strpos({0}, ':') = 0)", text(0))
        }
        "isvalidipv6" => {
            want(1)?;
            format!("(is_valid_ip({0}) and strpos({0}, ':') > 0)", text(0))
        }
        "isipinsubnet" => {
            want(2)?;
            format!("cidr_match({}, {})", text(0), text(1))
        }
        "isipv4insubnet" => {
            want(2)?;
            format!(
                "(cidr_match({0}, {1}) and strpos({0}, ':') = 0)",
                text(0),
                text(1)
            )
        }
        "isipv6insubnet" => {
            want(2)?;
            format!(
                "(cidr_match({0}, {1}) and strpos({0}, ':') > 0)",
                text(0),
                text(1)
            )
        }
        // Aggregates.
        "count" if a.is_empty() => "count(*)".into(),
        "count" => {
            want(1)?;
            format!("count({})", a[0])
        }
        "count_distinct" => {
            want(1)?;
            format!("count(distinct {})", a[0])
        }
        "sum" | "avg" | "min" | "max" => {
            want(1)?;
            format!("{}({})", name.to_ascii_lowercase(), a[0])
        }
        "stddev" => {
            want(1)?;
            format!("stddev({})", a[0])
        }
        "pct" => {
            want(2)?;
            format!("approx_percentile_cont({}, {} / 100.0)", a[0], a[1])
        }
        "earliest" => {
            want(1)?;
            format!("first_value({} order by {TIMESTAMP})", a[0])
        }
        "latest" => {
            want(1)?;
            format!("last_value({} order by {TIMESTAMP})", a[0])
        }
        "sortsfirst" => {
            want(1)?;
            format!("min({})", a[0])
        }
        "sortslast" => {
            want(1)?;
            format!("max({})", a[0])
        }
        _ => return Err(t.err(at, format!("unknown function {name}()"))),
    })
}
