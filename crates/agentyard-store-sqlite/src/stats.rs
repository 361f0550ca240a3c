//! What the SQLite store reports of its own upkeep (`Store::storage_stats`): the directory of
//! its file, for disk free space, and the writer's group-commit tally. Read from what the store
//! already exposes (`SqliteStore::path`, `SqliteStore::commit_stats`); no query, no IO.

use agentyard_store::StorageStats;

use crate::SqliteStore;

pub(crate) fn storage_stats(store: &SqliteStore) -> StorageStats {
    let commits = store.commit_stats();
    StorageStats {
        directory: Some(StorageStats::directory_of(store.path())),
        commit_groups: Some(commits.groups),
        commit_commands: Some(commits.commands),
        compactions: None,
    }
}
