//! Merge rules for concurrent updates: `context` is deep-merged with per-key conflict detection.
//!
//! A context patch is a JSON merge patch (RFC 7396): objects merge recursively, `null` deletes a
//! key, anything else replaces. For every path a patch writes we remember the task version that
//! wrote it. A patch based on an older version conflicts only on the paths someone else changed
//! since that version (to a different value); disjoint keys merge.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// Path (JSON pointer, e.g. `/plan/step`) → version that last wrote it.
pub type ContextVersions = BTreeMap<String, u64>;

/// Applies a merge patch object to `target` in place.
pub fn merge_patch_object(target: &mut Map<String, Value>, patch: &Value) {
    let Value::Object(patch) = patch else { return };
    for (key, value) in patch {
        match value {
            Value::Null => {
                target.remove(key);
            }
            Value::Object(_) => {
                let entry = target.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
                if !entry.is_object() {
                    *entry = Value::Object(Map::new());
                }
                if let Value::Object(inner) = entry {
                    merge_patch_object(inner, value);
                }
            }
            other => {
                target.insert(key.clone(), other.clone());
            }
        }
    }
}

/// The leaf paths a merge patch writes (a non-empty object recurses; everything else is a leaf).
pub fn leaf_paths(patch: &Value) -> Vec<(String, &Value)> {
    let mut out = Vec::new();
    collect(patch, String::new(), &mut out);
    out
}

fn collect<'a>(value: &'a Value, prefix: String, out: &mut Vec<(String, &'a Value)>) {
    match value {
        Value::Object(map) if !map.is_empty() || prefix.is_empty() => {
            for (k, v) in map {
                collect(v, format!("{prefix}/{}", escape(k)), out);
            }
        }
        _ => out.push((prefix, value)),
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Remembers that `version` wrote every leaf of `patch`.
pub fn record_paths(versions: &mut ContextVersions, patch: &Value, version: u64) {
    for (path, _) in leaf_paths(patch) {
        // A write to `/a` supersedes what we knew of `/a/...`.
        let children = format!("{path}/");
        versions.retain(|p, _| !p.starts_with(&children));
        versions.insert(path, version);
    }
}

fn overlaps(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// Paths of `patch` that were changed after version `base` and now hold a different value.
pub fn conflicting_paths(
    versions: &ContextVersions,
    current: &Map<String, Value>,
    patch: &Map<String, Value>,
    base: u64,
) -> Vec<String> {
    let current = Value::Object(current.clone());
    let patch_value = Value::Object(patch.clone());
    let mut conflicts = Vec::new();
    for (path, wanted) in leaf_paths(&patch_value) {
        let touched_since = versions.iter().any(|(p, v)| *v > base && overlaps(p, &path));
        if !touched_since {
            continue;
        }
        let now = current.pointer(&path).unwrap_or(&Value::Null);
        if now != wanted {
            conflicts.push(path);
        }
    }
    conflicts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn merge_patch_follows_rfc_7396() {
        let cases = [
            (json!({"a": 1}), json!({"b": 2}), json!({"a": 1, "b": 2})),
            (json!({"a": 1}), json!({"a": null}), json!({})),
            (
                json!({"a": {"x": 1}}),
                json!({"a": {"y": 2}}),
                json!({"a": {"x": 1, "y": 2}}),
            ),
            (json!({"a": 5}), json!({"a": {"y": 2}}), json!({"a": {"y": 2}})),
            (json!({"a": [1, 2]}), json!({"a": [3]}), json!({"a": [3]})),
        ];
        for (target, patch, expected) in cases {
            let mut t = obj(target);
            merge_patch_object(&mut t, &patch);
            assert_eq!(Value::Object(t), expected, "patch {patch}");
        }
    }

    #[test]
    fn disjoint_keys_merge_and_same_keys_conflict() {
        let mut versions = ContextVersions::new();
        let mut ctx = Map::new();
        // Version 2 writes /plan/step; the client read version 1.
        let write = json!({"plan": {"step": 2}});
        merge_patch_object(&mut ctx, &write);
        record_paths(&mut versions, &write, 2);

        let disjoint = obj(json!({"notes": "x", "plan": {"owner": "a"}}));
        assert!(conflicting_paths(&versions, &ctx, &disjoint, 1).is_empty());

        let same_key = obj(json!({"plan": {"step": 3}}));
        assert_eq!(conflicting_paths(&versions, &ctx, &same_key, 1), vec!["/plan/step"]);

        let same_value = obj(json!({"plan": {"step": 2}}));
        assert!(conflicting_paths(&versions, &ctx, &same_value, 1).is_empty());

        let parent = obj(json!({"plan": null}));
        assert_eq!(conflicting_paths(&versions, &ctx, &parent, 1), vec!["/plan"]);

        // Based on version 2 itself: nothing happened since, no conflict.
        assert!(conflicting_paths(&versions, &ctx, &same_key, 2).is_empty());
    }
}
