"""Hooks for scripts/schemathesis (loaded through SCHEMATHESIS_HOOKS): they shape the bodies
schemathesis generates where the server has a rule that the document states in words but JSON
Schema cannot, so the rest of each body is still checked against the server. Only cases meant
to be valid are shaped; the ones meant to be refused go as generated. Each rule is also
enforced and tested in the server; nothing here changes what it answers.

- JSON Schema counts 2.0 as the integer 2, so schemathesis also spells integers with a fraction
  (`"lease_ms": 28056.0`). The server reads integer fields as JSON integers, written without a
  fraction or an exponent (the document's description says so), and refuses 2.0 with a 422.
  Whole floats are sent as the integers they are.
- A batch of completions (`items` of POST /v1/tasks/complete, `complete` of a claim) names each
  task at most once: a uniqueness by key that `uniqueItems` only approximates. Repeats of an id
  are dropped.
- A backoff's `max_ms` is at least its `initial_ms` (1000 when left out): a comparison between
  fields. A smaller `max_ms` is raised to it.
- A task's `run_at` is at most a year after the server's clock: a bound that moves with time.
  A later one is moved to tomorrow.

And one for the run's length: long polls (`wait_ms` of a claim or an inbox read, up to 60000)
wait as long as they are asked to when there is nothing, so valid cases wait at most
MAX_WAIT_MS; a longer wait tests nothing more and would make the run minutes longer.
"""

import datetime

from typing import Any

import schemathesis

# Past 2**53 a float no longer spells one integer; leave such values as they are.
_EXACT = 2**53
_DEFAULT_INITIAL_MS = 1000
MAX_WAIT_MS = 1000
_YEAR_AHEAD = datetime.timedelta(days=360)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and -_EXACT <= value <= _EXACT:
        return int(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _once_each(items: Any) -> Any:
    if not isinstance(items, list):
        return items
    seen, kept = set(), []
    for item in items:
        key = item.get("id") if isinstance(item, dict) else None
        if isinstance(key, str):
            if key in seen:
                continue
            seen.add(key)
        kept.append(item)
    return kept


def _ordered_backoff(task: Any) -> None:
    backoff = task.get("backoff") if isinstance(task, dict) else None
    if not isinstance(backoff, dict):
        return
    initial, most = backoff.get("initial_ms"), backoff.get("max_ms")
    if initial is None:
        initial = _DEFAULT_INITIAL_MS
    if isinstance(initial, int) and isinstance(most, int) and most < initial:
        backoff["max_ms"] = initial


def _positive(case: Any) -> bool:
    """Whether schemathesis means the case to be valid (negative cases stay as generated)."""
    meta = getattr(case, "meta", None)
    generation = getattr(meta, "generation", None)
    mode = getattr(generation, "mode", None)
    return mode is None or str(getattr(mode, "value", mode)) == "positive"


def _near_run_at(task: Any) -> None:
    run_at = task.get("run_at") if isinstance(task, dict) else None
    if not isinstance(run_at, str):
        return
    try:
        when = datetime.datetime.fromisoformat(run_at.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return
    if when.tzinfo is None:
        return
    now = datetime.datetime.now(datetime.timezone.utc)
    if when > now + _YEAR_AHEAD:
        task["run_at"] = (now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _short_wait(container: Any) -> None:
    if not isinstance(container, dict):
        return
    wait = container.get("wait_ms")
    if isinstance(wait, int) and not isinstance(wait, bool) and wait > MAX_WAIT_MS:
        container["wait_ms"] = MAX_WAIT_MS
    elif isinstance(wait, str) and wait.isdigit() and int(wait) > MAX_WAIT_MS:
        container["wait_ms"] = str(MAX_WAIT_MS)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    if not _positive(case):
        return case
    _short_wait(case.query)
    body = case.body
    if not isinstance(body, (dict, list)):
        return case
    body = _plain(body)
    if isinstance(body, dict):
        for key in ("items", "complete"):
            if key in body:
                body[key] = _once_each(body[key])
        _short_wait(body)
        tasks = body.get("tasks")
        for task in [body, *(tasks if isinstance(tasks, list) else [])]:
            _ordered_backoff(task)
            _near_run_at(task)
    case.body = body
    return case
