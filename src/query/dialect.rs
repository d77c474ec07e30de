//! The SQL dialect: DuckDB's, without trailing commas in SELECT lists.
//!
//! DuckDB's dialect reads `user.username`, `sourceIPs[1]` and
//! `annotations['...']` the way audit queries are written. But it also
//! accepts `select a, from t`, and to tell a trailing comma from the next
//! item it treats a keyword after a comma as the end of the list: then
//! `select verb, cluster from audit` fails, `cluster` being a keyword
//! (CLUSTER BY). The audit schema has a `cluster` column, so that lookahead
//! goes: this dialect is DuckDB in every other respect (including for the
//! parser's `dialect_of!` checks, through `dialect()`).

use std::any::TypeId;

use datafusion::sql::sqlparser::dialect::{Dialect, DuckDbDialect};

#[derive(Debug, Default)]
pub struct AuditDialect(DuckDbDialect);

/// Forwards DuckDB's own choices (every method `DuckDbDialect` overrides in
/// sqlparser 0.62, except trailing commas).
macro_rules! duckdb {
    ($($method:ident),* $(,)?) => {
        $(fn $method(&self) -> bool { self.0.$method() })*
    };
}

impl Dialect for AuditDialect {
    fn dialect(&self) -> TypeId {
        self.0.dialect()
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.0.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.0.is_identifier_part(ch)
    }

    fn supports_trailing_commas(&self) -> bool {
        false
    }

    duckdb!(
        supports_filter_during_aggregation,
        supports_group_by_expr,
        supports_bitwise_shift_operators,
        supports_named_fn_args_with_eq_operator,
        supports_named_fn_args_with_assignment_operator,
        supports_dictionary_syntax,
        support_map_literal_syntax,
        supports_lambda_functions,
        allow_extract_single_quotes,
        supports_explain_with_utility_options,
        supports_load_extension,
        supports_array_typedef_with_brackets,
        supports_from_first_select,
        supports_order_by_all,
        supports_select_wildcard_exclude,
        supports_notnull_operator,
        supports_install,
        supports_detach,
        supports_select_wildcard_replace,
        supports_comma_separated_trim,
    );
}
