"""The bench report's arithmetic on its own (no server): merging workers, per-node rows, the
limiting process, the gates. The runner is tested against real servers in test_bench*.py."""

from __future__ import annotations

from array import array

import pytest

from rtctl.errors import InvalidInput
from rtctl.ops.bench.report import (
    BenchOptions,
    Observation,
    PublishResult,
    Target,
    WorkerResult,
    build_report,
    check_options,
    expected_deliveries,
    limiting_process,
    percentiles,
)


def doubles(*values: float) -> array[float]:
    return array("d", values)


def worker(
    index: int, ready: list[list[int]], received: list[int], **extra: object
) -> WorkerResult:
    result = WorkerResult(
        index=index,
        pid=1000 + index,
        connections=sum(map(sum, ready)),
        connected=sum(map(sum, ready)),
        subscribed=sum(map(sum, ready)),
        received=sum(received),
        ready=ready,
        received_by_target=received,
        connect_ms=doubles(1.0, 2.0),
        subscribe_ms=doubles(0.5),
        latency_ms=[doubles(*([float(index + 1)] * n)) for n in received],
        cpu_seconds=1.0,
        cpu_seconds_publishing=0.5,
        publishing_seconds=1.0,
        max_rss_mb=30.0,
    )
    for key, value in extra.items():
        setattr(result, key, value)
    return result


def report(workers: list[WorkerResult], attempted: list[int], **kwargs: object) -> dict:
    options = BenchOptions(connections=8, channels=2, workers=len(workers), direct=True)
    defaults: dict[str, object] = {
        "target": "ws://127.0.0.1:6001",
        "options": options,
        "run_id": "abcd",
        "targets": [
            Target("node-1", "ws://127.0.0.1:6002"),
            Target("node-2", "ws://127.0.0.1:6003"),
        ],
        "workers": workers,
        "publish": PublishResult("http", attempted, sum(attempted), {}, 2.0, 12.5),
        "observed": [],
        "machine_percent": 40.0,
        "cores": 2,
        "wall": 5.0,
        "thresholds": {"min_delivery": 1.0, "max_p99_ms": None},
    }
    defaults.update(kwargs)
    return build_report(**defaults)  # type: ignore[arg-type]


def test_two_workers_merge_into_one_report_with_per_node_rows() -> None:
    # 8 subscribers: per worker [target][channel]; channel 0 got 3 events, channel 1 got 2
    first = worker(0, [[1, 1], [1, 1]], received=[5, 5])
    second = worker(1, [[1, 1], [1, 1]], received=[5, 4])
    data = report([first, second], attempted=[3, 2])
    assert data["delivery"]["expected"] == 20  # 3*4 + 2*4
    assert (data["delivery"]["received"], data["delivery"]["lost"]) == (19, 1)
    assert data["delivery"]["rate"] == 0.95
    assert data["connections"]["subscribed"] == 8
    assert data["connections"]["connect_ms"]["max"] == 2.0
    node1, node2 = data["targets"]
    assert (node1["name"], node1["subscribers"], node1["expected"], node1["received"]) == (
        "node-1",
        4,
        10,
        10,
    )
    assert (node2["received"], node2["rate"]) == (9, 0.9)
    assert node1["latency_ms"]["max"] == 2.0  # samples of both workers on that node
    assert data["rtctl"]["workers"] == 2
    assert [row["cpu_percent_publishing"] for row in data["rtctl"]["per_worker"]] == [50.0, 50.0]
    assert data["verdict"]["passed"] is False
    assert data["verdict"]["reasons"] == [
        "delivery 95.00% is under --min-delivery 100% (1 of 20 lost)"
    ]


def test_wire_round_trip_keeps_samples() -> None:
    original = worker(3, [[2, 0]], received=[4])
    copy = WorkerResult.from_wire(original.to_wire())
    assert copy == original
    assert list(copy.latency_ms[0]) == [4.0] * 4


def test_the_busiest_saturated_process_is_the_limit() -> None:
    observed = [
        Observation("worker-0", "worker", 1, 60.0),
        Observation("node-2", "node", 2, 97.5),
        Observation("front-door-1", "front-door", 3, 93.0),
        Observation("bus", "bus", 4, None),
    ]
    limit = limiting_process(observed, machine_percent=88.0, cores=8)
    assert limit["process"] == "node-2" and limit["kind"] == "node"
    assert limit["reason"] == (
        "node-2 used 98% of one core while publishing (also saturated: front-door-1 93%)"
    )


def test_a_busy_machine_is_the_limit_when_no_process_is() -> None:
    observed = [Observation("node-1", "node", 1, 70.0), Observation("worker-0", "worker", 2, 80.0)]
    limit = limiting_process(observed, machine_percent=97.0, cores=2)
    assert (limit["process"], limit["kind"]) == ("machine", "machine")
    assert limit["reason"].startswith("every core was busy (97% of 2 cores)")
    calm = limiting_process(observed, machine_percent=40.0, cores=2)
    assert calm["process"] is None
    assert calm["reason"] == (
        "no process was saturated: this load is below every limit; busiest: worker-0 80%"
    )


def test_a_saturated_worker_is_named_and_noted() -> None:
    hot = worker(0, [[2, 2], [2, 2]], received=[0, 0], cpu_seconds_publishing=0.95)
    data = report([hot], attempted=[0, 0], observed=[Observation("worker-0", "worker", 1000, 95.0)])
    assert data["rtctl"]["saturated"] is True
    assert data["limit"]["process"] == "worker-0"
    assert data["notes"][-1].endswith("add --workers")


def test_expected_deliveries_and_percentiles() -> None:
    assert expected_deliveries([10, 0, 3], [2, 5, 1]) == 23
    assert percentiles([float(v) for v in range(1, 101)])["p99"] == 99.0
    assert percentiles([])["p50"] is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BenchOptions(workers=0), "--workers must be 1 to 32"),
        (
            BenchOptions(connections=2, channels=1, workers=3),
            "--workers 3 is more than --connections 2",
        ),
    ],
)
def test_bad_worker_counts(options: BenchOptions, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_options(options)
    assert caught.value.message == message
