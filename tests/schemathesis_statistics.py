"""A schemathesis CLI extension (loaded through SCHEMATHESIS_HOOKS, schemathesis's own
mechanism) that writes the run's own statistics to the JSON file named by
FUZZ_STATISTICS_JSON when the engine finishes: the test cases it ran (`total_cases`,
the figure schemathesis prints as "generated"; each case once, discarded examples not
included) and the operations it selected. tests/test_api_fuzz.py reads that file
instead of parsing the CLI's text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from schemathesis import cli
from schemathesis.engine import events


@cli.handler()
class WriteStatistics(cli.EventHandler[cli.ExecutionContext]):
    # Any: schemathesis passes every CLI option's value here; none is used.
    def __init__(self, *args: Any, **params: Any) -> None:
        self.path = Path(os.environ["FUZZ_STATISTICS_JSON"])

    def handle_event(self, ctx: cli.ExecutionContext, event: events.EngineEvent) -> None:
        if isinstance(event, events.EngineFinished):
            operations = ctx.api_statistic.operations if ctx.api_statistic is not None else None
            self.path.write_text(
                json.dumps(
                    {
                        "cases": ctx.statistic.total_cases,
                        "operations": operations.selected if operations is not None else None,
                        "stop_reason": event.stop_reason.name,
                    }
                )
            )
