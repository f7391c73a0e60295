"""The deployment files hold together without Docker: the Grafana dashboard queries only series the API
exports (with labels and route templates it really uses), docker-compose.yml's settings name the origins
and addresses its proxy serves, every long-running service has a healthcheck, and nginx accepts the proxy
config (and its stripping variant)."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import (
    API_BASE,
    DEMO_API_KEY,
    DEMO_API_SECRET,
    SPA_ORIGIN,
    as_app_role,
    make_settings,
    sign_in_through,
)
from tests.procs import ROOT
from tests.support.agents import build_runtime
from tests.topology.deployment import (
    NGINX,
    NO_NGINX,
    PROXY_TEMPLATE,
    make_certificate,
    nginx_main_config,
    render_proxy_config,
    stripping_forwarded_headers,
    template_variables,
)
from tradedesk.kit.clock import ManualClock, ReferencedClock
from tradedesk.main import create_app
from tradedesk.metrics.agents import WorkerMetrics

DASHBOARD = ROOT / "deploy" / "grafana" / "tradedesk.json"
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
METRICS_TOKEN = "dashboard-test-token-0123456789"
# Series Prometheus makes itself for every target, and the labels it puts on every series it scrapes.
PROMETHEUS_SERIES: dict[str, set[str]] = {"up": set()}
PROMETHEUS_LABELS = {"job", "instance"}
ONE_SHOT_JOBS = {"migrate", "certs"}

_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*,?')


# -- the dashboard ------------------------------------------------------------------------------------


def dashboard_queries(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets and template-variable queries."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "definition") and isinstance(value, str):
                yield value
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                yield value["query"]
            else:
                yield from dashboard_queries(value)
    elif isinstance(node, list):
        for item in node:
            yield from dashboard_queries(item)


def selectors(expr: str) -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """``metric{label op "value", …}`` selectors of an expression; values may hold braces (route templates)."""
    for match in _SELECTOR.finditer(expr):
        position, matchers = match.end(), []
        while not expr[position:].lstrip().startswith("}"):
            matcher = _MATCHER.match(expr, position)
            assert matcher, f"cannot read the selector at {expr[match.start() :]!r}"
            matchers.append((matcher.group(1), matcher.group(2), matcher.group(3)))
            position = matcher.end()
        yield match.group(1), matchers


@dataclass
class Exported:
    """What the API's /metrics offers: each series name with the labels seen on it, and the route templates
    its ``route`` label takes."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    routes: set[str] = field(default_factory=set)

    def add(self, text: str) -> None:
        for family in text_string_to_metric_families(text):
            suffixes = {
                "histogram": ("_bucket", "_count", "_sum", "_created"),
                "counter": ("_total", "_created"),
            }
            for suffix in suffixes.get(family.type, ("",)):
                self.labels.setdefault(family.name + suffix, set())
            for sample in family.samples:
                self.labels.setdefault(sample.name, set()).update(sample.labels)


async def scrape(client: httpx.AsyncClient) -> str:
    answer = await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert answer.status_code == 200, answer.text
    return answer.text


@pytest.fixture
async def exported(
    fresh_database: str,
    redis_prefix: str,
    clock: ManualClock,
    kitesim: object,
    kite_client: httpx.AsyncClient,
) -> Exported:
    """/metrics of the API after traffic that gives every labelled family a sample: requests, a sign-in
    (broker calls), a refused request token (a broker error), and a session read from an instance whose
    Redis is unreachable (a session store error)."""
    # A scrape is quick: time-boxed, so a store that hangs on an unreachable Redis fails here, visibly.
    async with asyncio.timeout(60):
        found = Exported()
        settings = make_settings(
            as_app_role(fresh_database), redis_prefix=redis_prefix, metrics_token=METRICS_TOKEN
        )
        app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        found.routes = set(app.openapi()["paths"])
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url=API_BASE, headers={"Origin": SPA_ORIGIN}
            ) as client,
        ):
            assert (await client.get("/healthz")).status_code == 200
            await sign_in_through(client, kite_client, "DEMO01")
            refused = await client.post(
                "/api/auth/authenticate",
                json={
                    "api_key": DEMO_API_KEY,
                    "api_secret": DEMO_API_SECRET,
                    "request_token": "not-a-request-token",
                },
            )
            assert refused.status_code >= 400
            found.add(await scrape(client))
            cookies = client.cookies
        cut_off = create_app(
            settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}),
            clock=clock,
            kite_transport=httpx.ASGITransport(app=kitesim),  # type: ignore[arg-type]
        )
        async with (
            cut_off.router.lifespan_context(cut_off),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=cut_off), base_url=API_BASE, cookies=cookies
            ) as client,
        ):
            assert (await client.get("/api/auth/status")).status_code == 503
            found.add(await scrape(client))
        # What a worker exports, with one of each observation so that every labelled family has a sample.
        worker_app = create_app(settings, clock=clock, kite_transport=httpx.ASGITransport(app=kitesim))  # type: ignore[arg-type]
        state = worker_app.state.td
        # A worker on the system clock follows the database's (ReferencedClock), which adds the skew gauge.
        database_clock = ReferencedClock(lambda: asyncio.sleep(0, clock.now()))
        worker = WorkerMetrics(
            build_runtime(worker_app), engine=state.engine, kite=state.kite, clock=database_clock
        )
        worker.agents.order_answered("sent", 0.05)
        worker.agents.dropped("lease lost")
        worker.broker.observe("/orders", 0.01, "BrokerTimeout")
        found.add((await worker.exposition()).decode("utf-8"))
        await state.kite.aclose()
        await state.engine.dispose()
        await state.sessions.store.close()
    return found


