"""docker-compose.yml cannot be run here (no Docker engine); these checks pin what the deployment relies on."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_only_the_load_balancer_is_a_trusted_proxy() -> None:
    spec = compose()
    env = spec["x-api-env"]
    assert "FORWARDED_ALLOW_IPS" not in env
    trusted = [ipaddress.ip_network(c) for c in str(env["TRADEDESK_TRUSTED_PROXIES"]).split(",")]
    lb_address = ipaddress.ip_address(spec["services"]["lb"]["networks"]["default"]["ipv4_address"])
    subnet = ipaddress.ip_network(spec["networks"]["default"]["ipam"]["config"][0]["subnet"])
    assert lb_address in subnet
    assert trusted == [ipaddress.ip_network(f"{lb_address}/32")]


def test_load_balancer_overwrites_forwarded_for() -> None:
    conf = compose()["configs"]["lb_conf"]["content"]
    assert "proxy_set_header X-Forwarded-For $$remote_addr;" in conf
    assert "proxy_add_x_forwarded_for" not in conf
    assert "client_max_body_size 64k;" in conf


def test_api_hosts_are_bounded() -> None:
    env = compose()["x-api-env"]
    hosts = str(env["TRADEDESK_ALLOWED_HOSTS"]).split(",")
    assert "*" not in hosts and "localhost" in hosts


def test_agents_run_in_two_named_workers_not_in_the_api() -> None:
    services = compose()["services"]
    for api in ("api-1", "api-2"):
        assert services[api]["environment"]["TRADEDESK_AGENT_RUNTIME"] == "off"
    workers = {name: spec for name, spec in services.items() if name.startswith("worker-")}
    assert len(workers) == 2
    ids = {spec["environment"]["TRADEDESK_AGENT_RUNTIME_ID"] for spec in workers.values()}
    assert ids == {"worker-1", "worker-2"}
    for spec in workers.values():
        assert spec["command"] == ["python", "-m", "tradedesk.agents.worker"]
        assert spec["environment"]["TRADEDESK_REDIS_URL"].startswith("redis://")


def test_the_spa_is_built_into_the_image_and_served_on_its_own_origin() -> None:
    spa = compose()["services"]["spa"]
    command = spa["command"]
    assert command[:3] == ["python", "-m", "tradedesk.spa"]
    assert command[command.index("--dist") + 1] == "/app/frontend/dist"
    env = compose()["x-api-env"]
    # The SPA calls the API where the API says it lives, from the origin the API allows.
    assert command[command.index("--api-url") + 1] == env["TRADEDESK_API_PUBLIC_URL"]
    port = command[command.index("--port") + 1]
    assert spa["ports"] == [f"{port}:{port}"]
    assert env["TRADEDESK_CORS_ORIGINS"] == env["TRADEDESK_SPA_URL"] == f"http://localhost:{port}"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "npm ci" in dockerfile and "npm run build" in dockerfile
    assert "COPY --from=spa /spa/dist ./frontend/dist" in dockerfile
    assert "frontend/node_modules" in (ROOT / ".dockerignore").read_text()
