"""Compatibility workload: the Python service's CloudflareStorage against the emulator.

The Python "MCP Memory Service" (package ``mcp-memory-service``, pinned by
``cargo xtask fetch-python``) is run unchanged. Its CloudflareStorage hard-codes Cloudflare's
API base URL, so the only change is on the instance: every endpoint attribute that starts with
that base is pointed at ``CLOUDFLARE_API_BASE_URL`` instead. Nothing in the package is patched.

Workload: create the Vectorize index (as ``wrangler vectorize create`` would; the client
only checks that it exists), initialize, store four memories (one with two tags, one over
the R2 threshold), get each by hash, semantic search (polled until the vectors are visible:
Vectorize applies mutations after a delay, and the emulator does too), search by tag (OR and
AND), update metadata and tags, delete one, delete by tag, stats, delete the last.

Content length: ``CloudflareStorage.store`` sends the whole content to Workers AI, whose BGE
models take at most 512 input tokens; the Python service never hands it more than
``storage.max_content_length`` characters (800 by default, "BGE model 512 token limit"):
its MemoryService splits longer content into chunks first (``MCP_ENABLE_AUTO_SPLIT``, on by
default). The workload calls the storage directly, so it keeps to that limit itself, and
reaches R2 with a lower ``large_content_threshold`` (a constructor argument, 1 MB by
default) instead of a 1 MB memory, which no front end of the service would pass unsplit.

Every HTTP answer the client receives is recorded through an httpx response hook; the
script fails (exit 1) on any non-2xx answer, any error the client logged (it catches most
failures itself and returns False, None or []), any failed assertion or any exception. The
last line of its output is ``COMPAT-SUMMARY <json>``.

Environment: ``CLOUDFLARE_API_BASE_URL`` (``http://HOST:PORT/client/v4``),
``CLOUDFLARE_API_TOKEN``, ``CLOUDFLARE_ACCOUNT_ID``, ``CLOUDFLARE_VECTORIZE_INDEX``,
``CLOUDFLARE_D1_DATABASE_ID``, ``CLOUDFLARE_R2_BUCKET``; optional
``CLOUDFLARE_EMBEDDING_MODEL`` (default ``@cf/baai/bge-small-en-v1.5``, 384 dimensions),
``COMPAT_CREATE_INDEX`` (``0`` = the index exists already), ``COMPAT_VISIBILITY_TIMEOUT``
(seconds to wait for a vector to become searchable, default 30).
"""

import asyncio
import importlib.metadata
import json
import logging
import os
import sys
import time
from collections import Counter

import httpx
from mcp_memory_service.models.memory import Memory
from mcp_memory_service.storage.cloudflare import CloudflareStorage
from mcp_memory_service.utils.hashing import generate_content_hash

# Bytes above which CloudflareStorage puts content in R2 (its default is 1 MB; see the docstring).
R2_THRESHOLD = 512
DIMENSIONS = {"@cf/baai/bge-small-en-v1.5": 384, "@cf/baai/bge-base-en-v1.5": 768}


def env(name, default=None):
    value = os.environ.get(name, default)
    if value is None or value == "":
        sys.exit(f"cloudflare_compat: {name} is not set")
    return value


class ErrorLog(logging.Handler):
    """Collects every ERROR the Python service logs: it reports most failures only there."""

    def __init__(self):
        super().__init__(level=logging.ERROR)
        self.records = []

    def emit(self, record):
        self.records.append(f"{record.name}: {record.getMessage()}")


class Answers:
    """Every HTTP answer the client received (an httpx response hook)."""

    def __init__(self, api_base):
        self.api_base = api_base
        self.answers = []

    async def hook(self, response):
        url = str(response.request.url)
        path = url[len(self.api_base):] if url.startswith(self.api_base) else url
        self.answers.append((response.request.method, path.split("?")[0], response.status_code))

    def non_2xx(self):
        return [a for a in self.answers if not 200 <= a[2] < 300]

    def by_service(self):
        services = Counter()
        for _, path, _ in self.answers:
            parts = path.split("/")
            # /accounts/{id}/<service>/...
            services[parts[3] if len(parts) > 3 else path] += 1
        return dict(sorted(services.items()))


