"""The matcher's NATS edge: take TaskSubmitted from the shared durable consumer, run it in the
worker pool, store results, publish TaskStarted / TaskFinished, and only then acknowledge.

Delivery is at-least-once: a task whose matcher died is redelivered and run again (results are
deterministic, publishes are de-duplicated by message id, the projector ignores events after the
end). Deliveries are bounded: past ``max_attempts`` the task ends in ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from contracts import names
from infra import nats_layout
from contracts.events import (
    AnyEvent,
    TaskFinished,
    TaskStarted,
    TaskSubmitted,
    decode_event,
)
from infra.objects import FileStore
from infra.spool import LocalSpool
from contracts.params import FILE_FIELDS
from services.matcher.jobs import Job, JobOutcome, job_steps
from services.matcher.parts import ResultFile, Stage
from services.matcher.pool import JobTimedOut, WorkerCrashed, WorkerPool
from services.matcher.settings import MatcherSettings

log = structlog.get_logger("matcher")


def consumer_config(settings: MatcherSettings) -> js_api.ConsumerConfig:
    return js_api.ConsumerConfig(
        durable_name=names.MATCHER_CONSUMER,
        filter_subject=names.kind_filter(names.KIND_SUBMITTED),
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        # The delivery after the last attempt only records the error; two spare ones cover a
        # matcher that dies while doing that. The server then gives up and advises (handled below).
        max_deliver=settings.max_attempts + 2,
        max_ack_pending=1000,
    )


class _ResultUploads:
    """A job's result files, each stored as soon as its worker hands it over: the larger one is
    stored while the next is still being encoded."""

    def __init__(self, files: FileStore, uid: str, *, replace: bool) -> None:
        self._files = files
        self._uid = uid
        self._replace = replace  # a retried attempt overwrites what an earlier one stored
        self._paths: list[str] = []
        self._puts: list[asyncio.Future] = []

    def add(self, part: ResultFile | Stage) -> None:
        if not isinstance(part, ResultFile):
            return
        path = f"results/{self._uid}/{part.name}"
        self._paths.append(path)
        self._puts.append(asyncio.ensure_future(nats_layout.retrying(
            lambda: self._files.put(path, part.data, replace=self._replace), what="result")))

    async def stored(self) -> list[str]:
        """The stored files' paths once all are in; the first failure is raised."""
        for outcome in await asyncio.gather(*self._puts, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return self._paths

    async def settle(self, *, cancel: bool = False) -> None:
        """The attempt failed: let the puts already under way end (or cancel them), whatever
        they end with; the next attempt stores its own."""
        if cancel:
            for put in self._puts:
                put.cancel()
        await asyncio.gather(*self._puts, return_exceptions=True)


class Matcher:
    def __init__(self, nc: NATS, pool: WorkerPool, settings: MatcherSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._files = FileStore(nc, LocalSpool.optional(settings.spool_dir, settings.spool_bytes))
        self._pool = pool
        self._settings = settings

    async def publish(self, event: AnyEvent) -> None:
        await nats_layout.publish_event(self._js, event, deadline=60)

    async def run(self, stop: asyncio.Event) -> None:
        await nats_layout.declare_consumer(self._js, consumer_config(self._settings))
        psub = await self._js.pull_subscribe_bind(durable=names.MATCHER_CONSUMER, stream=names.EVENT_STREAM)
        advisories = await self._nc.subscribe(
            f"{names.MAX_DELIVERIES_ADVISORY}.{names.EVENT_STREAM}.{names.MATCHER_CONSUMER}",
            queue="aerovision-matcher", cb=self._on_max_deliveries,
        )
        log.info("matcher_started", workers=self._pool.size, name=self._settings.name)
        try:
            # Fetch only what can start soon: one job per worker running, one waiting.
            await nats_layout.consume(psub, self._handle, concurrency=self._pool.size * 2, stop=stop, grace=10.0)
        finally:
            await advisories.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
        except msgspec.ValidationError as exc:
            log.warning("event_skipped", subject=msg.subject, reason=str(exc))
            await msg.term()
            return
        if not isinstance(event, TaskSubmitted):
            await msg.term()
            return
        attempt = msg.metadata.num_delivered
        with structlog.contextvars.bound_contextvars(uid=event.uid, tool=event.tool, attempt=attempt):
            try:
                await self._process(msg, event, attempt)
            except asyncio.CancelledError:
                # Shutting down mid-task: hand it back at once rather than after ack_wait.
                with contextlib.suppress(Exception):
                    await msg.nak()
                log.info("task_handed_back")
                raise
            except Exception:
                log.exception("task_failed_transiently")
                with contextlib.suppress(Exception):
                    await msg.nak(delay=self._settings.retry_delay * attempt)

    async def _finish(self, msg: Msg, event: TaskSubmitted, finished: TaskFinished, **timings: float) -> None:
        await self.publish(finished)
        # A plain ack, not a confirmed one: if it is lost, the redelivery finds the TaskFinished
        # stored above and is only acknowledged (see _process), so the round trip buys nothing.
        await msg.ack()
        for path in event.input_files:  # the task is over: no attempt will read them again
            self._files.drop_local_copy(path)
        log.info("task_finished", status=finished.status, error=finished.error, **timings)

    async def _process(self, msg: Msg, event: TaskSubmitted, attempt: int) -> None:
        settings = self._settings
        if attempt > 1 and await self._already_finished(event):
            # Its end is stored, only the ack was lost (a broker restart): nothing to run again,
            # and re-storing its results would race readers of the ones it has.
            await msg.ack()
            log.info("task_already_finished")
            return
        if attempt > settings.max_attempts:
            await self._finish(msg, event, TaskFinished(
                uid=event.uid, tool=event.tool, status="error",
                error=f"The task failed {settings.max_attempts} times: its input crashes or stalls the matcher",
            ))
            return
        started = TaskStarted(uid=event.uid, tool=event.tool, worker=settings.name, attempt=attempt)
        # The start is stored while the inputs load and the job runs: it only has to be stored
        # before anything that follows it (the finish, or a nak).
        announced = asyncio.ensure_future(self.publish(started))
        try:
            await self._run(msg, event, attempt, announced)
        finally:
            if not announced.done():
                announced.cancel()  # a retried delivery publishes it again (de-duplicated)
            await asyncio.gather(announced, return_exceptions=True)

    async def _run(self, msg: Msg, event: TaskSubmitted, attempt: int, announced: asyncio.Future) -> None:
        settings = self._settings
        t0 = time.perf_counter()
        fields = list(FILE_FIELDS.get(event.tool, ("first", "second")))
        blobs = await asyncio.gather(*(self._files.get(p) for p in event.input_files))
        missing = [path for path, blob in zip(event.input_files, blobs) if blob is None]
        if missing:
            await announced
            await self._finish(msg, event, TaskFinished(
                uid=event.uid, tool=event.tool, status="error", error=f"Input file missing: {', '.join(missing)}",
            ))
            return
        t1 = time.perf_counter()
        job = Job(uid=event.uid, tool=event.tool, params=event.params, inputs=list(zip(fields, blobs)))
        results = _ResultUploads(self._files, event.uid, replace=attempt > 1)
        try:
            outcome: JobOutcome = await self._with_heartbeat(
                msg, self._pool.run(job_steps, job, settings.task_timeout, on_part=results.add))
        except (WorkerCrashed, JobTimedOut) as exc:
            await results.settle()
            await announced
            reason = "crashed the matcher" if isinstance(exc, WorkerCrashed) else "ran too long"
            log.warning("task_attempt_failed", reason=str(exc))
            if attempt >= settings.max_attempts:
                await self._finish(msg, event, TaskFinished(
                    uid=event.uid, tool=event.tool, status="error",
                    error=f"Processing {reason} on each of {attempt} attempts ({exc}); the input cannot be processed",
                ))
            else:
                await msg.nak(delay=settings.retry_delay)
            return
        except BaseException:
            await results.settle(cancel=True)  # e.g. shutting down: the task is handed back
            raise
        t2 = time.perf_counter()
        for name, data in outcome.files:
            results.add(ResultFile(name, data))
        paths, _ = await asyncio.gather(results.stored(), announced)
        await self._finish(msg, event, TaskFinished(
            uid=event.uid, tool=event.tool, status=outcome.status,
            result_files=paths if outcome.status == "done" else [],
            result_data=outcome.result_data, error=outcome.error,
        ), inputs_ms=round((t1 - t0) * 1000, 1), run_ms=round((t2 - t1) * 1000, 1),
            store_ms=round((time.perf_counter() - t2) * 1000, 1))

    async def _already_finished(self, event: TaskSubmitted) -> bool:
        subject = names.event_subject(names.KIND_FINISHED, event.tool, event.uid)
        try:
            await self._js.get_msg(names.EVENT_STREAM, subject=subject, direct=True)
        except NotFoundError:
            return False
        except Exception:  # cannot tell: run it again, as at-least-once delivery allows
            log.warning("finished_check_failed", exc_info=True)
            return False
        return True

    async def _with_heartbeat(self, msg: Msg, work):
        """Await ``work`` while telling the server the task is alive, so it is not redelivered."""
        task = asyncio.ensure_future(work)
        interval = max(1.0, self._settings.ack_wait / 3)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=interval)
                if done:
                    return task.result()
                with contextlib.suppress(Exception):
                    await msg.in_progress()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _on_max_deliveries(self, advisory: Msg) -> None:
        """The server gave up on a task (every delivery died): record that it ended in error."""
        try:
            seq = int(msgspec.json.decode(advisory.data)["stream_seq"])
            raw = await self._js.get_msg(names.EVENT_STREAM, seq=seq, direct=True)
            event = decode_event(raw.data)
            if isinstance(event, TaskSubmitted):
                await self.publish(TaskFinished(
                    uid=event.uid, tool=event.tool, status="error",
                    error="The task could not be processed: every delivery of it was lost",
                ))
                log.warning("task_abandoned", uid=event.uid)
        except Exception:
            log.exception("max_deliveries_advisory_failed")


async def serve(settings: MatcherSettings, stop: asyncio.Event) -> None:
    """Composition root of a matcher replica: pool, connection, consumer; drains on ``stop``."""
    pool = WorkerPool(settings.workers)
    await pool.start()
    try:
        async with nats_layout.session(settings.nats_url, f"aerovision-matcher-{settings.name}", stop) as nc:
            js = nc.jetstream()
            await nats_layout.declare_event_stream(js, settings.replicas)
            await nats_layout.declare_files_bucket(js, settings.replicas)
            await Matcher(nc, pool, settings).run(stop)
    finally:
        await pool.close()