async def test_the_dashboard_queries_only_series_the_api_exports(exported: Exported) -> None:
    queries = list(dashboard_queries(json.loads(DASHBOARD.read_text())))
    assert len(queries) > 20
    known = {**exported.labels, **PROMETHEUS_SERIES}
    for expr in queries:
        for name in re.findall(r"\btradedesk_[a-z0-9_]+", expr):
            assert name in exported.labels, (
                f"the dashboard queries {name}, which the API does not export ({expr})"
            )
        series = []
        for name, matchers in selectors(expr):
            assert name in known, f"{name} is neither the API's nor Prometheus's own ({expr})"
            series.append(name)
            for label, operator, value in matchers:
                assert label in known[name] | PROMETHEUS_LABELS, f"{name} has no label {label} ({expr})"
                if label == "route" and operator in ("=", "!="):
                    assert value in exported.routes, f"there is no route {value} ({expr})"
                elif label == "route":
                    assert any(re.fullmatch(value, route) for route in exported.routes), f"{value}: no route"
                elif label == "status" and operator == "=":
                    assert value in {"1xx", "2xx", "3xx", "4xx", "5xx"}, expr
                elif label == "method" and operator == "=":
                    assert value in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, expr
        grouped = set()
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            grouped |= {label.strip() for label in group.split(",") if label.strip()}
        offered = set().union(*(known[name] for name in series)) | PROMETHEUS_LABELS | {"le"}
        assert grouped <= offered, f"grouped by {grouped - offered}, which none of {series} has ({expr})"


# -- docker-compose.yml ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def origin(port: str) -> str:
    return f"https://localhost:{port}"


def flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def address(service: dict[str, Any]) -> str:
    return str(service["networks"]["default"]["ipv4_address"])


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "postgres",
        "redis",
        "migrate",
        "certs",
        "api-1",
        "api-2",
        "worker-1",
        "worker-2",
        "kitesim",
        "spa",
    }
    assert set(services) >= expected | {"proxy"}
    for name, service in services.items():
        if name not in ONE_SHOT_JOBS:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    # Sessions survive a Redis restart: the append-only file is on, on a volume.
    command = services["redis"]["command"]
    assert flag(command, "--appendonly") == "yes"
    assert any(volume.endswith(":/data") for volume in services["redis"]["volumes"])
    # Agents run in two named workers, never in the API instances; each worker's healthcheck reads the
    # alive file that worker touches.
    workers = {name: spec for name, spec in services.items() if name.startswith("worker-")}
    assert (
        {spec["environment"]["TRADEDESK_AGENT_RUNTIME_ID"] for spec in workers.values()}
        == set(workers)
        == {
            "worker-1",
            "worker-2",
        }
    )
    for spec in workers.values():
        assert spec["command"] == ["python", "-m", "tradedesk.agents.worker"]
        alive = spec["environment"]["TRADEDESK_AGENT_ALIVE_FILE"]
        assert alive in " ".join(spec["healthcheck"]["test"])
    for name in ("api-1", "api-2"):
        assert services[name]["environment"]["TRADEDESK_AGENT_RUNTIME"] == "off"
    # Nothing but the proxy (and kitesim's login page through it) is published.
    assert [name for name, spec in services.items() if spec.get("ports")] == [
        "proxy",
        "prometheus",
        "grafana",
    ]


