"""Checks the compose demo's configuration without running it: every file the services mount
exists and parses, and the addresses the services give each other name real services and ports.
"""

import re
import sys
import tomllib
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

# The replicas run the image's `serve`; the keygen step shares their environment to check it.
replicas = [n for n, s in services.items()
            if "BATON_LISTEN" in s.get("environment", {}) and "entrypoint" not in s]
check(len(replicas) >= 2, f"expected two Baton replicas, found {replicas}")

# One build of the image; every other Baton service runs what it built.
builders = [n for n, s in services.items() if "build" in s]
check(len(builders) == 1, f"the image is built by {builders}, not once")

# Host ports: none published twice, none on the CLI's default admin address (a forgotten
# BATON_ADMIN_SERVER would reach a decision port), admin ports on the host's loopback only.
CLI_ADMIN_PORT = 50052
published = {}
for name, service in services.items():
    for mapping in service.get("ports", []):
        parts = str(mapping).split(":")
        host_ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        host_port_, container_port = int(parts[-2]), int(parts[-1].split("/")[0])
        check(host_port_ not in published, f"host port {host_port_} is published by {published.get(host_port_)} and {name}")
        published[host_port_] = name
        check(host_port_ != CLI_ADMIN_PORT, f"{name} publishes {CLI_ADMIN_PORT}, the CLI's default admin address")
        if name in replicas:
            _, admin_port = host_port(service["environment"].get("BATON_ADMIN_LISTEN", ""))
            if container_port == admin_port:
                check(host_ip == "127.0.0.1", f"{name} publishes its admin port on {host_ip}, not the host's loopback")

for name in replicas:
    test = services[name].get("healthcheck", {}).get("test", [])
    check(test[:3] == ["CMD", "baton", "health"], f"{name} has no `baton health` healthcheck")
check("baton config check" in str(services.get("keygen", {}).get("command", "")),
      "the keygen step does not check the replicas' configuration (`baton config check`)")
def baton_env(service):
    return {k: v for k, v in service.get("environment", {}).items() if k.startswith("BATON_")}


for name in replicas:
    check(baton_env(services.get("keygen", {})) == baton_env(services[name]),
          f"the keygen step checks another BATON_ environment than {name}'s")

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
    for job in prometheus["scrape_configs"]:
        check(job.get("scheme") == "https" and "ca_file" in job.get("tls_config", {}),
              f"Prometheus job {job['job_name']} must scrape over HTTPS, trusting the demo CA")

# TLS on every Baton port with the demo CA that the keygen step makes (`baton demo-pki`), and
# the gateway certificate that CA issues to Envoy known as a gateway.
DEMO_PKI = "/keys/pki"
ENVOY_SPIFFE = "spiffe://corp.example/gateway/envoy"
keygen = services.get("keygen", {})
check("demo-pki" in str(keygen.get("command", "")) and DEMO_PKI in str(keygen.get("command", "")),
      f"the keygen service must make the demo CA in {DEMO_PKI} (`baton demo-pki`)")
for name in replicas:
    env = services[name]["environment"]
    for variable in ("BATON_TLS_CERT", "BATON_TLS_KEY", "BATON_CLIENT_CA"):
        check(str(env.get(variable, "")).startswith(DEMO_PKI + "/"), f"{name}: {variable} is not a file of the demo CA")
    check(ENVOY_SPIFFE in str(env.get("BATON_GATEWAY_CERTS", "")),
          f"{name}: BATON_GATEWAY_CERTS does not know Envoy's certificate ({ENVOY_SPIFFE})")
    check(any(v.split(":")[0] == "keys" for v in services[name].get("volumes", [])),
          f"{name} does not mount the keys volume the demo CA is in")

for name in replicas:
    env = services[name]["environment"]
    host, port = host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    check(host in services, f"{name} exports spans to `{host}`, not a service")
    if collector:
        check(port == collector_port, f"{name} exports to port {port}, the collector listens on {collector_port}")
    host, _ = host_port(env["BATON_REDIS_URL"])
    check(host in services, f"{name} uses Redis at `{host}`, not a service")

# Redis keeps what it holds across restarts: an append-only file on a named volume.
redis_command = services.get("redis", {}).get("command", [])
check("--appendonly" in redis_command and redis_command[redis_command.index("--appendonly") + 1] == "yes",
      "the compose Redis runs without an append-only file, so a restart empties it")
redis_volumes = [v.split(":") for v in services.get("redis", {}).get("volumes", [])]
check(any(len(v) >= 2 and v[1] == "/data" and v[0] in compose.get("volumes", {}) for v in redis_volumes),
      "the compose Redis keeps /data on no named volume")

# Envoy in front of an agent, with Baton as its external authorizer.
def mounted(service, target):
    """The repository file `service` mounts at `target`, if any."""
    for volume in services[service].get("volumes", []):
        parts = volume.split(":")
        if len(parts) >= 2 and parts[1] == target and parts[0].startswith("."):
            return root / parts[0]
    return None


def bundle_names(bundle):
    """The entity types and actions the bundle's schemas declare."""
    text = "\n".join(p.read_text() for p in bundle.glob("*.cedarschema"))
    types = set(re.findall(r"^\s*entity\s+(\w+)", text, re.M))
    actions = set()
    for declared in re.findall(r"^\s*action\s+(.+?)\s+appliesTo", text, re.M | re.S):
        actions.update(a.strip().strip('"') for a in declared.split(","))
    return types, actions


