"""The deployment kit agrees with itself and with the code: the KubeRay cluster runs the pinned Ray
and gives each GPU pod one GPU and one logical CPU; the Prefect Kubernetes work-pool template
renders (with Prefect's own templating) into a Job that runs the cluster's image in its
namespace, joins it at the head's GCS port - an address the pipeline accepts - and takes its
credentials from the same secrets."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = yaml.safe_load((ROOT / "infra" / "ray-cluster.yaml").read_text())
POOL = json.loads((ROOT / "infra" / "prefect-k8s-work-pool.json").read_text())


def containers(group: dict) -> list[dict]:
    return group["template"]["spec"]["containers"]


def secret_refs(container: dict) -> set[str]:
    return {ref["secretRef"]["name"] for ref in container.get("envFrom", [])}


def rendered_job() -> dict:
    from prefect.utilities.templating import apply_values

    defaults = {k: v.get("default") for k, v in POOL["variables"]["properties"].items()}
    return apply_values(POOL["job_configuration"], defaults)


def test_the_cluster_runs_the_pinned_ray_and_one_gpu_per_model_pod():
    pin = re.search(r"^ray\[[^\]]*\]==([\d.]+)", (ROOT / "requirements.txt").read_text(), re.M)
    assert CLUSTER["spec"]["rayVersion"] == pin.group(1)
    groups = {g["groupName"]: g for g in CLUSTER["spec"]["workerGroupSpecs"]}
    gpu = containers(groups["gpu"])[0]["resources"]
    assert gpu["limits"]["nvidia.com/gpu"] == 1 == gpu["requests"]["nvidia.com/gpu"]
    assert groups["gpu"]["rayStartParams"]["num-cpus"] == "1"
    assert "nvidia.com/gpu" not in containers(groups["cpu"])[0]["resources"]["limits"]
    # Every Ray pod opens the audio (decode) or may, so every one has the S3 credentials.
    for group in [CLUSTER["spec"]["headGroupSpec"], *groups.values()]:
        assert "dawnchorus-s3" in secret_refs(containers(group)[0])


def test_every_placeholder_of_the_work_pool_template_is_a_variable():
    from prefect.utilities.templating import find_placeholders

    names = {p.name for p in find_placeholders(POOL["job_configuration"])}
    assert names == set(POOL["variables"]["properties"]), names


def test_a_flow_run_job_joins_the_cluster_it_is_deployed_beside(monkeypatch):
    from flows.pipeline.ray_engine import check_ray_address

    job = rendered_job()
    manifest = job["job_manifest"]
    pod = manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert (manifest["apiVersion"], manifest["kind"]) == ("batch/v1", "Job")
    assert pod["restartPolicy"] == "Never" and manifest["spec"]["backoffLimit"] == 0
    assert container["name"] == "prefect-job"  # the name Prefect's Kubernetes worker requires
    head = containers(CLUSTER["spec"]["headGroupSpec"])[0]
    assert container["image"] == head["image"]
    assert manifest["metadata"]["namespace"] == CLUSTER["metadata"]["namespace"]
    host, port = job["env"]["RAY_ADDRESS"].rsplit(":", 1)
    assert host == f"{CLUSTER['metadata']['name']}-head-svc"
    assert int(port) in {p["containerPort"] for p in head["ports"] if p["name"] == "gcs-server"}
    monkeypatch.setenv("RAY_ADDRESS", job["env"]["RAY_ADDRESS"])
    check_ray_address()  # an address the pipeline accepts
    assert secret_refs(container) >= {"dawnchorus-s3", "dawnchorus-catalog"}
    assert not any(re.search("KEY|SECRET|PASSWORD", k) for k in job["env"])
