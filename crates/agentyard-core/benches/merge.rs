//! Micro-benchmarks of the merge rules: applying a JSON merge patch to a task's context, finding
//! conflicting paths, and a whole merging update through `Task::apply`. Run with
//! `cargo bench -p agentyard-core`.

use agentyard_core::merge::{ContextVersions, conflicting_paths, merge_patch_object, record_paths};
use agentyard_core::{NewTask, QueueName, TaskCommand, TaskId, TaskPatch, Timestamp};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Map, Value, json};
use std::hint::black_box;

fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// A context as an agent fleet builds it: a plan with steps, notes, and a few flat keys.
fn context() -> Map<String, Value> {
    let steps: Vec<Value> = (0..10)
        .map(|i| json!({"name": format!("step {i}"), "done": i < 4}))
        .collect();
    object(json!({
        "plan": {"owner": "planner-1", "steps": steps, "step": 4},
        "notes": {"a": "first", "b": "second", "c": {"deep": {"deeper": 1}}},
        "repo": "acme/web", "branch": "feature/x", "attempts": 2,
    }))
}

fn merge_benches(c: &mut Criterion) {
    let patch = json!({"plan": {"step": 5, "owner": "planner-2"}, "notes": {"d": "third", "a": null}});
    c.bench_function("merge_patch_object", |b| {
        b.iter_batched(
            context,
            |mut ctx| {
                merge_patch_object(&mut ctx, black_box(&patch));
                ctx
            },
            criterion::BatchSize::SmallInput,
        )
    });

    let mut versions = ContextVersions::new();
    record_paths(
        &mut versions,
        &json!({"plan": {"step": 4}, "notes": {"b": "second"}}),
        3,
    );
    record_paths(
        &mut versions,
        &json!({"repo": "acme/web", "notes": {"c": {"deep": 1}}}),
        5,
    );
    let current = context();
    let disjoint = object(json!({"branch": "feature/y", "notes": {"e": 1}}));
    let clashing = object(json!({"plan": {"step": 6}, "notes": {"b": "other"}}));
    c.bench_function("conflicting_paths disjoint", |b| {
        b.iter(|| conflicting_paths(&versions, &current, black_box(&disjoint), 2))
    });
    c.bench_function("conflicting_paths clashing", |b| {
        b.iter(|| conflicting_paths(&versions, &current, black_box(&clashing), 2))
    });

    let queue = QueueName::parse("q").expect("valid");
    let mut base = NewTask::on(queue, json!({})).into_task(
        TaskId::generate(),
        Default::default(),
        Timestamp::from_millis(1_700_000_000_000),
    );
    base.context = context();
    let first = TaskCommand::Update {
        patch: TaskPatch {
            context: Some(object(json!({"plan": {"step": 5}}))),
            ..TaskPatch::default()
        },
        expected_version: base.version,
        merge: false,
    };
    base.apply(first, Timestamp::from_millis(1_700_000_000_001))
        .expect("first update");
    c.bench_function("Task::apply merging update", |b| {
        b.iter_batched(
            || base.clone(),
            |mut task| {
                let update = TaskCommand::Update {
                    patch: TaskPatch {
                        context: Some(object(json!({"notes": {"e": "new"}}))),
                        ..TaskPatch::default()
                    },
                    expected_version: 1,
                    merge: true,
                };
                task.apply(update, Timestamp::from_millis(1_700_000_000_002))
                    .expect("merges");
                task
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, merge_benches);
criterion_main!(benches);