gateway_tokens = {}
for name in replicas:
    env = services[name]["environment"]
    for variable in ("BATON_GATEWAY_TOKENS", "BATON_GATEWAY_MAPPING"):
        path = mounted(name, env.get(variable, ""))
        check(path is not None and path.is_file(), f"{name}: {variable} names no mounted file")
    tokens = mounted(name, env.get("BATON_GATEWAY_TOKENS", ""))
    if tokens and tokens.is_file():
        for line in tokens.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line:
                gateway, token = line.split()
                check(len(token) >= 16, f"gateway `{gateway}`'s token is under 16 characters")
                gateway_tokens[token] = gateway
    mapping = mounted(name, env.get("BATON_GATEWAY_MAPPING", ""))
    if mapping and mapping.is_file():
        parsed = tomllib.loads(mapping.read_text())
        check(set(parsed) <= {"envoy", "authzen"}, f"{mapping.name} has unknown tables {set(parsed)}")

types, actions = bundle_names(root / "policies")
envoys = [n for n, s in services.items() if str(s.get("image", "")).startswith("envoyproxy/envoy")]
check(len(envoys) == 1, f"expected one Envoy service, found {envoys}")
for name in envoys:
    path = mounted(name, "/etc/envoy/envoy.yaml")
    check(path is not None, f"{name} mounts no /etc/envoy/envoy.yaml")
    if path is None:
        continue
    envoy = yaml.safe_load(path.read_text())
    clusters = {c["name"]: c for c in envoy["static_resources"]["clusters"]}
    for cluster in clusters.values():
        for group in cluster["load_assignment"]["endpoints"]:
            for endpoint in group["lb_endpoints"]:
                address = endpoint["endpoint"]["address"]["socket_address"]
                check(address["address"] in services, f"Envoy cluster {cluster['name']} sends to `{address['address']}`, not a service")
    for listener in envoy["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network in chain["filters"]:
                hcm = network["typed_config"]
                check(hcm.get("normalize_path") is True and hcm.get("merge_slashes") is True,
                      "Envoy must normalize paths: Baton refuses any path it does not")
                filters = [f["name"] for f in hcm["http_filters"]]
                check(filters[-1:] == ["envoy.filters.http.router"], "the router must be Envoy's last HTTP filter")
                check("envoy.filters.http.ext_authz" in filters, "Envoy does not ask Baton (no ext_authz filter)")
                for f in hcm["http_filters"]:
                    if f["name"] != "envoy.filters.http.ext_authz":
                        continue
                    authz = f["typed_config"]
                    check(authz.get("transport_api_version") == "V3", "ext_authz must speak the v3 API")
                    check(authz.get("failure_mode_allow") is False, "ext_authz must fail closed")
                    grpc = authz["grpc_service"]
                    baton = clusters.get(grpc["envoy_grpc"]["cluster_name"])
                    check(baton is not None, "ext_authz names no defined cluster")
                    if baton:
                        check("http2_protocol_options" in str(baton), "the Baton cluster must speak HTTP/2 (gRPC)")
                        tls = baton.get("transport_socket", {}).get("typed_config", {})
                        common = tls.get("common_tls_context", {})
                        check("UpstreamTlsContext" in str(tls.get("@type")), "Envoy must reach Baton over TLS")
                        files = [c.get("certificate_chain", {}).get("filename", "") for c in common.get("tls_certificates", [])]
                        files += [c.get("private_key", {}).get("filename", "") for c in common.get("tls_certificates", [])]
                        files.append(common.get("validation_context", {}).get("trusted_ca", {}).get("filename", ""))
                        check(len(files) == 3 and all(files), "Envoy must present a client certificate and verify Baton's against a CA")
                        envoy_keys = [v.split(":")[1] for v in services[name].get("volumes", []) if v.split(":")[0] == "keys"]
                        for f in files:
                            check(any(f.startswith(m + "/pki/") for m in envoy_keys),
                                  f"Envoy's TLS file {f} is not in the demo CA's directory of a mounted keys volume")
                        for group in baton["load_assignment"]["endpoints"]:
                            for endpoint in group["lb_endpoints"]:
                                address = endpoint["endpoint"]["address"]["socket_address"]
                                host = address["address"]
                                check(host in replicas, f"ext_authz asks `{host}`, not a Baton replica")
                                if host in replicas:
                                    _, port = host_port(services[host]["environment"]["BATON_LISTEN"])
                                    check(address["port_value"] == port, f"ext_authz asks {host}:{address['port_value']}, Baton listens on {port}")
                    bearer = [m["value"] for m in grpc.get("initial_metadata", []) if m["key"] == "authorization"]
                    check(len(bearer) == 1 and bearer[0].removeprefix("Bearer ") in gateway_tokens,
                          "Envoy presents no gateway token of deploy/gateway-tokens")
                for host in hcm["route_config"]["virtual_hosts"]:
                    for route in host["routes"]:
                        check(route["route"]["cluster"] in clusters, f"route {route['match']} sends to an undefined cluster")
                        per_route = route.get("typed_per_filter_config", {}).get("envoy.filters.http.ext_authz", {})
                        extensions = per_route.get("check_settings", {}).get("context_extensions", {})
                        for key in ("baton.caller", "baton.callee"):
                            if key in extensions:
                                kind = extensions[key].split(":")[0]
                                check(kind in types, f"route {route['match']}: {key} `{extensions[key]}` is no type of the bundle")
                        for scope in re.split(r"[ ,]+", extensions.get("baton.scopes", "").strip()):
                            if scope:
                                check(scope in actions, f"route {route['match']}: scope `{scope}` is no action of the bundle")

for problem in problems:
    print(f"deploy: {problem}", file=sys.stderr)
sys.exit(1 if problems else 0)
