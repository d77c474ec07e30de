//! Log groups from a config file, each with its own region, profile and
//! endpoint.

use serde::Deserialize;

use super::{Connection, GroupSpec, log_group_for};
use crate::error::{Error, Result};

/// The `[[cloudwatch]]` tables of a TOML config file: log groups (or
/// clusters) each with its own region, profile and endpoint. Other tables
/// are for other commands and ignored here.
#[derive(Debug, Default, Deserialize)]
struct SourcesConfig {
    #[serde(default)]
    cloudwatch: Vec<GroupConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupConfig {
    log_group: Option<String>,
    cluster: Option<String>,
    region: Option<String>,
    profile: Option<String>,
    endpoint_url: Option<String>,
}

/// Reads the log groups of a config file; unset settings come from
/// `defaults` (the command line).
pub fn load_config(path: &std::path::Path, defaults: &Connection) -> Result<Vec<GroupSpec>> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(&label, e))?;
    let bad = |reason: String| Error::Config {
        path: label.clone(),
        reason,
    };
    let config: SourcesConfig = toml::from_str(&text).map_err(|e| bad(e.to_string()))?;
    config
        .cloudwatch
        .into_iter()
        .enumerate()
        .map(|(i, g)| {
            let log_group = match (g.log_group, g.cluster) {
                (Some(group), None) => group,
                (None, Some(cluster)) => log_group_for(&cluster),
                _ => {
                    return Err(bad(format!(
                        "[[cloudwatch]] entry {}: give log_group or cluster (one of them)",
                        i + 1
                    )));
                }
            };
            Ok(GroupSpec {
                log_group,
                connection: Connection {
                    region: g.region.or_else(|| defaults.region.clone()),
                    profile: g.profile.or_else(|| defaults.profile.clone()),
                    endpoint_url: g.endpoint_url.or_else(|| defaults.endpoint_url.clone()),
                    max_attempts: defaults.max_attempts,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_groups_take_defaults_and_report_mistakes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eksaudit.toml");
        std::fs::write(
            &path,
            "[[cloudwatch]]\ncluster = \"prod\"\nregion = \"eu-west-1\"\n\n\
             [[cloudwatch]]\nlog_group = \"/custom\"\n\n[alerts]\nx = 1\n",
        )
        .unwrap();
        let defaults = Connection {
            region: Some("us-east-1".into()),
            max_attempts: 3,
            ..Connection::default()
        };
        let groups = load_config(&path, &defaults).unwrap();
        let keys: Vec<String> = groups.iter().map(GroupSpec::key).collect();
        assert_eq!(
            keys,
            ["eu-west-1:/aws/eks/prod/cluster", "us-east-1:/custom"]
        );
        assert_eq!(groups[1].connection.max_attempts, 3);

        std::fs::write(&path, "[[cloudwatch]]\nregoin = \"x\"\n").unwrap();
        let err = load_config(&path, &defaults).unwrap_err().to_string();
        assert!(
            err.contains("eksaudit.toml") && err.contains("line 2") && err.contains("regoin"),
            "{err}"
        );
        std::fs::write(&path, "[[cloudwatch]]\nregion = \"x\"\n").unwrap();
        let err = load_config(&path, &defaults).unwrap_err().to_string();
        assert!(err.contains("entry 1: give log_group or cluster"), "{err}");
    }
}
