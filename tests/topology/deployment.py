"""docker-compose.yml's topology as real processes on loopback ports: kitesim, two API instances, two agent
workers, the SPA server, and nginx in front with deploy/nginx/tradedesk.conf.template over TLS, with a
certificate made by deploy/tls/make_local_cert.py. The browser connects from a loopback address of its own
(127.0.0.2), the proxy from 127.0.0.1, so the API can tell one from the other."""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import DEMO_API_KEY, DEMO_API_SECRET
from tests.procs import ROOT, Proc, free_port, python_module, shared_env

PROXY_TEMPLATE = ROOT / "deploy" / "nginx" / "tradedesk.conf.template"
MAKE_CERT = ROOT / "deploy" / "tls" / "make_local_cert.py"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
NO_NGINX = (
    "nginx is not installed (`make test-packages` installs Debian's): the proxy tests drive the real proxy"
)

PROXY_ADDRESS = (
    "127.0.0.1"  # nginx listens here and reaches the upstreams from here (TRADEDESK_TRUSTED_PROXIES)
)
BROWSER_ADDRESS = "127.0.0.2"  # where "the browser" connects from: a real peer address the API can record
OTHER_BROWSER_ADDRESS = "127.0.0.3"
REQUESTS_METRIC = "tradedesk_http_request_duration_seconds"
START_TIMEOUT_S = 45.0

# The proxy that carries the client's address and scheme (deploy/'s), and one that strips both headers.
STANDARD = "standard"
STRIPPING = "stripping"
_FORWARDED_LINES = {
    "proxy_set_header X-Forwarded-For $remote_addr;": 'proxy_set_header X-Forwarded-For "";',
    "proxy_set_header X-Forwarded-Proto $scheme;": 'proxy_set_header X-Forwarded-Proto "";',
}


