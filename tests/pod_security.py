"""The Kubernetes `restricted` Pod Security Standard, as its documentation states it.

https://kubernetes.io/docs/concepts/security/pod-security-standards/ lists the
controls of each profile; `restricted` is everything `baseline` forbids, and more.
``restricted_violations`` checks a Pod manifest (camelCase, as the API server gets
it) against the controls that concern Linux pods, and says what breaks each. It is
the tests' own reading of that page, to check the pods the DAGs ask for without a
cluster: Pod Security Admission does the same in one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Restricted: only these volume types (besides the name of the volume).
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Restricted: containers drop ALL capabilities and may add back only this one.
ADDABLE_CAPABILITIES = {"NET_BIND_SERVICE"}
SECCOMP_TYPES = {"RuntimeDefault", "Localhost"}
APPARMOR_TYPES = {"RuntimeDefault", "Localhost"}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def containers(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every container of the pod, init and ephemeral ones too, with where it sits."""
    for kind in ("containers", "initContainers", "ephemeralContainers"):
        for container in spec.get(kind) or []:
            yield f"{kind}[{container.get('name')}]", container


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What in ``pod`` the `restricted` profile refuses; empty if it admits the pod."""
    spec = pod.get("spec") or {}
    pod_context = spec.get("securityContext") or {}
    found = _pod_problems(pod, spec, pod_context)
    for where, container in containers(spec):
        found += [f"{where}: {problem}" for problem in _container_problems(container, pod_context)]
    return found


def _pod_problems(pod: dict[str, Any], spec: dict[str, Any], pod_context: dict[str, Any]) -> list[str]:
    found = []
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            found.append(f"spec.{key} is true: host namespaces are forbidden")
    for volume in spec.get("volumes") or []:
        kinds = set(volume) - {"name"}
        if "hostPath" in kinds:
            found.append(f"volume {volume.get('name')} is a hostPath")
        if kinds - ALLOWED_VOLUMES:
            found.append(f"volume {volume.get('name')} is of a type restricted forbids: {sorted(kinds)}")
    for sysctl in pod_context.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"sysctl {sysctl.get('name')} is not one of the safe set")
    for key, value in (pod.get("metadata", {}).get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
            value == "runtime/default" or value.startswith("localhost/")
        ):
            found.append(f"annotation {key} is {value!r}")
    found += _context_problems("spec.securityContext", pod_context)
    return found


def _container_problems(container: dict[str, Any], pod_context: dict[str, Any]) -> list[str]:
    """Restricted's rules on a container, which may leave to the pod's security context
    what that says (runAsNonRoot, the seccomp profile)."""
    context = container.get("securityContext") or {}
    found = _context_problems("securityContext", context)
    if context.get("privileged"):
        found.append("privileged")
    found += [f"hostPort {port['hostPort']}" for port in container.get("ports") or [] if port.get("hostPort")]
    if context.get("procMount") not in (None, "Default"):
        found.append(f"procMount is {context['procMount']}")
    if context.get("allowPrivilegeEscalation") is not False:
        found.append("allowPrivilegeEscalation is not false")
    non_root = context.get("runAsNonRoot")
    if non_root is False or (non_root is None and pod_context.get("runAsNonRoot") is not True):
        found.append("runAsNonRoot is not true, at the pod's level nor the container's")
    seccomp = (context.get("seccompProfile") or {}).get("type")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if seccomp is None and pod_seccomp not in SECCOMP_TYPES:
        found.append("no seccomp profile RuntimeDefault or Localhost, at the pod's level nor the container's")
    capabilities = context.get("capabilities") or {}
    if "ALL" not in (capabilities.get("drop") or []):
        found.append("capabilities do not drop ALL")
    if added := set(capabilities.get("add") or []) - ADDABLE_CAPABILITIES:
        found.append(f"capabilities add {sorted(added)}")
    return found


def _context_problems(where: str, context: dict[str, Any]) -> list[str]:
    """The rules on a pod's or a container's own security context."""
    found = []
    if (context.get("windowsOptions") or {}).get("hostProcess"):
        found.append(f"{where}.windowsOptions.hostProcess is true")
    if context.get("runAsUser") == 0:
        found.append(f"{where}.runAsUser is 0 (root)")
    seccomp = (context.get("seccompProfile") or {}).get("type")
    if seccomp is not None and seccomp not in SECCOMP_TYPES:
        found.append(f"{where}.seccompProfile.type is {seccomp}")
    apparmor = (context.get("appArmorProfile") or {}).get("type")
    if apparmor is not None and apparmor not in APPARMOR_TYPES:
        found.append(f"{where}.appArmorProfile.type is {apparmor}")
    selinux = context.get("seLinuxOptions") or {}
    if selinux.get("type") not in (None, *SELINUX_TYPES):
        found.append(f"{where}.seLinuxOptions.type is {selinux['type']}")
    for key in ("user", "role"):
        if selinux.get(key):
            found.append(f"{where}.seLinuxOptions.{key} is set")
    return found