def redirect(storage, api_base):
    """Points every endpoint attribute of the instance from Cloudflare's base at the emulator."""
    default_base = storage.base_url.split("/accounts/")[0]
    moved = []
    for name, value in list(vars(storage).items()):
        if isinstance(value, str) and value.startswith(default_base):
            setattr(storage, name, api_base + value[len(default_base):])
            moved.append(name)
    leftover = [
        n for n, v in vars(storage).items()
        if n.endswith("_url") and isinstance(v, str) and not v.startswith(api_base)
    ]
    assert not leftover, f"endpoints still pointing elsewhere: {leftover}"
    assert "base_url" in moved and "d1_url" in moved, f"redirected only {moved}"
    return moved


def check(condition, message):
    if not condition:
        raise AssertionError(message)


def memory(content, tags, memory_type=None, metadata=None):
    return Memory(
        content=content,
        content_hash=generate_content_hash(content),
        tags=tags,
        memory_type=memory_type,
        metadata=metadata or {},
    )


async def wait_for_search(storage, query, want_hash, timeout, tags=None):
    """Polls retrieve() until `want_hash` is the top result; returns (results, seconds)."""
    started = time.monotonic()
    while True:
        results = await storage.retrieve(query, n_results=3, tags=tags)
        if results and results[0].memory.content_hash == want_hash:
            return results, time.monotonic() - started
        if time.monotonic() - started > timeout:
            got = [(r.memory.content_hash[:12], round(r.relevance_score, 3)) for r in results]
            raise AssertionError(
                f"search {query!r} did not put {want_hash[:12]} first within {timeout}s: {got}"
            )
        await asyncio.sleep(0.2)


