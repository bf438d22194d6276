"""``examples/demo.json``, the configuration of `make run`: valid, pointed at the simulator."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from catalog_refresher import config
from catalog_refresher.config.settings import EndpointType
from catalog_refresher.domain.specs import SPECS
from catalog_refresher.simulator import Faults, Simulator
from catalog_refresher.sources.demo import DemoWorld

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "examples" / "demo.json"


def stand_ins(path: Path) -> dict[str, str]:
    """A value for every ``env:NAME`` the file names, comments included (they are copied)."""
    return {name: f"stand-in-{name.lower()}" for name in re.findall(r"env:(\w+)", path.read_text())}


def test_the_demo_example_passes_check_config() -> None:
    """examples/demo.json loads and describes itself, as `check-config` does."""
    settings = config.load(DEMO, environment=None, environ=stand_ins(DEMO))

    described = config.describe(settings)
    assert set(described["Sources"]) == {spec.config_key for spec in SPECS.values()}


def test_the_demo_example_reads_all_ten_sources_from_the_simulator() -> None:
    """Every source is an http endpoint at 127.0.0.1:8100/<source id>, the simulator's paths."""
    settings = config.load(DEMO, environment=None, environ=stand_ins(DEMO))

    assert set(settings.sources) == set(SPECS)
    for source_id, source in settings.sources.items():
        url = urlsplit(source.primary.url or "")
        assert source.primary.type is EndpointType.HTTP
        assert (url.scheme, url.netloc, url.path) == ("http", "127.0.0.1:8100", f"/{source_id}")
        assert source.backup is None


def test_the_demo_example_runs_on_short_intervals_and_a_local_sqlite_file() -> None:
    """Intervals of 30 s to 2 min let a newcomer see the schedule move; the store is SQLite."""
    settings = config.load(DEMO, environment=None, environ=stand_ins(DEMO))

    intervals = [settings.repository.interval(spec) for spec in SPECS.values()]
    assert min(intervals) == timedelta(seconds=30)
    assert max(intervals) == timedelta(minutes=2)
    assert str(settings.store.url).startswith("sqlite:///")


def test_the_simulator_answers_every_url_of_the_example() -> None:
    """Each URL the example asks for (with a history window where due) is a 200 of the simulator."""
    settings = config.load(DEMO, environment=None, environ={})
    world = DemoWorld(products=20, failure_rate=0.0, clock_today=lambda: date(2026, 11, 29))
    simulator = Simulator(world, Faults(error_rate=0.0), seed=1)

    for source_id, source in settings.sources.items():
        target = urlsplit(source.primary.url or "").path
        if SPECS[source_id].is_history:
            target += "?date_from=2026-01-01&date_to=2026-11-29"
        assert simulator.answer(target).status == 200, target
