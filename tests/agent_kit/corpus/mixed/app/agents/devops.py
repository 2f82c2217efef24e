"""DevOps agent: pushes releases, restarts services, cleans workspaces."""

import os
import subprocess

from agents import Agent, function_tool
from kubernetes import client as k8s


def push_release(tag: str) -> str:
    """Push a release tag to the main repository."""
    subprocess.run(["git", "push", "origin", tag], check=True)
    return tag


def restart_service(name: str) -> str:
    """Restart a service's pods."""
    apps = k8s.AppsV1Api()
    body = {"spec": {"template": {"metadata": {"annotations": {"restartedAt": "now"}}}}}
    apps.patch_namespaced_deployment(name, "prod", body)
    return name


def cleanup_workspace(path: str) -> str:
    """Remove a build workspace."""
    os.system(f"rm -rf {path}")
    return path


def build_status(job: str) -> str:
    """Status of a CI job."""
    return subprocess.run(["ci", "status", job], capture_output=True, text=True).stdout


devops = Agent(
    name="DevOps",
    tools=[
        function_tool(push_release, needs_approval=True),
        function_tool(restart_service),
        function_tool(cleanup_workspace),
        function_tool(build_status),
    ],
)
