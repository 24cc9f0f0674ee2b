"""The scaling panel's Processing job: inbound messages through a live server's processing
queue, batched by type against one per call, shown side by side."""

from __future__ import annotations

import asyncio
import re

import pytest

from wslab.lab import ScalingPanel


@pytest.mark.timeout(120)
def test_processing_compares_batched_with_one_per_call(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WSLAB_FAST", "1")
    panel = ScalingPanel()
    panel.set(processing_batch=50)

    async def main() -> None:
        panel.buttons["Processing"].click()
        assert panel.tasks.task is not None
        await panel.tasks.task

    asyncio.run(main())
    assert panel.tasks.state == "done", panel.status.value
    assert panel.processing is not None
    batched, single = panel.processing["batched"], panel.processing["one per call"]
    assert batched["items"] == single["items"] == 2_000
    assert single["batches"] == 2_000 and single["largest_batch"] == 1
    assert batched["batches"] < single["batches"] and batched["largest_batch"] <= 50
    table = panel.processing_stats.value
    assert "batched (up to 50)" in table and "one per call" in table
    calls = re.findall(r">([\d,]+)</td>", table)
    assert f"{batched['batches']:,}" in calls and "2,000" in calls
