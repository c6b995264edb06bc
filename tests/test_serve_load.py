"""benchmarks/serve_load.py's own bookkeeping: the bad-input mix is what it says, and a phase sums its slices."""

import sys
from pathlib import Path

import numpy as np
import pytest

from rtdet.deploy.images import shared_data_dir

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def serve_load():
    sys.path.insert(0, str(BENCH))
    try:
        import serve_load as module
        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.mark.skipif(not (shared_data_dir() / "coco128").is_dir(), reason="the load test posts coco128's photos")
def test_the_bad_input_mix_is_one_in_ten_corrupt_of_every_kind(serve_load):
    from rtdet.serve.inputs import RequestError, load_image

    mixed = serve_load.bodies(n_bad_every=10)
    bad = [body for body, good in mixed if not good]
    assert len(mixed) == 1280 and len(bad) == 128 and all(not good for _, good in mixed[9::10])
    statuses = set()
    for body in set(bad):  # the five kinds, each refused by the server's own checks
        payload = body.split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0]
        with pytest.raises(RequestError) as e:
            load_image(payload, 10**8)
        statuses.add(e.value.status)
    assert len(set(bad)) == 5 and statuses == {415, 422}


def test_a_phase_is_the_sum_of_its_slices(serve_load):
    parts = [{"clients": 4, "seconds": 2.0, "latencies_ms": np.array([10.0, 20.0]), "statuses": {"200": 2},
              "server_ms": {"decode": 1.0, "inference": 5.0, "total": 7.0}},
             {"clients": 4, "seconds": 1.0, "latencies_ms": np.array([30.0, 40.0]), "statuses": {"200": 1, "415": 1},
              "server_ms": {"decode": 3.0, "inference": 7.0, "total": 11.0}}]
    row = serve_load.merge(parts, [(60, 0.5, 8.0, 0.009), (60, 1.5, 10.0, 0.011)])
    assert row["requests"] == 4 and row["per_s"] == pytest.approx(4 / 3)
    assert row["statuses"] == {"200": 3, "415": 1} and row["p50_ms"] == pytest.approx(25.0)
    assert row["bench_per_s"] == pytest.approx(120 / 2.0) and row["bench_fps_median"] == pytest.approx(1000 / 9.0)
    assert row["server_ms"]["inference"] == pytest.approx(6.0) and row["bench_cpu_ms"] == pytest.approx(10.0)
