"""The tests' reading of the `restricted` Pod Security Standard refuses what it should."""

from __future__ import annotations

import copy

import pytest
from pod_security import restricted_violations


def admitted() -> dict:
    """The smallest pod `restricted` admits, shaped as the DAGs' pods are."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "task", "namespace": "spaceflights"},
        "spec": {
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [
                {
                    "name": "base",
                    "image": "image",
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        "readOnlyRootFilesystem": True,
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def container_context(pod: dict) -> dict:
    return pod["spec"]["containers"][0]["securityContext"]


def test_the_smallest_restricted_pod_is_admitted():
    assert restricted_violations(admitted()) == []


def test_the_container_may_say_what_the_pod_does_not():
    pod = admitted()
    del pod["spec"]["securityContext"]
    container_context(pod).update(runAsNonRoot=True, seccompProfile={"type": "Localhost"})
    container_context(pod)["capabilities"]["add"] = ["NET_BIND_SERVICE"]
    assert restricted_violations(pod) == []


def spec_change(change):
    def apply(pod: dict) -> None:
        change(pod["spec"])

    return apply


def context_change(**values):
    def apply(pod: dict) -> None:
        container_context(pod).update(values)

    return apply


def drop_pod_key(key):
    def apply(pod: dict) -> None:
        del pod["spec"]["securityContext"][key]

    return apply


REFUSED = {
    "no security context at all": lambda pod: (
        pod["spec"].pop("securityContext"),
        pod["spec"]["containers"][0].pop("securityContext"),
    ),
    "runs as root": drop_pod_key("runAsNonRoot"),
    "runAsNonRoot false in the container": context_change(runAsNonRoot=False),
    "root user": context_change(runAsUser=0),
    "no seccomp profile": drop_pod_key("seccompProfile"),
    "unconfined seccomp": context_change(seccompProfile={"type": "Unconfined"}),
    "privilege escalation": context_change(allowPrivilegeEscalation=True),
    "privilege escalation unset": lambda pod: container_context(pod).pop("allowPrivilegeEscalation"),
    "capabilities kept": context_change(capabilities={}),
    "a capability added": context_change(capabilities={"drop": ["ALL"], "add": ["SYS_ADMIN"]}),
    "privileged": context_change(privileged=True),
    "unmasked /proc": context_change(procMount="Unmasked"),
    "custom SELinux type": context_change(seLinuxOptions={"type": "spc_t"}),
    "host network": spec_change(lambda spec: spec.update(hostNetwork=True)),
    "host PID": spec_change(lambda spec: spec.update(hostPID=True)),
    "host IPC": spec_change(lambda spec: spec.update(hostIPC=True)),
    "hostPath volume": spec_change(lambda spec: spec["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
    "gitRepo volume": spec_change(lambda spec: spec["volumes"].append({"name": "g", "gitRepo": {"repository": "r"}})),
    "host port": lambda pod: pod["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}]),
    "unsafe sysctl": spec_change(lambda spec: spec["securityContext"].update(sysctls=[{"name": "kernel.msgmax"}])),
    "an init container that escalates": spec_change(
        lambda spec: spec.update(initContainers=[{"name": "init", "image": "image"}])
    ),
}


@pytest.mark.parametrize("change", list(REFUSED))
def test_what_restricted_refuses_is_refused(change):
    pod = copy.deepcopy(admitted())
    REFUSED[change](pod)
    assert restricted_violations(pod), change
