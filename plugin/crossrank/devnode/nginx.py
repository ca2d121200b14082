"""nginx from the system's packages in front of crossrank and OpenSearch, for tests and
benchmarks of the front-proxy recipe (``crossrank front-config``). Loopback only."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from crossrank.proxy.front import FrontTargets, render_nginx

_CANDIDATES = ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx")


def find_nginx() -> str | None:
    found = shutil.which("nginx")
    return found or next((c for c in _CANDIDATES if os.access(c, os.X_OK)), None)


def _main_config(workdir: Path, include: Path, workers: int) -> str:
    temp = "\n".join(f"    {kind}_temp_path {workdir / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    # As root, nginx's workers would run as nobody, who cannot reach a private workdir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (f"{user}worker_processes {workers};\npid {workdir / 'nginx.pid'};\n"
            f"error_log {workdir / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            f"http {{\n    access_log off;\n{temp}\n    include {include};\n}}\n")


class FrontNginx:
    """One nginx master serving the generated recipe; start() waits until it listens."""

    def __init__(self, workdir: Path, targets: FrontTargets, *, workers: int = 1,
                 cores: str | None = None) -> None:
        binary = find_nginx()
        if binary is None:
            raise FileNotFoundError("nginx is not installed (Debian: apt-get install nginx-light)")
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        self.port = int(targets.listen.rsplit(":", 1)[-1])
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.cores = cores  # e.g. "0": run pinned (taskset), for benchmarks
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 20.0) -> FrontNginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        include = self.workdir / "crossrank.conf"
        include.write_text(render_nginx(self.targets))
        main = self.workdir / "nginx.conf"
        main.write_text(_main_config(self.workdir, include, self.workers))
        log = self.workdir / "stderr.log"
        with log.open("wb") as stderr:
            pinned = ["taskset", "-c", self.cores] if self.cores else []
            self._process = subprocess.Popen(
                [*pinned, self.binary, "-p", str(self.workdir), "-c", str(main),
                 "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"nginx exited ({self._process.returncode}): "
                                   f"{log.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.port} within {timeout_s} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
