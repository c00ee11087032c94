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
from typing import Any

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import api as js_api
from nats.js.errors import NotFoundError

from contracts import names
from contracts.events import (
    UNREADABLE,
    AnyEvent,
    StepCompleted,
    TaskFinished,
    TaskProgressed,
    TaskStarted,
    TaskSubmitted,
    decode_event,
    finished,
)
from contracts.tools import MAX_CHAIN_STEPS, TOOLS, ChainParams, ChainProgress, ChainResult, Lane
from infra import nats_layout
from infra.objects import FileStore
from infra.spool import LocalSpool
from services.matcher.jobs import Job, JobOutcome, job_steps
from services.matcher.parts import ResultFile, Stage, StepDone
from services.matcher.pool import JobTimedOut, WorkerCrashed, WorkerPool
from services.matcher.settings import MatcherSettings

log = structlog.get_logger("matcher")


class _MaxDeliveries(msgspec.Struct):
    """The part of the server's MAX_DELIVERIES advisory we read."""

    stream_seq: int


_advisory = msgspec.json.Decoder(_MaxDeliveries)


def consumer_config(settings: MatcherSettings, lane: Lane = "fast") -> js_api.ConsumerConfig:
    """The durable consumer of one lane: the submissions of the tools the registry puts in it,
    run by that lane's pool."""
    tools = [name for name, tool in TOOLS.items() if tool.lane == lane]
    return js_api.ConsumerConfig(
        durable_name=names.MATCHER_CONSUMERS[lane],
        filter_subjects=[names.tool_filter(names.KIND_SUBMITTED, tool) for tool in tools],
        deliver_policy=js_api.DeliverPolicy.ALL,
        ack_policy=js_api.AckPolicy.EXPLICIT,
        ack_wait=settings.ack_wait,
        # The delivery after the last attempt only records the error; two spare ones cover a
        # matcher that dies while doing that. The server then gives up and advises (handled below).
        max_deliver=settings.max_attempts + 2,
        max_ack_pending=1000,
    )


def _located(result: Any, uid: str) -> Any:
    """A chain's step files, named relative to the task's results folder, as download paths."""
    if not isinstance(result, (ChainResult, ChainProgress)):
        return result
    return msgspec.structs.replace(result, steps=[_located_step(step, uid) for step in result.steps])


def _located_step(record: Any, uid: str) -> Any:
    paths = [name if name.startswith("results/") else names.result_path(uid, name) for name in record.result_files]
    return msgspec.structs.replace(record, result_files=paths)


class _Handover:
    """What a job hands over while it runs: each result file is stored at once (the larger one
    while the next is still being encoded); stages and finished chain steps become events, in
    order, a step's only once the files handed over before it are stored."""

    def __init__(self, matcher: "Matcher", event: TaskSubmitted, attempt: int, announced: asyncio.Future) -> None:
        self._matcher = matcher
        self._event = event
        self._attempt = attempt
        self._replace = attempt > 1  # a retried attempt overwrites what an earlier one stored
        self._paths: list[str] = []
        self._puts: list[asyncio.Future] = []
        self._events: asyncio.Future = announced  # the last event publish; the next waits for it

    def add(self, part: ResultFile | Stage | StepDone) -> None:
        event = self._event
        if isinstance(part, ResultFile):
            path = names.result_path(event.uid, part.name)
            self._paths.append(path)
            self._puts.append(asyncio.ensure_future(nats_layout.retrying(
                lambda: self._matcher.files.put(path, part.data, replace=self._replace), what="result")))
        elif isinstance(part, Stage):
            self._then([], TaskProgressed(uid=event.uid, tool=event.tool, stage=part.name, attempt=self._attempt))
        elif isinstance(part, StepDone):
            step = StepCompleted(uid=event.uid, tool=event.tool, step=_located_step(part.record, event.uid))
            self._then(list(self._puts), step)

    def _then(self, files: list[asyncio.Future], event: AnyEvent) -> None:
        previous = self._events

        async def publish() -> None:
            await previous
            for outcome in await asyncio.gather(*files, return_exceptions=True):
                if isinstance(outcome, BaseException):
                    raise outcome
            await self._matcher.publish(event)

        self._events = asyncio.ensure_future(publish())

    async def stored(self) -> list[str]:
        """The stored files' paths once all are in and every event is published; the first
        failure is raised."""
        for outcome in await asyncio.gather(*self._puts, self._events, return_exceptions=True):
            if isinstance(outcome, BaseException):
                raise outcome
        return self._paths

    async def settle(self, *, cancel: bool = False) -> None:
        """The attempt failed: let the work already under way end (or cancel it), whatever it
        ends with; the next attempt stores its own."""
        if cancel:
            for future in (*self._puts, self._events):
                future.cancel()
        await asyncio.gather(*self._puts, self._events, return_exceptions=True)


