"""Checks the compose demo's configuration without running it: every file the services mount
exists and parses, and the addresses the services give each other name real services and ports.
"""

import sys
from pathlib import Path
from urllib.parse import urlsplit

import yaml

root = Path(__file__).resolve().parent.parent
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
services = compose["services"]
problems = []


def check(ok, problem):
    if not ok:
        problems.append(problem)


def host_port(url):
    parts = urlsplit(url if "://" in url else "//" + url)
    return parts.hostname, parts.port


configs = {}
for name, service in services.items():
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            path = root / source
            check(path.exists(), f"{name} mounts {source}, which does not exist")
            if path.is_file() and path.suffix in (".yml", ".yaml"):
                configs[source] = yaml.safe_load(path.read_text())

replicas = [n for n, s in services.items() if "BATON_LISTEN" in s.get("environment", {})]
check(len(replicas) >= 2, f"expected two Baton replicas, found {replicas}")

collector = configs.get("./deploy/otel-collector.yaml")
check(collector is not None, "the collector's configuration is not mounted")
if collector:
    pipeline = collector["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline.get(kind, []):
            check(component in collector.get(kind, {}), f"collector {kind[:-1]} `{component}` is not defined")
    grpc = collector["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    _, collector_port = host_port(grpc)
    for exporter in collector["exporters"].values():
        host, _ = host_port(exporter["endpoint"])
        check(host in services, f"the collector exports to `{host}`, not a service")

prometheus = configs.get("./deploy/prometheus.yml")
check(prometheus is not None, "Prometheus's configuration is not mounted")
if prometheus:
    targets = [t for job in prometheus["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]]
    check(sorted(h for h, _ in map(host_port, targets)) == sorted(replicas),
          f"Prometheus scrapes {targets}, not every replica {replicas}")
    for target in targets:
        host, port = host_port(target)
        if host in replicas:
            _, http_port = host_port(services[host]["environment"]["BATON_HTTP_LISTEN"])
            check(port == http_port, f"Prometheus scrapes {target}, but {host} serves HTTP on {http_port}")

for name in replicas:
    env = services[name]["environment"]
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    check(host in services, f"{name} exports spans to `{host}`, not a service")
    if collector:
        check(port == collector_port, f"{name} exports to port {port}, the collector listens on {collector_port}")
    host, _ = host_port(env["BATON_REDIS_URL"])
    check(host in services, f"{name} uses Redis at `{host}`, not a service")

for problem in problems:
    print(f"deploy: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