def test_the_settings_name_the_origins_the_proxy_serves(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy = services["proxy"]["environment"]
    spa, api, kite = (origin(proxy[key]) for key in ("TD_SPA_LISTEN", "TD_API_LISTEN", "TD_KITE_LISTEN"))
    published = {mapping.rsplit(":", 1)[1] for mapping in services["proxy"]["ports"]}
    assert published == {proxy["TD_SPA_LISTEN"], proxy["TD_API_LISTEN"], proxy["TD_KITE_LISTEN"]}
    env = services["api-1"]["environment"]
    assert services["api-2"]["environment"] == env
    for name in ("migrate", "worker-1", "worker-2"):
        shared = {k: v for k, v in services[name]["environment"].items() if k in env}
        assert shared == {k: env[k] for k in shared}, f"{name} disagrees with the API instances"
    assert env["TRADEDESK_CORS_ORIGINS"] == spa
    assert env["TRADEDESK_SPA_URL"] == spa
    assert env["TRADEDESK_API_PUBLIC_URL"] == api
    assert env["TRADEDESK_KITE_LOGIN_URL"] == f"{kite}/connect/login"
    assert env["TRADEDESK_COOKIE_SECURE"] == "true"
    assert env["TRADEDESK_AGENT_RUNTIME"] == "off"
    hosts = env["TRADEDESK_ALLOWED_HOSTS"].split(",")
    assert urlsplit(api).hostname in hosts and "*" not in hosts
    assert services["kitesim"]["environment"]["KITESIM_REDIRECT_URL"] == f"{api}/api/auth/callback"
    # The SPA, built into the image, calls the API where the API says it lives.
    spa_command = services["spa"]["command"]
    assert spa_command[:3] == ["python", "-m", "tradedesk.spa"]
    assert flag(spa_command, "--api-url") == api
    assert flag(spa_command, "--dist") == "/app/frontend/dist"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "npm ci" in dockerfile and "npm run build" in dockerfile
    assert "COPY --from=spa /spa/dist ./frontend/dist" in dockerfile
    assert "frontend/node_modules" in (ROOT / ".dockerignore").read_text()
    # Only the proxy may name the client.
    trusted = [ipaddress.ip_network(cidr) for cidr in env["TRADEDESK_TRUSTED_PROXIES"].split(",")]
    assert [network.num_addresses for network in trusted] == [1]
    assert ipaddress.ip_address(address(services["proxy"])) in trusted[0]


def test_the_proxy_reaches_each_service_at_its_fixed_address(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy = services["proxy"]["environment"]
    assert set(proxy) - {"NGINX_ENVSUBST_FILTER"} == template_variables(PROXY_TEMPLATE.read_text())
    assert proxy["NGINX_ENVSUBST_FILTER"] == "^TD_"
    assert proxy["TD_API_1"] == f"{address(services['api-1'])}:8000"
    assert proxy["TD_API_2"] == f"{address(services['api-2'])}:8000"
    assert (
        proxy["TD_SPA_UPSTREAM"] == f"{address(services['spa'])}:{flag(services['spa']['command'], '--port')}"
    )
    assert (
        proxy["TD_KITE_UPSTREAM"]
        == f"{address(services['kitesim'])}:{flag(services['kitesim']['command'], '--port')}"
    )
    # Fixed addresses: distinct, inside the subnet, outside the range Docker hands out by itself.
    ipam = compose["networks"]["default"]["ipam"]["config"][0]
    subnet, dynamic = ipaddress.ip_network(ipam["subnet"]), ipaddress.ip_network(ipam["ip_range"])
    fixed = [ipaddress.ip_address(address(s)) for s in services.values() if "networks" in s]
    assert len(set(fixed)) == len(fixed) == 5
    assert all(ip in subnet and ip not in dynamic for ip in fixed)
    # The template is rendered over the image's default site; the certificate comes from the certs job.
    (mount,) = services["proxy"]["configs"]
    assert compose["configs"][mount["source"]]["file"] == "./deploy/nginx/tradedesk.conf.template"
    assert mount["target"] == "/etc/nginx/templates/default.conf.template"
    (tls,) = services["proxy"]["volumes"]
    volume, target, _ = tls.split(":")
    assert proxy["TD_TLS_CERT"] == f"{target}/cert.pem" and proxy["TD_TLS_KEY"] == f"{target}/key.pem"
    assert f"{volume}:{flag(services['certs']['command'], '--out')}" in services["certs"]["volumes"]
    assert "--cacert" in services["proxy"]["healthcheck"]["test"][1]
    assert services["proxy"]["depends_on"]["certs"]["condition"] == "service_completed_successfully"


def test_files_the_compose_file_names_exist(compose: dict[str, Any]) -> None:
    for config in compose["configs"].values():
        if "file" in config:
            assert (ROOT / config["file"]).is_file(), config["file"]
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
    # Prometheus scrapes each API instance under a name the instances answer to, and each worker on the
    # port it listens on for metrics, bound where this network reaches it.
    prometheus = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]}
    assert jobs["tradedesk-api"] == ["api-1:8000", "api-2:8000"]
    allowed = compose["services"]["api-1"]["environment"]["TRADEDESK_ALLOWED_HOSTS"].split(",")
    assert {target.split(":")[0] for target in jobs["tradedesk-api"]} <= set(allowed)
    workers = sorted(name for name in compose["services"] if name.startswith("worker-"))
    assert workers == ["worker-1", "worker-2"]
    for target in jobs["tradedesk-worker"]:
        host, port = target.split(":")
        environment = compose["services"][host]["environment"]
        assert environment["TRADEDESK_METRICS_PORT"] == port
        assert environment["TRADEDESK_METRICS_HOST"] == "0.0.0.0"
    assert sorted(target.split(":")[0] for target in jobs["tradedesk-worker"]) == workers


