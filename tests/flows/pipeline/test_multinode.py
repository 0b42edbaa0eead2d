"""A real multi-node Ray cluster on one machine (`ray.cluster_utils.Cluster`): a head and two worker
nodes that declare one logical GPU each. A `dawnchorus run` driver joins it through RAY_ADDRESS
(as in a `ray start` cluster), reads the audio from S3 in the workers, and with actor_gpus=1,
model_actors=2 places one model actor on each GPU node (asserted from Ray's state API); its
windows and predictions equal a single-node run's row for row. A Ray Client (ray://) address is
refused before any work: Ray Data cannot run through it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from connectors.catalog import CatalogReader
from flows.pipeline.prefect_flows import nightly
from flows.pipeline.settings import RunSettings
from tests.support.s3server import subprocess_env
from tests.support.synth_audio import make_deployment

RATE_HZ = 8_000
START = datetime(2024, 6, 1, 4, 0, tzinfo=timezone.utc)
OBJECT_STORE_BYTES = 100 * 1024**2  # the smallest Ray allows is 75 MiB; keep the cluster lean
PREDICTOR_ACTOR = "MapBatches(Predictor)"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def source(s3_server, tmp_path_factory) -> str:
    local = tmp_path_factory.mktemp("audio")
    make_deployment(local, "dep-m", [START + timedelta(hours=h) for h in range(3)], 60.0, RATE_HZ,
                    events={0: [(12.0, 4.0, 1000.0)], 2: [(41.0, 3.0, 2500.0)]})
    bucket = s3_server.make_bucket("cluster-audio")
    s3_server.upload_tree(local, f"{bucket}/season")
    return f"{bucket}/season"


@pytest.fixture(scope="module")
def cluster(s3_server):
    """Head (CPUs, the dashboard for the state API) + two GPU worker nodes; always shut down.
    Started after the S3 server, so every node has its AWS_* variables, as pods get them."""
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 2, "include_dashboard": True, "dashboard_port": free_port(),
        "object_store_memory": OBJECT_STORE_BYTES})
    try:
        gpu_nodes = [c.add_node(num_cpus=2, num_gpus=1, object_store_memory=OBJECT_STORE_BYTES)
                     for _ in range(2)]
        c.wait_for_nodes()
        yield c, {n.node_id for n in gpu_nodes}
    finally:
        c.shutdown()


def rows(results, table: str) -> list[tuple]:
    with CatalogReader(results) as reader:
        result = reader.query(f"select * exclude (run_id) from {table}")
    return sorted(tuple(str(v) for v in r.values()) for r in result.to_pylist())


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "ray_local")
def test_one_model_actor_per_gpu_node_and_the_rows_of_a_single_node_run(
        cluster, source, s3_server, tmp_path):
    from prefect.settings import PREFECT_API_URL
    from ray.util.state import list_actors

    c, gpu_nodes = cluster
    results = tmp_path / "cluster-results"
    env = {**subprocess_env(s3_server), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "RAY_ADDRESS": c.address}
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", "run", "--source", source, "--results", str(results),
         "--model", "placeholder", "--windows-per-unit", "2", "--batch-size", "4",
         "--actor-gpus", "1", "--model-actors", "2", "--actor-cpus", "0.5",
         "--decode-cpus", "0.5"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"^completed: 18 windows committed \(0 failed\)", proc.stdout, re.M), \
        proc.stdout[-2000:]

    actors = [a for a in list_actors(address=f"http://{c.head_node.webui_url}", detail=True,
                                     limit=10_000)
              if PREDICTOR_ACTOR in a.class_name]
    placed = sorted(a.node_id for a in actors)
    assert len(placed) == 2 and set(placed) == gpu_nodes, (placed, gpu_nodes)
    assert all(a.required_resources.get("GPU") == 1 for a in actors)

    # The same work on the session's single-node local Ray: the same rows (the fingerprint
    # ignores how work is spread, so it is the same too).
    single = tmp_path / "single-node"
    nightly(RunSettings(source=source, results=str(single), model="placeholder",
                        windows_per_unit=2, batch_size=4,
                        storage_options=s3_server.storage_options()))
    for table in ("windows", "predictions"):
        assert rows(results, table) == rows(single, table), table


def test_a_ray_client_address_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    from flows.cli.main import main

    monkeypatch.setenv("RAY_ADDRESS", "ray://ray-head:10001")
    (tmp_path / "src" / "dep").mkdir(parents=True)
    code = main(["run", "--source", str(tmp_path / "src"), "--results", str(tmp_path / "res"),
                 "--model", "placeholder"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err, err
    assert "RAY_ADDRESS=ray://ray-head:10001" in err and "Ray Client" in err
    assert not (tmp_path / "res").exists()  # refused before any work
