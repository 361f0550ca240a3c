"""A worker process for the shutdown tests: ``python worker_process.py URL NAMESPACE QUEUE
SLEEP_S GRACE_S``. Its handler prints ``running <task id>`` and sleeps; it ignores
``job.stopping`` on purpose, so a short grace period has to release the task."""

from __future__ import annotations

import logging
import sys
import time

from agentyard_client import Client, Job, Worker


def main() -> None:
    url, namespace, queue, sleep_s, grace_s = sys.argv[1:6]
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    worker = Worker(
        Client(url, namespace=namespace),
        "proc-worker",
        concurrency=1,
        lease_ms=2_000,
        poll_wait_ms=5_000,
        shutdown_grace=float(grace_s),
    )

    @worker.handler(queue)
    def work(job: Job) -> dict[str, str]:
        print(f"running {job.id}", flush=True)
        time.sleep(float(sleep_s))
        return {"done": job.id}

    worker.run()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