def render_proxy_config(template: str, values: dict[str, str]) -> str:
    """What the nginx image's envsubst does with NGINX_ENVSUBST_FILTER=^TD_: every ``${TD_…}`` replaced,
    nginx's own ``$variables`` left alone. A TD_ name without a value is an error, not an empty string."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"the proxy template needs {name}")
        return values[name]

    return re.sub(r"\$\{(TD_[A-Z0-9_]+)\}", value, template)


def template_variables(template: str) -> set[str]:
    return set(re.findall(r"\$\{(TD_[A-Z0-9_]+)\}", template))


def stripping_forwarded_headers(config: str) -> str:
    """The same config, except that it sends no X-Forwarded-For or X-Forwarded-Proto upstream at all (nginx
    drops a header set to the empty string): the client's own are gone too, but so is the proxy's word."""
    for line, replacement in _FORWARDED_LINES.items():
        assert config.count(line) == 1, f"the proxy template no longer has {line!r}"
        config = config.replace(line, replacement)
    return config


def nginx_main_config(workdir: Path, site: Path) -> str:
    """The main context around the site config, for an unprivileged-looking nginx in ``workdir`` (the
    image's nginx.conf plays this part in compose)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = {name: workdir / name for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for path in temp.values():
        path.mkdir(exist_ok=True)
    return (
        f"{user}worker_processes 1;\n"
        "daemon off;\n"
        f"pid {workdir / 'nginx.pid'};\n"
        f"error_log {workdir / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"  access_log {workdir / 'access.log'};\n"
        f"  client_body_temp_path {temp['client_body']};\n"
        f"  proxy_temp_path {temp['proxy']};\n"
        f"  fastcgi_temp_path {temp['fastcgi']};\n"
        f"  uwsgi_temp_path {temp['uwsgi']};\n"
        f"  scgi_temp_path {temp['scgi']};\n"
        f"  include {site};\n"
        "}\n"
    )


def make_certificate(out: Path) -> Path:
    """deploy/'s certificate maker, as the compose `certs` job runs it; the CA file to trust."""
    subprocess.run(
        [sys.executable, str(MAKE_CERT), "--out", str(out), "--name", "localhost", "--ip", PROXY_ADDRESS],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out / "ca.pem"


def write_stand_in_spa(dist: Path) -> Path:
    """A build's shape (index.html, hashed assets) for the SPA server: the topology is under test here,
    not the SPA's build."""
    (dist / "assets").mkdir(parents=True)
    (dist / "assets" / "index-0a1b2c3d.js").write_text("console.log('tradedesk');\n")
    (dist / "index.html").write_text(
        '<!doctype html><html><head><script src="/config.js"></script>'
        '<script type="module" src="/assets/index-0a1b2c3d.js"></script></head>'
        '<body><div id="root"></div></body></html>\n'
    )
    return dist


@dataclass(frozen=True)
class Origins:
    """One proxy's three public origins."""

    spa: str
    api: str
    kite: str


class Proxy:
    def __init__(self, name: str, workdir: Path, *, ports: dict[str, int]) -> None:
        self.name = name
        self.workdir = workdir
        self.ports = ports
        self.origins = Origins(
            spa=f"https://{PROXY_ADDRESS}:{ports['spa']}",
            api=f"https://{PROXY_ADDRESS}:{ports['api']}",
            kite=f"https://{PROXY_ADDRESS}:{ports['kite']}",
        )
        self.popen: subprocess.Popen[bytes] | None = None

    def write_config(self, *, upstreams: dict[str, str], tls: Path) -> Path:
        config = render_proxy_config(
            PROXY_TEMPLATE.read_text(),
            {
                "TD_SPA_LISTEN": f"{PROXY_ADDRESS}:{self.ports['spa']}",
                "TD_API_LISTEN": f"{PROXY_ADDRESS}:{self.ports['api']}",
                "TD_KITE_LISTEN": f"{PROXY_ADDRESS}:{self.ports['kite']}",
                "TD_API_1": upstreams["api-1"],
                "TD_API_2": upstreams["api-2"],
                "TD_SPA_UPSTREAM": upstreams["spa"],
                "TD_KITE_UPSTREAM": upstreams["kitesim"],
                "TD_TLS_CERT": str(tls / "cert.pem"),
                "TD_TLS_KEY": str(tls / "key.pem"),
            },
        )
        if self.name == STRIPPING:
            config = stripping_forwarded_headers(config)
        self.workdir.mkdir(parents=True, exist_ok=True)
        site = self.workdir / "tradedesk.conf"
        site.write_text(config)
        main = self.workdir / "nginx.conf"
        main.write_text(nginx_main_config(self.workdir, site))
        return main

    def command(self, main: Path) -> list[str]:
        assert NGINX is not None, NO_NGINX
        return [NGINX, "-e", str(self.workdir / "error.log"), "-p", str(self.workdir), "-c", str(main)]

    def start(self, main: Path) -> None:
        with (self.workdir / "stdout.log").open("ab") as log:
            self.popen = subprocess.Popen(self.command(main), stdout=log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        logs = [self.workdir / name for name in ("stdout.log", "error.log")]
        return "\n".join(path.read_text(errors="replace") for path in logs if path.exists())


class Deployment:
    """Every process of the topology; ``start()`` starts them all at once and waits until each is healthy,
    ``stop()`` ends each one it started (SIGTERM, then SIGKILL after 10 s)."""

    def __init__(
        self,
        workdir: Path,
        *,
        database_url: str,
        redis_prefix: str,
        proxies: Iterable[str] = (STANDARD,),
        settings: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.tls = workdir / "tls"
        self.ports = {name: free_port() for name in ("kitesim", "api-1", "api-2", "spa")}
        self.metrics_ports = {name: free_port() for name in ("api-1", "api-2", "worker-1", "worker-2")}
        self.proxies = {
            name: Proxy(
                name, workdir / f"proxy-{name}", ports={k: free_port() for k in ("spa", "api", "kite")}
            )
            for name in proxies
        }
        # The first proxy is the one the deployment's settings name (SPA URL, kitesim's redirect); the
        # SPA origins of every proxy are allowed.
        primary = next(iter(self.proxies.values())).origins
        self.origins = primary
        kite_direct = f"http://127.0.0.1:{self.ports['kitesim']}"
        env = shared_env(
            database_url,
            redis_prefix,
            kite=kite_direct,
            spa=",".join(proxy.origins.spa for proxy in self.proxies.values()),
            callback_api=primary.api,
            TRADEDESK_KITE_LOGIN_URL=f"{primary.kite}/connect/login",
            TRADEDESK_API_PUBLIC_URL=primary.api,
            TRADEDESK_COOKIE_SECURE="true",
            TRADEDESK_TRUSTED_PROXIES=f"{PROXY_ADDRESS}/32",
            TRADEDESK_ALLOWED_HOSTS=f"localhost,{PROXY_ADDRESS}",
            TRADEDESK_SHUTDOWN_TIMEOUT_S="2",
            **(settings or {}),
        )
        self.env = env
        self.alive_files = {name: workdir / f"{name}.alive" for name in ("worker-1", "worker-2")}
        self.processes: dict[str, Proc] = {
            "kitesim": Proc(
                python_module("kitesim", "--port", str(self.ports["kitesim"])),
                env=env,
                health_url=None,
                name="kitesim",
            ),
            **{
                name: Proc(
                    python_module("tradedesk", "--port", str(self.ports[name]), "--log-level", "warning"),
                    env={
                        **env,
                        "TRADEDESK_AGENT_RUNTIME": "off",
                        "TRADEDESK_METRICS_PORT": str(self.metrics_ports[name]),
                    },
                    health_url=None,
                    name=name,
                )
                for name in ("api-1", "api-2")
            },
            **{
                name: Proc(
                    python_module("tradedesk.agents.worker", "--runtime-id", name),
                    env={
                        **env,
                        "TRADEDESK_AGENT_ALIVE_FILE": str(alive),
                        "TRADEDESK_METRICS_PORT": str(self.metrics_ports[name]),
                    },
                    health_url=None,
                    name=name,
                )
                for name, alive in self.alive_files.items()
            },
            "spa": Proc(
                python_module(
                    "tradedesk.spa",
                    "--port",
                    str(self.ports["spa"]),
                    "--api-url",
                    primary.api,
                    "--dist",
                    str(workdir / "dist"),
                    "--demo",
                ),
                env=env,
                health_url=None,
                name="spa",
            ),
        }
        for proc in self.processes.values():
            proc.log_path = workdir / f"{proc.name}.log"
        self.ca = self.tls / "ca.pem"

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> Deployment:
        make_certificate(self.tls)
        write_stand_in_spa(self.workdir / "dist")
        upstreams = {name: f"127.0.0.1:{port}" for name, port in self.ports.items()}
        mains = {
            name: proxy.write_config(upstreams=upstreams, tls=self.tls)
            for name, proxy in self.proxies.items()
        }
        for proc in self.processes.values():
            proc.start()  # no health URL: returns once the process is spawned
        for name, proxy in self.proxies.items():
            proxy.start(mains[name])
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            for name, url in {
                "kitesim": f"{self.direct('kitesim')}/sim/clock",
                "api-1": f"{self.direct('api-1')}/healthz",
                "api-2": f"{self.direct('api-2')}/healthz",
                "spa": f"{self.direct('spa')}/config.js",
            }.items():
                self._wait(name, deadline, lambda url=url: httpx.get(url, timeout=2).status_code == 200)
            for name, alive in self.alive_files.items():
                self._wait(name, deadline, alive.exists)
            for proxy in self.proxies.values():
                with self.browser(proxy=proxy.name) as probe:
                    self._wait(
                        f"proxy-{proxy.name}",
                        deadline,
                        lambda probe=probe, proxy=proxy: (
                            probe.get(f"{proxy.origins.api}/readyz").status_code == 200
                        ),
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, name: str, deadline: float, ready: Callable[[], object]) -> None:
        while True:
            if self.exited(name):
                raise RuntimeError(f"{name} exited during startup:\n{self.output(name)}")
            try:
                if ready():
                    return
            except (httpx.HTTPError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{name} was not ready within {START_TIMEOUT_S:.0f} s:\n{self.output(name)}"
                )
            time.sleep(0.1)

    def exited(self, name: str) -> bool:
        popen = self._popen(name)
        return popen is None or popen.poll() is not None

    def _popen(self, name: str) -> subprocess.Popen[bytes] | None:
        if name.startswith("proxy-"):
            return self.proxies[name.removeprefix("proxy-")].popen
        return self.processes[name].popen

    def output(self, name: str) -> str:
        if name.startswith("proxy-"):
            return self.proxies[name.removeprefix("proxy-")].output()
        return self.processes[name].output()

    def kill(self, name: str) -> None:
        """``kill -9``: no shutdown of any kind, the way a crashed host or an OOM kill ends a process."""
        popen = self._popen(name)
        assert popen is not None and popen.poll() is None, f"{name} is not running"
        popen.send_signal(signal.SIGKILL)
        popen.wait(timeout=10)

    def stop(self) -> None:
        running = [proxy.popen for proxy in self.proxies.values() if proxy.popen is not None]
        running += [proc.popen for proc in self.processes.values() if proc.popen is not None]
        for popen in running:
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
        for popen in running:
            try:
                popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()
        for proxy in self.proxies.values():
            proxy.popen = None
        for proc in self.processes.values():
            proc.popen = None

    # -- talking to it ----------------------------------------------------------------------------------

    def direct(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def proxy_origins(self, proxy: str = STANDARD) -> Origins:
        return self.proxies[proxy].origins

    def browser(
        self, *, proxy: str = STANDARD, address: str = BROWSER_ADDRESS, **headers: str
    ) -> httpx.Client:
        """A browser on the proxy's SPA origin: trusts the local CA only, connects from ``address``."""
        context = ssl.create_default_context(cafile=str(self.ca))
        return httpx.Client(
            transport=httpx.HTTPTransport(verify=context, local_address=address),
            headers={"Origin": self.proxies[proxy].origins.spa, **headers},
            timeout=10,
        )

    def metric(self, process: str, sample_name: str, **labels: str) -> float:
        """The sum of ``process``'s samples of that name whose labels include ``labels`` (its own metrics,
        on its own port)."""
        text = httpx.get(f"http://127.0.0.1:{self.metrics_ports[process]}/metrics", timeout=5).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == sample_name and labels.items() <= sample.labels.items()
        )

    def requests_served(self, instance: str, route: str) -> int:
        """How many requests ``instance`` has answered on ``route``."""
        return int(self.metric(instance, f"{REQUESTS_METRIC}_count", route=route))


def start_redirect_sign_in(browser: httpx.Client, origins: Origins) -> httpx.Response:
    """The first step of the redirect flow, the API's /login (a sign-in attempt, as rate limits count)."""
    return browser.post(
        f"{origins.api}/api/auth/login", json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET}
    )


def finish_redirect_sign_in(
    browser: httpx.Client, origins: Origins, started: httpx.Response, user_id: str
) -> dict[str, object]:
    """The rest of it, every step over the proxy: kitesim's login page and form, the API's callback, back to
    the SPA. Keeps the CSRF token on the client; the status the API then reports."""
    assert started.status_code == 200, started.text
    login_url = started.json()["login_url"]
    assert login_url.startswith(f"{origins.kite}/connect/login?"), login_url
    page = browser.get(login_url)
    assert page.status_code == 200 and "password" in page.text
    redirect_params = parse_qs(urlsplit(login_url).query)["redirect_params"][0]
    answer = browser.post(
        f"{origins.kite}/connect/login",
        data={
            "user_id": user_id,
            "password": "demo",
            "api_key": DEMO_API_KEY,
            "redirect_params": redirect_params,
        },
    )
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{origins.api}/api/auth/callback?"), callback
    back = browser.get(callback)
    assert back.status_code == 303, back.text
    # Built from TRADEDESK_SPA_URL, never from the request: https whatever the proxy said of the scheme.
    assert back.headers["location"] == f"{origins.spa}/", back.headers["location"]
    status: dict[str, object] = browser.get(f"{origins.api}/api/auth/status").json()
    assert status["authenticated"] is True and status["broker_id"] == user_id, status
    browser.headers["X-CSRF-Token"] = str(status["csrf_token"])
    return status


def redirect_sign_in(browser: httpx.Client, origins: Origins, user_id: str) -> dict[str, object]:
    return finish_redirect_sign_in(browser, origins, start_redirect_sign_in(browser, origins), user_id)


def sign_in_with_request_token(browser: httpx.Client, origins: Origins, user_id: str) -> dict[str, object]:
    """kitesim's login form (through the proxy) for a request token, exchanged at /api/auth/authenticate."""
    answer = browser.post(
        f"{origins.kite}/connect/login",
        data={"user_id": user_id, "password": "demo", "api_key": DEMO_API_KEY},
    )
    assert answer.status_code == 302, answer.text
    token = parse_qs(urlsplit(answer.headers["location"]).query)["request_token"][0]
    status = browser.post(
        f"{origins.api}/api/auth/authenticate",
        json={"api_key": DEMO_API_KEY, "api_secret": DEMO_API_SECRET, "request_token": token},
    )
    assert status.status_code == 200, status.text
    browser.headers["X-CSRF-Token"] = status.json()["csrf_token"]
    return dict(status.json())
