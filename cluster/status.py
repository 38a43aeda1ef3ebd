"""What `ragtune status` shows: nodes, resources per tier, jobs and Serve applications."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def gather_status(dashboard_url: str | None) -> dict[str, Any]:
    """Collect the state of the connected Ray cluster (call inside a Ray session)."""
    import ray

    nodes = [
        {
            "node_id": node["NodeID"][:12],
            "address": node["NodeManagerAddress"],
            "alive": node["Alive"],
            "resources": node["Resources"],
        }
        for node in ray.nodes()
    ]
    total, available = ray.cluster_resources(), ray.available_resources()
    tiers: dict[str, dict[str, float]] = defaultdict(dict)
    for node in nodes:
        if not node["alive"]:
            continue
        for name in node["resources"]:
            if name.startswith("tier:"):
                tier = tiers[name.removeprefix("tier:")]
                tier["nodes"] = tier.get("nodes", 0) + 1
                for key in ("CPU", "GPU"):
                    tier[key] = tier.get(key, 0) + node["resources"].get(key, 0)
    return {
        "nodes": nodes,
        "tiers": dict(tiers),
        "cpu": {"total": total.get("CPU", 0), "available": available.get("CPU", 0)},
        "gpu": {"total": total.get("GPU", 0), "available": available.get("GPU", 0)},
        "jobs": _jobs(dashboard_url),
        "serve_apps": _serve_apps(),
    }


def format_status(status: dict[str, Any]) -> str:
    """Render gathered status as a short human-readable report."""
    lines = [
        f"CPU {status['cpu']['available']:g}/{status['cpu']['total']:g} free, "
        f"GPU {status['gpu']['available']:g}/{status['gpu']['total']:g} free",
        "nodes:",
    ]
    for node in status["nodes"]:
        state = "alive" if node["alive"] else "dead"
        res = node["resources"]
        lines.append(
            f"  {node['node_id']} {node['address']} {state} "
            f"CPU={res.get('CPU', 0):g} GPU={res.get('GPU', 0):g} "
            f"memory={res.get('memory', 0) / 2**30:.1f}GiB"
        )
    lines.append("tiers:")
    for name, tier in sorted(status["tiers"].items()):
        lines.append(f"  {name}: {tier['nodes']:g} node(s), CPU={tier['CPU']:g}, GPU={tier['GPU']:g}")
    lines.append("jobs:" + ("" if status["jobs"] else " none"))
    for job in status["jobs"]:
        lines.append(f"  {job['id']} {job['status']} {job['entrypoint']}")
    lines.append("serve apps:" + ("" if status["serve_apps"] else " none"))
    for app in status["serve_apps"]:
        lines.append(f"  {app['name']} {app['status']} ({app['deployments']} deployments)")
    return "\n".join(lines)


def _jobs(dashboard_url: str | None) -> list[dict[str, str]]:
    if not dashboard_url:
        return []
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(dashboard_url)
    return [
        {
            "id": job.submission_id or job.job_id or "?",
            "status": str(job.status),
            "entrypoint": job.entrypoint,
        }
        for job in client.list_jobs()
        if job.type.name == "SUBMISSION"
    ]


def _serve_apps() -> list[dict[str, Any]]:
    from ray import serve

    # serve.status() is empty, and starts nothing, when Serve is not running.
    return [
        {"name": name, "status": str(app.status), "deployments": len(app.deployments)}
        for name, app in serve.status().applications.items()
    ]
