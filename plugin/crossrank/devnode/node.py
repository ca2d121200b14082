"""A real OpenSearch 2.19.1 node for development, tests and `make run`, built from Maven Central.

Three steps, each idempotent:

1. ``build()``: Maven copies OpenSearch's core and module jars and unpacks the k-NN and
   neural-search plugin zips into the build directory; javac compiles ``Launcher.java``.
2. ``start()``: runs the launcher in its own session with the node's home directory, waits for
   ``_cluster/health`` to answer yellow, and records the pid in ``HOME/node.pid``.
3. ``stop()``: SIGTERM (the launcher's shutdown hook closes the node cleanly), SIGKILL only
   after a grace period.

This is a development tool; production uses the official OpenSearch image (see docker/).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson

OPENSEARCH_VERSION = "2.19.1"
_HERE = Path(__file__).resolve().parent
_PLUGINS = ("opensearch-knn", "opensearch-neural-search")

# Nodes started by this process, kept so that stop() can reap them (no zombies, no
# "subprocess still running" warnings when a test session starts and stops a node).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class NodeError(RuntimeError):
    """The node could not be built, started or stopped; the message says why."""


def default_home() -> Path:
    return Path(os.environ.get("CROSSRANK_OPENSEARCH_HOME", ".crossrank/opensearch")).resolve()


def default_build_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "crossrank" / f"opensearch-{OPENSEARCH_VERSION}"


@dataclass(frozen=True)
class NodeStatus:
    url: str
    pid: int | None
    answering: bool
    version: str | None
    rss_mb: float | None

    def describe(self) -> str:
        if self.answering:
            owner = f"pid {self.pid}" if self.pid else "not started by crossrank"
            rss = f", RSS {self.rss_mb:.0f} MiB" if self.rss_mb else ""
            return f"OpenSearch {self.version} is running at {self.url} ({owner}{rss})"
        if self.pid:
            return f"OpenSearch process {self.pid} is alive but {self.url} does not answer"
        return f"OpenSearch is not running at {self.url}"


@dataclass(frozen=True)
class DevNode:
    home: Path
    port: int = 9200
    heap: str = "1g"
    build_dir: Path = field(default_factory=default_build_dir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "node.log"

    # -- build ------------------------------------------------------------------------------

    def is_built(self) -> bool:
        return (self.build_dir / "classes" / "Launcher.class").exists() and all(
            (self.build_dir / "plugins" / name).is_dir() for name in _PLUGINS
        )

    def build(self, *, quiet: bool = True) -> None:
        """Fetch the jars with Maven and compile the launcher (skipped when already built)."""
        if self.is_built():
            return
        for tool in ("mvn", "javac", "java"):
            if shutil.which(tool) is None:
                raise NodeError(f"'{tool}' is not on PATH: install a JDK 17+ and Maven")
        self.build_dir.mkdir(parents=True, exist_ok=True)
        mvn = ["mvn", "-B", "-f", str(_HERE / "pom.xml"), "package",
               f"-Dcrossrank.build.dir={self.build_dir}"]
        if quiet:
            mvn.insert(2, "-q")
        _run(mvn, "Maven could not assemble OpenSearch")
        classes = self.build_dir / "classes"
        classes.mkdir(exist_ok=True)
        _run(["javac", "-d", str(classes), "-cp", str(self.build_dir / "lib" / "*"),
              str(_HERE / "Launcher.java")], "javac could not compile the launcher")

    def classpath(self) -> str:
        parts = [self.build_dir / "classes", self.build_dir / "lib" / "*"]
        parts += [self.build_dir / "plugins" / name / "*" for name in _PLUGINS]
        return os.pathsep.join(str(p) for p in parts)

    # -- lifecycle --------------------------------------------------------------------------

    def status(self) -> NodeStatus:
        pid = self._live_pid()
        info = _get_json(self.url + "/", timeout=2.0)
        version = info["version"]["number"] if isinstance(info, dict) else None
        return NodeStatus(self.url, pid, info is not None, version, _rss_mb(pid))

    def start(self, *, timeout_s: float = 180.0) -> tuple[NodeStatus, bool]:
        """Start the node unless one already answers. Returns (status, started_now)."""
        current = self.status()
        if current.answering:
            return current, False
        if current.pid:
            raise NodeError(f"{current.describe()}; run `crossrank opensearch stop` first")
        self.build()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [_java(), f"-Xms{self.heap}", f"-Xmx{self.heap}",
               "-Dlog4j.shutdownHookEnabled=false", "-Dlog4j2.disable.jmx=true",
               "-Djava.awt.headless=true", "-XX:+UseG1GC",
               "-cp", self.classpath(), "Launcher",
               str(self.home), str(self.port), str(self.port + 100)]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        self.pid_file.write_text(str(proc.pid))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _CHILDREN.pop(proc.pid, None)
                self.pid_file.unlink(missing_ok=True)
                raise NodeError(f"OpenSearch exited with {proc.returncode} during start-up:\n"
                                f"{self.log_tail()}")
            health = _get_json(self.url + "/_cluster/health?wait_for_status=yellow&timeout=1s",
                               timeout=3.0)
            if isinstance(health, dict) and health.get("status") in ("yellow", "green"):
                return self.status(), True
            time.sleep(0.5)
        self.stop()
        raise NodeError(f"OpenSearch did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def stop(self, *, grace_s: float = 30.0) -> bool:
        """Stop the node this home started. Returns False when none was running."""
        pid = self._live_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        child = _CHILDREN.pop(pid, None)
        if child is not None:
            child.wait(timeout=grace_s)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_file.exists():
            return "(no log written)"
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if _alive(pid) else None


def stop_child(process: subprocess.Popen[bytes], *, grace_s: float = 30.0) -> None:
    """Stop a child ``crossrank serve`` as Ctrl-C would (SIGINT: it drains in-flight
    requests), and kill it if it has not exited after ``grace_s`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _java() -> str:
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").exists():
        return str(Path(java_home) / "bin" / "java")
    return "java"


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise NodeError(f"{what} (exit {result.returncode}):\n{result.stdout[-4000:]}"
                        f"{result.stderr[-4000:]}")


def _get_json(url: str, *, timeout: float) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            value: object = orjson.loads(response.read())
            return value
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours still "exists"; treat it as gone.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def _rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None
