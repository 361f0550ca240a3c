"""Three agents with different capabilities, in one process, for the tasks producer.py creates.

* ``scout``    (web)      fetches pages (queue ``pages``), hands each text on as a ``summarize``
                          task and tells the ``fetched`` topic about it;
* ``writer``   (llm)      summarizes (queue ``texts``, kind ``summarize``), then asks for a
                          translation: a ``translate`` task that requires ``llm`` and ``fr``;
* ``polyglot`` (llm, fr)  can take both kinds from ``texts``, but is the only one that can take
                          the translations; it reports each one to ``producer`` by message.

All three follow their inboxes and log what they receive (``fetched`` news, the producer's
broadcast). Ctrl-C (or SIGTERM) shuts them down gracefully.

    python worker.py            # AGENTYARD_URL, AGENTYARD_NAMESPACE pick the server
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from agentyard_client import AgentyardError, Client, FatalError, Job, NotFound, Worker, run_workers

LOG = logging.getLogger("fleet")


def fetch(job: Job) -> dict[str, object]:
    """scout: "downloads" the page and queues its text for a summary."""
    url = job.input["url"]
    time.sleep(0.2)  # the network
    text = f"{url} explains how agents share work. It has many more sentences. The end."
    job.client.create_task(
        "texts",
        {"url": url, "text": text},
        kind="summarize",
        required_capabilities=["llm"],
        correlation_id=job.task.correlation_id,
        idempotency_key=f"summarize:{job.id}",  # a retried fetch does not queue it twice
    )
    job.client.send_message({"url": url, "chars": len(text)}, topic="fetched", sender=job.worker)
    return {"chars": len(text), "by": job.worker}


def write(job: Job) -> dict[str, object]:
    """writer and polyglot: summaries; only polyglot gets translations (it has ``fr``)."""
    if job.task.kind == "summarize":
        time.sleep(0.3)  # the LLM
        summary = job.input["text"].split(". ")[0] + "."
        job.client.create_task(
            "texts",
            {"url": job.input["url"], "summary": summary},
            kind="translate",
            required_capabilities=["llm", "fr"],
            correlation_id=job.task.correlation_id,
            idempotency_key=f"translate:{job.id}",
        )
        return {"summary": summary, "by": job.worker}
    if job.task.kind == "translate":
        time.sleep(0.2)
        french = "FR: " + job.input["summary"]
        try:
            job.client.send_message(
                {"url": job.input["url"], "french": french, "by": job.worker},
                to="producer",
                sender=job.worker,
                correlation_id=job.task.correlation_id,
            )
        except NotFound:
            LOG.warning("no producer to report to; the result is in the task")
        return {"french": french, "by": job.worker}
    raise FatalError(f"unknown kind {job.task.kind!r}", kind="unknown_kind")


def follow_inbox(client: Client, agent: str) -> None:
    """Logs the agent's messages as they come and acknowledges them."""
    while True:
        try:
            for message in client.iter_inbox(agent, wait_ms=10_000, ack=True):
                LOG.info("%s got a message from %s: %s", agent, message.sender or "someone", message.body)
        except AgentyardError as e:
            LOG.warning("%s: inbox read failed (%s); retrying", agent, e)
            time.sleep(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grace", type=float, default=10.0, help="seconds to finish at shutdown")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    client = Client()
    scout = Worker(client, "scout", capabilities=["web"], concurrency=2, shutdown_grace=args.grace)
    writer = Worker(client, "writer", capabilities=["llm"], shutdown_grace=args.grace)
    polyglot = Worker(client, "polyglot", capabilities=["llm", "fr"], shutdown_grace=args.grace)
    scout.add_handler("pages", fetch)
    writer.add_handler("texts", write)
    polyglot.add_handler("texts", write)

    for worker in (scout, writer, polyglot):
        client.register_agent(worker.name, capabilities=worker.capabilities, slots=worker.concurrency)
    for name in ("writer", "polyglot"):
        client.subscribe(name, "fetched")
    for name in ("scout", "writer", "polyglot"):
        threading.Thread(target=follow_inbox, args=(client, name), daemon=True).start()

    LOG.info("fleet up at %s (namespace %s); Ctrl-C to stop", client.base_url, client.namespace)
    run_workers(scout, writer, polyglot)
    LOG.info("fleet stopped")


if __name__ == "__main__":
    main()