# -- the proxy config -----------------------------------------------------------------------------------


def test_the_proxy_overwrites_forwarded_headers_and_keeps_metrics_private() -> None:
    template = re.sub(r"#.*", "", PROXY_TEMPLATE.read_text())
    # Set once, at the top level: a location with any proxy_set_header of its own would drop them all.
    assert re.findall(r"proxy_set_header X-Forwarded-For (\S+);", template) == ["$remote_addr"]
    assert re.findall(r"proxy_set_header X-Forwarded-Proto (\S+);", template) == ["$scheme"]
    assert "$proxy_add_x_forwarded_for" not in template
    # At or above the API's own limits, so the API's JSON 413/431 answers are what a client sees.
    assert "client_max_body_size 64k;" in template and "large_client_header_buffers 4 16k;" in template
    assert all(
        not block.count("proxy_set_header") for block in re.findall(r"location[^{]*\{[^}]*\}", template)
    )
    assert re.search(r"location = /metrics \{\s*return 404;", template)
    events = re.search(r"location = /api/events \{([^}]*)\}", template)
    assert (
        events and "proxy_buffering off;" in events.group(1) and "proxy_read_timeout 1h;" in events.group(1)
    )
    # Passive failover never resends a POST or PATCH: no non_idempotent.
    assert "non_idempotent" not in template


@pytest.mark.parametrize("strip", [False, True], ids=["standard", "stripping"])
def test_nginx_accepts_the_proxy_config(strip: bool, tmp_path: Path) -> None:
    if NGINX is None:
        pytest.skip(NO_NGINX)
    make_certificate(tmp_path / "tls")
    config = render_proxy_config(
        PROXY_TEMPLATE.read_text(),
        {
            "TD_SPA_LISTEN": "127.0.0.1:18443",
            "TD_API_LISTEN": "127.0.0.1:18444",
            "TD_KITE_LISTEN": "127.0.0.1:18445",
            "TD_API_1": "127.0.0.1:18001",
            "TD_API_2": "127.0.0.1:18002",
            "TD_SPA_UPSTREAM": "127.0.0.1:15173",
            "TD_KITE_UPSTREAM": "127.0.0.1:18100",
            "TD_TLS_CERT": str(tmp_path / "tls" / "cert.pem"),
            "TD_TLS_KEY": str(tmp_path / "tls" / "key.pem"),
        },
    )
    site = tmp_path / "tradedesk.conf"
    site.write_text(stripping_forwarded_headers(config) if strip else config)
    main = tmp_path / "nginx.conf"
    main.write_text(nginx_main_config(tmp_path, site))
    checked = subprocess.run(
        [NGINX, "-t", "-e", str(tmp_path / "error.log"), "-p", str(tmp_path), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