class Matcher:
    def __init__(self, nc: NATS, pools: dict[Lane, WorkerPool], settings: MatcherSettings) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self.files = FileStore(nc, LocalSpool.optional(settings.spool_dir, settings.spool_bytes))
        self._pools = pools
        self._settings = settings

    async def publish(self, event: AnyEvent) -> None:
        await nats_layout.publish_event(self._js, event, deadline=60)

    async def run(self, stop: asyncio.Event) -> None:
        lanes: list[Lane] = list(self._pools)
        subscriptions = []
        for lane in lanes:
            await nats_layout.declare_consumer(self._js, consumer_config(self._settings, lane))
            subscriptions.append(await self._js.pull_subscribe_bind(
                durable=names.MATCHER_CONSUMERS[lane], stream=names.EVENT_STREAM))
        advisories = await self._nc.subscribe(
            f"{names.MAX_DELIVERIES_ADVISORY}.{names.EVENT_STREAM}.*",
            queue="aerovision-matcher", cb=self._on_max_deliveries,
        )
        log.info("matcher_started", name=self._settings.name,
                 **{f"{lane}_workers": pool.size for lane, pool in self._pools.items()})
        try:
            # Each lane fetches only what can start soon: one job per worker running, one waiting.
            await asyncio.gather(*(
                nats_layout.consume(psub, self._handle, concurrency=self._pools[lane].size * 2, stop=stop, grace=10.0)
                for lane, psub in zip(lanes, subscriptions)
            ))
        finally:
            await advisories.unsubscribe()

    async def _handle(self, msg: Msg) -> None:
        try:
            event = decode_event(msg.data)
        except UNREADABLE as exc:
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
            self.files.drop_local_copy(path)
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
            await self._finish(msg, event, finished(
                event.tool, "error", uid=event.uid,
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
        fields = [slot.field for slot in TOOLS[event.tool].files]
        blobs, done_steps = await asyncio.gather(
            asyncio.gather(*(self.files.get(p) for p in event.input_files)), self._recorded_steps(event, attempt))
        missing = [path for path, blob in zip(event.input_files, blobs) if blob is None]
        if missing:
            await announced
            await self._finish(msg, event, finished(
                event.tool, "error", uid=event.uid, error=f"Input file missing: {', '.join(missing)}",
            ))
            return
        t1 = time.perf_counter()
        job = Job(uid=event.uid, tool=event.tool, params=event.params, inputs=list(zip(fields, blobs)),
                  done_steps=done_steps)
        handover = _Handover(self, event, attempt, announced)
        try:
            outcome: JobOutcome = await self._with_heartbeat(
                msg, self._pools[TOOLS[event.tool].lane].run(
                    job_steps, job, settings.task_timeout, on_part=handover.add))
        except (WorkerCrashed, JobTimedOut) as exc:
            await handover.settle()
            reason = "crashed the matcher" if isinstance(exc, WorkerCrashed) else "ran too long"
            log.warning("task_attempt_failed", reason=str(exc))
            if attempt >= settings.max_attempts:
                await self._finish(msg, event, finished(
                    event.tool, "error", uid=event.uid,
                    error=f"Processing {reason} on each of {attempt} attempts ({exc}); the input cannot be processed",
                ))
            else:
                await msg.nak(delay=settings.retry_delay)
            return
        except BaseException:
            await handover.settle(cancel=True)  # e.g. shutting down: the task is handed back
            raise
        t2 = time.perf_counter()
        for name, data in outcome.files:
            handover.add(ResultFile(name, data))
        paths = await handover.stored()
        result = _located(outcome.result_data, event.uid)
        if isinstance(result, (ChainResult, ChainProgress)):  # earlier attempts stored some of them
            paths = [path for step in result.steps for path in step.result_files]
        ending = {"result_data": result} if result is not None else {}
        await self._finish(msg, event, finished(
            event.tool, outcome.status, uid=event.uid, error=outcome.error,
            result_files=paths if outcome.status == "done" else [], **ending,
        ), inputs_ms=round((t1 - t0) * 1000, 1), run_ms=round((t2 - t1) * 1000, 1),
            store_ms=round((time.perf_counter() - t2) * 1000, 1))

    async def _recorded_steps(self, event: TaskSubmitted, attempt: int) -> list:
        """A retried chain's steps that an earlier attempt recorded (it resumes after them)."""
        if attempt == 1 or not isinstance(event.params, ChainParams):
            return []
        subject = names.event_subject(names.KIND_STEP_COMPLETED, event.tool, event.uid)
        msgs = await nats_layout.retrying(lambda: nats_layout.direct_get_batch(
            self._nc, names.EVENT_STREAM, subject, MAX_CHAIN_STEPS), what="steps")
        steps = {}
        for raw in msgs:
            recorded = decode_event(raw.data)
            if isinstance(recorded, StepCompleted):
                steps[recorded.step.step] = recorded.step
        # Only an unbroken run from step 1 can be resumed after.
        run = []
        for number in range(1, len(steps) + 1):
            if number not in steps:
                break
            run.append(steps[number])
        if run:
            log.info("chain_resumed", after_step=len(run))
        return run

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
            seq = _advisory.decode(advisory.data).stream_seq
            raw = await self._js.get_msg(names.EVENT_STREAM, seq=seq, direct=True)
            event = decode_event(raw.data)
            if isinstance(event, TaskSubmitted):
                await self.publish(finished(
                    event.tool, "error", uid=event.uid,
                    error="The task could not be processed: every delivery of it was lost",
                ))
                log.warning("task_abandoned", uid=event.uid)
        except Exception:
            log.exception("max_deliveries_advisory_failed")


async def serve(settings: MatcherSettings, stop: asyncio.Event) -> None:
    """Composition root of a matcher replica: the lanes' pools, connection, consumers; drains on ``stop``."""
    pools: dict[Lane, WorkerPool] = {
        "fast": WorkerPool(settings.workers),
        "slow": WorkerPool(settings.slow_workers, nice=settings.slow_nice),
    }
    for pool in pools.values():
        await pool.start()
    try:
        async with nats_layout.session(settings.nats_url, f"aerovision-matcher-{settings.name}", stop) as nc:
            js = nc.jetstream()
            await nats_layout.declare_event_stream(js, settings.replicas)
            await nats_layout.declare_files_bucket(js, settings.replicas)
            await Matcher(nc, pools, settings).run(stop)
    finally:
        for pool in pools.values():
            await pool.close()
