"""Settings changes are events; the settings bucket is their projection, rebuilt from the log
alone, and defaults written before settings were events are recorded as a change once."""

from __future__ import annotations

import asyncio

import msgspec
from nats.js.errors import KeyNotFoundError

from contracts import names
from contracts.defaults import decode_defaults
from contracts.events import SettingsChanged, decode_event, settings_changed
from contracts.params import FeatureParams, TemplateParams
from infra import nats_layout
from services.projector.settings import ProjectorSettings
from services.projector.worker import serve
from tests.harness import wait_until


async def _changes(js) -> list[SettingsChanged]:
    msgs = await nats_layout.direct_get_batch(js._nc, names.EVENT_STREAM, names.kind_filter(names.KIND_SETTINGS_CHANGED), 100)
    return [decode_event(m.data) for m in msgs]


async def test_the_settings_bucket_is_the_projection_of_settings_changes(private_nats):
    server, client = private_nats
    js = client.jetstream()
    kv = await nats_layout.open_kv(js, names.SETTINGS_BUCKET, history=10)
    legacy = FeatureParams(detector="ORB", max_matches=50)
    await kv.put("feature", msgspec.json.encode(legacy))  # as a gateway before settings were events
    first = settings_changed("template", TemplateParams(threshold=0.9))
    second = settings_changed("template", TemplateParams(threshold=0.7, max_results=5))
    acks = [await nats_layout.publish_event(js, change) for change in (first, second)]

    async def projected():
        try:
            found = {tool: decode_defaults(tool, (await kv.get(tool)).value) for tool in ("template", "feature")}
        except KeyNotFoundError:
            return None
        return found if found["template"].seq == acks[1].seq and found["feature"].seq else None

    async def run_projector_until(check):
        stop = asyncio.Event()
        runner = asyncio.create_task(serve(ProjectorSettings(nats_url=server.url), stop))
        try:
            return await wait_until(check, what="the settings projection")
        finally:
            stop.set()
            await runner

    found = await run_projector_until(projected)
    assert found["template"].params == second.params
    assert (found["template"].changed_at, found["template"].change_id) == (second.occurred_at, second.uid)
    assert found["feature"].params == legacy  # the legacy value, now recorded on the log
    recorded = await _changes(js)
    assert [(c.tool, c.params) for c in recorded] == [("template", first.params), ("template", second.params),
                                                      ("feature", legacy)]

    # The log alone rebuilds the bucket, and a restart records nothing twice.
    await js.delete_key_value(names.SETTINGS_BUCKET)
    kv = await nats_layout.open_kv(js, names.SETTINGS_BUCKET, history=10)
    await js.delete_consumer(names.EVENT_STREAM, names.PROJECTOR_CONSUMER)
    again = await run_projector_until(projected)
    assert again == found
    assert len(await _changes(js)) == 3
