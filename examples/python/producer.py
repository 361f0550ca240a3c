"""Creates page-fetching tasks for the fleet in worker.py and waits for the fleet's reports.

    python producer.py --pages 5      # AGENTYARD_URL, AGENTYARD_NAMESPACE pick the server

It registers as agent ``producer``, queues one ``pages`` task per article (they need the
``web`` capability, so only ``scout`` takes them), then long-polls its inbox: each translation
ends with a report from ``polyglot``. When all are in, it broadcasts
``batch-done`` to the whole fleet and prints the queues.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid

from agentyard_client import Client


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=5, help="how many articles to process")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for reports")
    args = parser.parse_args()

    yard = Client()
    run = uuid.uuid4().hex[:6]
    yard.register_agent("producer")
    start = time.monotonic()
    for i in range(args.pages):
        yard.create_task(
            "pages",
            {"url": f"https://example.com/articles/{run}-{i}"},
            title=f"Fetch article {i}",
            required_capabilities=["web"],
            correlation_id=f"{run}-{i}",
            backoff={"initial_ms": 500},
        )
    print(f"queued {args.pages} pages (run {run}); waiting for reports...", flush=True)

    expected = {f"{run}-{i}" for i in range(args.pages)}
    deadline = start + args.timeout
    cursor = None
    while expected and time.monotonic() < deadline:
        # One long poll: answers as soon as a message is there, or after the wait.
        wait_ms = int(min(5.0, max(0.1, deadline - time.monotonic())) * 1000)
        page = yard.read_inbox("producer", after=cursor, wait_ms=wait_ms)
        for message in page.messages:
            if message.correlation_id not in expected:
                continue  # a report of an earlier run
            expected.discard(message.correlation_id)
            body = message.body
            print(f"report {message.correlation_id} from {body['by']}: {body['french']}", flush=True)
        if page.messages:
            yard.ack_inbox("producer", page.cursor)
        cursor = page.cursor
    if expected:
        print(f"timed out waiting for {sorted(expected)}", file=sys.stderr)
        return 1

    yard.send_message({"event": "batch-done", "run": run, "pages": args.pages}, broadcast=True, sender="producer")
    print(f"all {args.pages} reports in {time.monotonic() - start:.1f}s; queues now:")
    for q in yard.list_queues():
        c = q.counts
        print(f"  {q.queue:<8} queued {c.queued}  running {c.running}  succeeded {c.succeeded}  failed {c.failed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