async def workload():
    api_base = env("CLOUDFLARE_API_BASE_URL").rstrip("/")
    token = env("CLOUDFLARE_API_TOKEN")
    account = env("CLOUDFLARE_ACCOUNT_ID")
    index = env("CLOUDFLARE_VECTORIZE_INDEX")
    database = env("CLOUDFLARE_D1_DATABASE_ID")
    bucket = env("CLOUDFLARE_R2_BUCKET")
    model = env("CLOUDFLARE_EMBEDDING_MODEL", "@cf/baai/bge-small-en-v1.5")
    timeout = float(env("COMPAT_VISIBILITY_TIMEOUT", "30"))

    errors = ErrorLog()
    logging.getLogger("mcp_memory_service").addHandler(errors)
    answers = Answers(api_base)
    summary = {}

    if env("COMPAT_CREATE_INDEX", "1") != "0":
        # Set-up, as an operator does once with wrangler: not part of CloudflareStorage.
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            event_hooks={"response": [answers.hook]},
        ) as setup:
            created = await setup.post(
                f"{api_base}/accounts/{account}/vectorize/v2/indexes",
                json={
                    "name": index,
                    "config": {"dimensions": DIMENSIONS.get(model, 384), "metric": "cosine"},
                },
            )
            check(created.is_success, f"creating the index: {created.status_code} {created.text}")

    storage = CloudflareStorage(
        api_token=token,
        account_id=account,
        vectorize_index=index,
        d1_database_id=database,
        r2_bucket=bucket,
        embedding_model=model,
        large_content_threshold=R2_THRESHOLD,
    )
    summary["redirected"] = redirect(storage, api_base)
    client = await storage._get_client()
    client.event_hooks = {"request": [], "response": [answers.hook]}

    try:
        await storage.initialize()

        fox = memory("The quick brown fox jumps over the lazy dog near the river bank",
                     ["animals", "compat-a"], "note")
        rust = memory("Rust is a systems programming language focused on memory safety",
                      ["programming", "compat-a"])
        plants = memory("Photosynthesis converts sunlight into chemical energy in green plants",
                        ["science"], "observation", {"source": "compat"})
        # Over the R2 threshold, within the service's content limit: the body goes to R2.
        chunk = "Ocean tides follow the gravitational pull of the moon and the sun. "
        large = memory(chunk * (storage.max_content_length // len(chunk)), ["large"])
        check(len(large.content.encode()) > storage.large_content_threshold, "large is not large")
        everything = [fox, rust, plants, large]
        for m in everything:
            # What the service's MemoryService guarantees before it calls store().
            check(len(m.content) <= storage.max_content_length,
                  f"{m.content_hash[:12]} is longer than max_content_length")

        for m in everything:
            ok, message = await storage.store(m)
            check(ok, f"store {m.content_hash[:12]}: {message}")

        for m in everything:
            got = await storage.get_by_hash(m.content_hash)
            check(got is not None, f"get_by_hash {m.content_hash[:12]}: not found")
            check(got.content == m.content, f"get_by_hash {m.content_hash[:12]}: other content")
            check(sorted(got.tags) == sorted(m.tags), f"get_by_hash tags {got.tags} != {m.tags}")
        got = await storage.get_by_hash(plants.content_hash)
        check(got.memory_type == "observation" and got.metadata.get("source") == "compat",
              f"type/metadata not kept: {got.memory_type} {got.metadata}")

        stats = await storage.get_stats()
        check(stats.get("status") == "operational", f"stats: {stats}")
        check(stats["total_memories"] == 4, f"stats after store: {stats}")
        check(stats["r2_stored_count"] == 1, f"the large memory is not in R2: {stats}")
        summary["stats_after_store"] = {
            k: stats[k] for k in ("total_memories", "unique_tags", "r2_stored_count")
        }

        # Semantic search: a Vectorize upsert is visible only after a delay.
        results, waited = await wait_for_search(
            storage, "a fast fox leaping over a sleepy dog", fox.content_hash, timeout)
        summary["search_visible_after_s"] = round(waited, 2)
        check(results[0].relevance_score > 0, f"score {results[0].relevance_score}")
        results, _ = await wait_for_search(
            storage, "which language is memory safe for systems programming",
            rust.content_hash, timeout, tags=["programming"])
        check(all("programming" in r.memory.tags for r in results), "tag filter ignored")
        results, _ = await wait_for_search(
            storage, "tides of the ocean and the moon", large.content_hash, timeout)
        check(results[0].memory.content == large.content, "R2 content not loaded by search")

        by_tag = await storage.search_by_tag(["compat-a"])
        check({m.content_hash for m in by_tag} == {fox.content_hash, rust.content_hash},
              f"search_by_tag compat-a: {[m.content_hash[:12] for m in by_tag]}")
        both = await storage.search_by_tags(["animals", "compat-a"], operation="AND")
        check([m.content_hash for m in both] == [fox.content_hash],
              f"search_by_tags AND: {[m.content_hash[:12] for m in both]}")
        none = await storage.search_by_tags(["no-such-tag"])
        check(none == [], "search_by_tags of an unknown tag found something")

        ok, message = await storage.update_memory_metadata(
            rust.content_hash,
            {"tags": ["programming", "rust", "compat-a"], "memory_type": "decision",
             "metadata": {"reviewed": True}},
        )
        check(ok, f"update_memory_metadata: {message}")
        got = await storage.get_by_hash(rust.content_hash)
        check(sorted(got.tags) == ["compat-a", "programming", "rust"], f"tags: {got.tags}")
        check(got.memory_type == "decision", f"memory_type: {got.memory_type}")
        check(got.metadata.get("reviewed") is True, f"metadata: {got.metadata}")
        check(got.updated_at is not None, "updated_at not set")

        ok, message = await storage.delete(plants.content_hash)
        check(ok, f"delete: {message}")
        check(await storage.get_by_hash(plants.content_hash) is None, "deleted memory still there")

        count, message = await storage.delete_by_tag("compat-a")
        check(count == 2, f"delete_by_tag compat-a: {count} ({message})")
        for m in (fox, rust):
            check(await storage.get_by_hash(m.content_hash) is None, "tag-deleted memory there")

        stats = await storage.get_stats()
        check(stats["total_memories"] == 1 and stats["tombstone_count"] == 3,
              f"stats after deletes: {stats}")

        ok, message = await storage.delete(large.content_hash)
        check(ok, f"delete large: {message}")
        stats = await storage.get_stats()
        check(stats["total_memories"] == 0, f"stats at the end: {stats}")
        summary["stats_at_end"] = {k: stats[k] for k in ("total_memories", "tombstone_count")}
    finally:
        await storage.close()

    summary["package"] = "mcp-memory-service==" + importlib.metadata.version("mcp-memory-service")
    summary["requests"] = len(answers.answers)
    summary["per_service"] = answers.by_service()
    summary["statuses"] = dict(sorted(Counter(str(a[2]) for a in answers.answers).items()))
    summary["client_errors_logged"] = len(errors.records)
    print("COMPAT-SUMMARY " + json.dumps(summary, sort_keys=True), flush=True)

    bad = answers.non_2xx()
    check(not bad, f"non-2xx answers: {bad}")
    check(not errors.records, "the client logged errors:\n  " + "\n  ".join(errors.records))


def main():
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        asyncio.run(workload())
    except Exception as e:  # noqa: BLE001 - any failure fails the check
        logging.exception("cloudflare_compat failed: %s", e)
        return 1
    print("cloudflare_compat: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
