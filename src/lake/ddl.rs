//! `eksaudit lake ddl`: the CREATE TABLE other engines need to read a lake
//! as it is, from the one file schema.

use datafusion::arrow::datatypes::{DataType, Field};

use super::{DT, file_schema};
use crate::schema::col;

/// Engines we print DDL for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Engine {
    /// Amazon Athena (Glue catalog), with partition projection.
    Athena,
    /// Trino's Hive connector.
    Trino,
    /// Spark SQL.
    Spark,
    /// DuckDB (a view over read_parquet).
    Duckdb,
}

/// Type spelling of one engine family.
fn type_name(engine: Engine, t: &DataType) -> String {
    let hive = matches!(engine, Engine::Athena | Engine::Spark);
    match (t, engine) {
        (DataType::Utf8, Engine::Trino | Engine::Duckdb) => "varchar".into(),
        (DataType::Utf8, _) => "string".into(),
        (DataType::Int32, Engine::Athena | Engine::Spark) => "int".into(),
        (DataType::Int32, _) => "integer".into(),
        (DataType::Int64, _) => "bigint".into(),
        (DataType::Boolean, _) => "boolean".into(),
        (DataType::Timestamp(_, _), Engine::Duckdb) => "timestamptz".into(),
        (DataType::Timestamp(_, _), _) => "timestamp".into(),
        (DataType::List(f), Engine::Duckdb) => format!("{}[]", type_name(engine, f.data_type())),
        (DataType::List(f), Engine::Trino) => {
            format!("array({})", type_name(engine, f.data_type()))
        }
        (DataType::List(f), _) => format!("array<{}>", type_name(engine, f.data_type())),
        (DataType::Map(entries, _), _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                unreachable!("a map's entries are a struct")
            };
            let (k, v) = (
                type_name(engine, kv[0].data_type()),
                type_name(engine, kv[1].data_type()),
            );
            if hive {
                format!("map<{k},{v}>")
            } else {
                format!("map({k}, {v})")
            }
        }
        (DataType::Struct(fields), _) => {
            let inner: Vec<String> = fields
                .iter()
                .map(|f| match engine {
                    Engine::Athena | Engine::Spark => {
                        format!("{}:{}", f.name(), type_name(engine, f.data_type()))
                    }
                    _ => format!(
                        "{} {}",
                        quote(engine, f.name()),
                        type_name(engine, f.data_type())
                    ),
                })
                .collect();
            match engine {
                Engine::Athena | Engine::Spark => format!("struct<{}>", inner.join(",")),
                Engine::Trino => format!("row({})", inner.join(", ")),
                Engine::Duckdb => format!("struct({})", inner.join(", ")),
            }
        }
        (other, _) => unreachable!("the lake schema has no {other}"),
    }
}

fn quote(engine: Engine, name: &str) -> String {
    match engine {
        Engine::Athena | Engine::Spark => format!("`{name}`"),
        Engine::Trino | Engine::Duckdb => format!("\"{name}\""),
    }
}

fn columns(engine: Engine) -> Vec<String> {
    let schema = file_schema();
    schema
        .fields()
        .iter()
        .map(|f: &std::sync::Arc<Field>| {
            format!(
                "  {} {}",
                quote(engine, f.name()),
                type_name(engine, f.data_type())
            )
        })
        .collect()
}

/// The DDL for `engine`, the table `table` at `location` (a URL or path
/// to the lake's folder). `clusters`, if known, make Athena's projection
/// an enum (queries may leave `cluster` out); without, it is injected
/// (queries must say `cluster = '...'`).
pub fn ddl(engine: Engine, table: &str, location: &str, clusters: &[String]) -> String {
    let loc = location.trim_end_matches('/');
    let cols = columns(engine);
    match engine {
        Engine::Athena => {
            let projection = if clusters.is_empty() {
                "  'projection.cluster.type' = 'injected',\n".to_string()
            } else {
                format!(
                    "  'projection.cluster.type' = 'enum',\n  'projection.cluster.values' = '{}',\n",
                    clusters.join(",")
                )
            };
            format!(
                "CREATE EXTERNAL TABLE `{table}` (\n{}\n)\nPARTITIONED BY (`{c}` string, `{DT}` string)\n\
                 STORED AS PARQUET\nLOCATION '{loc}/'\nTBLPROPERTIES (\n  'projection.enabled' = 'true',\n\
                 {projection}  'projection.dt.type' = 'date',\n  'projection.dt.format' = 'yyyy-MM-dd',\n\
                 \x20 'projection.dt.range' = '2020-01-01,NOW',\n  'projection.dt.interval' = '1',\n\
                 \x20 'projection.dt.interval.unit' = 'DAYS',\n\
                 \x20 'storage.location.template' = '{loc}/{c}=${{{c}}}/{DT}=${{{DT}}}/'\n);\n",
                cols.join(",\n"),
                c = col::CLUSTER,
            )
        }
        Engine::Trino => format!(
            "CREATE TABLE {table} (\n{},\n  \"{c}\" varchar,\n  \"{DT}\" varchar\n)\n\
             WITH (\n  format = 'PARQUET',\n  external_location = '{loc}/',\n  partitioned_by = ARRAY['{c}', '{DT}']\n);\n\
             CALL system.sync_partition_metadata(CURRENT_SCHEMA, '{table}', 'FULL');\n",
            cols.join(",\n"),
            c = col::CLUSTER,
        ),
        Engine::Spark => format!(
            "CREATE TABLE {table} (\n{},\n  `{c}` string,\n  `{DT}` string\n)\nUSING parquet\n\
             PARTITIONED BY (`{c}`, `{DT}`)\nLOCATION '{loc}/';\nMSCK REPAIR TABLE {table};\n",
            cols.join(",\n"),
            c = col::CLUSTER,
        ),
        Engine::Duckdb => format!(
            "CREATE VIEW {table} AS SELECT * FROM read_parquet(\n  '{loc}/{c}=*/{DT}=*/*.parquet',\n\
             \x20 hive_partitioning = true,\n  hive_types = {{'{c}': VARCHAR, '{DT}': VARCHAR}},\n\
             \x20 union_by_name = true\n);\n",
            c = col::CLUSTER,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_types_per_engine() {
        let athena = ddl(Engine::Athena, "eks_audit", "s3://b/lake/", &[]);
        assert!(athena.contains(
            "`user` struct<username:string,uid:string,groups:array<string>,extra:map<string,array<string>>>"
        ));
        assert!(athena.contains("LOCATION 's3://b/lake/'"));
        assert!(
            athena.contains(
                "'storage.location.template' = 's3://b/lake/cluster=${cluster}/dt=${dt}/'"
            )
        );
        let trino = ddl(Engine::Trino, "eks_audit", "s3://b/lake", &[]);
        assert!(trino.contains("\"sourceIPs\" array(varchar)"));
        assert!(trino.contains("\"annotations\" map(varchar, varchar)"));
        let duck = ddl(Engine::Duckdb, "eks_audit", "/data/lake", &[]);
        assert!(duck.contains("'/data/lake/cluster=*/dt=*/*.parquet'"));
        let enumerated = ddl(Engine::Athena, "t", "s3://b", &["a".into(), "b".into()]);
        assert!(enumerated.contains("'projection.cluster.values' = 'a,b'"));
    }
}
