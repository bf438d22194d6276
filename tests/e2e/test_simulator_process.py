"""`make run` as real processes: `simulate`, then `run --config examples/demo.json`.

The example is used as shipped; only its ports and its SQLite file are moved, through the
``Section__Key`` environment overrides it tells its readers about, so that the test never
collides with a `make run` on the same machine.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from catalog_refresher.domain.specs import SPECS
from catalog_refresher.simulator import FaultPlan, Faults
from tests.e2e.processes import ServiceProcess, SimulatorProcess, free_port, poll

pytestmark = pytest.mark.e2e

EXAMPLE = Path(__file__).parents[2] / "examples" / "demo.json"


def example_overrides(simulator_port: int, api_port: int, tmp_path: Path) -> dict[str, str]:
    env = {
        f"Sources__{spec.config_key}__Url": f"http://127.0.0.1:{simulator_port}/{spec.id}"
        for spec in SPECS.values()
    }
    env["Api__Port"] = str(api_port)
    env["Store__Url"] = f"sqlite:///{tmp_path / 'demo.db'}"
    return env


def completed(service: ServiceProcess) -> set[str]:
    """The sources with a ``Completed ... refresh`` line so far."""
    return {line.split()[2] for line in list(service.log) if " Completed " in line}


def test_the_demo_refreshes_all_ten_sources_over_http_and_retries_a_failure(
    tmp_path: Path,
) -> None:
    """Within a minute all ten sources are refreshed from the simulator, its planned 503
    retried; the incremental ErpStock's next run asks for its changes since its cursor."""
    scheduled = FaultPlan(Faults(), seed=7).scheduled
    simulator_port, api_port = free_port(), free_port()
    env = example_overrides(simulator_port, api_port, tmp_path)
    with SimulatorProcess(simulator_port) as simulator:
        simulator.wait_until_serving()
        with ServiceProcess(EXAMPLE, f"http://127.0.0.1:{api_port}", env=env) as service:
            took = poll(
                lambda: completed(service),
                lambda done: done == set(SPECS) or not service.alive,
                seconds=60,
            )
            assert completed(service) == set(SPECS), service.output()
            assert service.count(f"Retry 1/3 for {scheduled}: HTTP 503") == 1, service.output()
            # ErpStock is incremental in the example: its second run (30 s on) sends its cursor.
            poll(
                simulator.output,
                lambda served: "GET /erp_stock?changed_since=" in served or not service.alive,
                seconds=60,
            )
            assert "GET /erp_stock?changed_since=" in simulator.output(), simulator.output()
            assert service.stop() == 0
        assert simulator.stop() == 0

    served = simulator.output()
    for source_id in SPECS:
        assert f"{source_id} GET /{source_id}" in served
    assert f"{scheduled} GET /{scheduled}" in served
    assert "(simulated outage, scheduled, Retry-After: 1)" in served
    assert "Simulator stopped" in served
    assert took < 30, f"the first runs took {took:.1f} s"


def test_simulate_stops_on_sigint_unless_it_arrived_ignored(tmp_path: Path) -> None:
    """Ctrl-C stops a simulator started in a terminal (exit 0); started as a background job,
    where SIGINT arrives ignored (`make run`), only SIGTERM stops it, also with exit 0."""
    with SimulatorProcess(free_port()) as foreground:
        foreground.wait_until_serving()
        foreground.process.send_signal(signal.SIGINT)
        assert foreground.process.wait(timeout=10) == 0

    ignoring = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the child, as sh does
    try:
        background = SimulatorProcess(free_port())
    finally:
        signal.signal(signal.SIGINT, ignoring)
    with background:
        background.wait_until_serving()
        background.process.send_signal(signal.SIGINT)
        with pytest.raises(subprocess.TimeoutExpired):
            background.process.wait(timeout=1)
        assert background.stop() == 0
