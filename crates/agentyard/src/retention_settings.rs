//! The retention settings of `serve`: how long each kind of history is kept. Flags
//! (`--keep-events-ms`, …) win over the TOML file's `[retention]` table, which wins over the
//! defaults (a week each, a pass every minute).

use std::time::Duration;

use agentyard_server::config::RetentionConfig;
use anyhow::bail;
use clap::Args;
use serde::Deserialize;

/// Flags of `serve` about retention. Each age is in milliseconds; 0 keeps that kind forever.
#[derive(Debug, Clone, Default, Args)]
pub struct RetentionArgs {
    /// Keep succeeded, dead-lettered and cancelled tasks this long after they finished
    /// [default: 604800000, a week]
    #[arg(long, env = "AGENTYARD_KEEP_FINISHED_TASKS_MS")]
    pub keep_finished_tasks_ms: Option<u64>,
    /// Keep events this long [default: 604800000, a week]
    #[arg(long, env = "AGENTYARD_KEEP_EVENTS_MS")]
    pub keep_events_ms: Option<u64>,
    /// Keep messages this long once everyone they are for acknowledged them (or they expired)
    /// [default: 604800000, a week]
    #[arg(long, env = "AGENTYARD_KEEP_MESSAGES_MS")]
    pub keep_messages_ms: Option<u64>,
    /// Keep idempotency keys of tasks and messages this long; then the same key makes a new one
    /// [default: 604800000, a week]
    #[arg(long, env = "AGENTYARD_KEEP_IDEMPOTENCY_KEYS_MS")]
    pub keep_idempotency_keys_ms: Option<u64>,
    /// How often the retention loop deletes what is older than the ages [default: 60000]
    #[arg(long, env = "AGENTYARD_RETENTION_INTERVAL_MS")]
    pub retention_interval_ms: Option<u64>,
}

/// `[retention]` of the TOML file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionFile {
    finished_tasks_ms: Option<u64>,
    events_ms: Option<u64>,
    messages_ms: Option<u64>,
    idempotency_keys_ms: Option<u64>,
    interval_ms: Option<u64>,
}

pub fn resolve(args: &RetentionArgs, file: Option<&RetentionFile>) -> anyhow::Result<RetentionConfig> {
    let file = file.cloned().unwrap_or_default();
    let defaults = RetentionConfig::default();
    let interval_ms = args
        .retention_interval_ms
        .or(file.interval_ms)
        .unwrap_or(defaults.interval.as_millis() as u64);
    if interval_ms < 100 {
        bail!("--retention-interval-ms must be at least 100 (got {interval_ms})");
    }
    Ok(RetentionConfig {
        finished_tasks_ms: args
            .keep_finished_tasks_ms
            .or(file.finished_tasks_ms)
            .unwrap_or(defaults.finished_tasks_ms),
        events_ms: args.keep_events_ms.or(file.events_ms).unwrap_or(defaults.events_ms),
        messages_ms: args
            .keep_messages_ms
            .or(file.messages_ms)
            .unwrap_or(defaults.messages_ms),
        idempotency_keys_ms: args
            .keep_idempotency_keys_ms
            .or(file.idempotency_keys_ms)
            .unwrap_or(defaults.idempotency_keys_ms),
        interval: Duration::from_millis(interval_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_a_week() {
        let week = RetentionConfig::default();
        assert_eq!(resolve(&RetentionArgs::default(), None).expect("defaults"), week);
        let file: RetentionFile = toml::from_str("events_ms = 3600000\nfinished_tasks_ms = 0\n").expect("toml");
        let args = RetentionArgs {
            keep_events_ms: Some(60_000),
            ..RetentionArgs::default()
        };
        let got = resolve(&args, Some(&file)).expect("resolve");
        assert_eq!(got.events_ms, 60_000, "the flag wins");
        assert_eq!(got.finished_tasks_ms, 0, "the file wins over the default");
        assert_eq!(got.messages_ms, week.messages_ms);
        let too_often = RetentionArgs {
            retention_interval_ms: Some(5),
            ..RetentionArgs::default()
        };
        let err = resolve(&too_often, None).unwrap_err().to_string();
        assert!(err.contains("--retention-interval-ms"), "{err}");
        assert!(
            toml::from_str::<RetentionFile>("event_ms = 1").is_err(),
            "a misspelt key is refused"
        );
    }
}
