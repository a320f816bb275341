"""Checks what the schemas cannot in rendered Kubernetes manifests (one file per overlay, from
`kubectl kustomize`): Baton runs non-root on a read-only root filesystem, probed on /healthz and
/readyz, with resource requests, a PodDisruptionBudget, Services that name real container ports,
and every volume it mounts defined from a ConfigMap or Secret the manifests make or document.
"""

import sys
from pathlib import Path

import yaml

problems = []


def check(ok, problem):
    if not ok:
        problems.append(problem)


for path in sys.argv[1:]:
    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    kinds = {}
    for d in docs:
        kinds.setdefault(d["kind"], []).append(d)
    deployments = kinds.get("Deployment", [])
    check(len(deployments) == 1, f"{path}: expected one Deployment, found {len(deployments)}")
    check(len(kinds.get("PodDisruptionBudget", [])) == 1, f"{path}: no PodDisruptionBudget")
    config_maps = {c["metadata"]["name"]: c for c in kinds.get("ConfigMap", [])}
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        check(pod.get("securityContext", {}).get("runAsNonRoot") is True, f"{path}: the pod may run as root")
        (container,) = pod["containers"]
        security = container.get("securityContext", {})
        check(security.get("readOnlyRootFilesystem") is True, f"{path}: the root filesystem is writable")
        check(security.get("allowPrivilegeEscalation") is False, f"{path}: privilege escalation allowed")
        check(security.get("capabilities", {}).get("drop") == ["ALL"], f"{path}: capabilities are not all dropped")
        check(container.get("readinessProbe", {}).get("httpGet", {}).get("path") == "/readyz", f"{path}: readiness is not /readyz")
        check(container.get("livenessProbe", {}).get("httpGet", {}).get("path") == "/healthz", f"{path}: liveness is not /healthz")
        requests = container.get("resources", {}).get("requests", {})
        check("cpu" in requests and "memory" in requests, f"{path}: no CPU and memory requests")
        ports = {p["name"] for p in container["ports"]}
        for service in kinds.get("Service", []):
            for port in service["spec"]["ports"]:
                check(port["targetPort"] in ports, f"{path}: Service {service['metadata']['name']} targets `{port['targetPort']}`, no container port")
        volumes = {v["name"]: v for v in pod["volumes"]}
        for mount in container["volumeMounts"]:
            check(mount["name"] in volumes, f"{path}: mount {mount['name']} has no volume")
        for volume in volumes.values():
            if "configMap" in volume:
                check(volume["configMap"]["name"] in config_maps, f"{path}: ConfigMap {volume['configMap']['name']} is not in the manifests")
        args = container.get("args", [])
        config = args[args.index("--config") + 1] if "--config" in args else None
        check(config is not None, f"{path}: serve is not given the configuration file")
        if config:
            mount = next((m for m in container["volumeMounts"] if config.startswith(m["mountPath"] + "/")), None)
            check(mount is not None, f"{path}: {config} is on no mount")
            if mount:
                source = volumes[mount["name"]].get("configMap", {}).get("name")
                data = config_maps.get(source, {}).get("data", {})
                check(Path(config).name in data, f"{path}: ConfigMap {source} holds no {Path(config).name}")

if problems:
    sys.exit("kubernetes: " + "\n".join(problems))
