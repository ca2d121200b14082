"""Real OpenSearch nodes (2.19.1, or 3.5.0) for development, tests and `make run`, built from
Maven Central; alone, or as a cluster of several on loopback.

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

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson

OPENSEARCH_VERSION = "2.19.1"
_HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Distribution:
    """One OpenSearch version the dev node can be assembled as: what Maven Central serves for
    it, which Java it needs, and the plugin classes the launcher loads from the classpath."""

    version: str
    plugin_version: str
    min_java: int
    neural_search: bool
    log4j: str  # log4j-core to match the log4j-api the core depends on
    plugin_classes: tuple[str, ...]

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    @property
    def plugin_dirs(self) -> tuple[str, ...]:
        return ("opensearch-knn", "opensearch-neural-search") if self.neural_search \
            else ("opensearch-knn",)


# The standard modules Maven Central serves (pom.xml), then k-NN and, on 2.x, neural-search.
# The module classes were renamed *ModulePlugin in 3.0.
_MODULES_2 = (
    "org.opensearch.transport.Netty4Plugin",
    "org.opensearch.painless.PainlessPlugin",
    "org.opensearch.analysis.common.CommonAnalysisPlugin",
    "org.opensearch.index.mapper.MapperExtrasPlugin",
    "org.opensearch.index.reindex.ReindexPlugin",
    "org.opensearch.join.ParentJoinPlugin",
    "org.opensearch.percolator.PercolatorPlugin",
    "org.opensearch.script.mustache.MustachePlugin",
    "org.opensearch.script.expression.ExpressionPlugin",
    "org.opensearch.index.rankeval.RankEvalPlugin",
    "org.opensearch.search.aggregations.matrix.MatrixAggregationPlugin",
    "org.opensearch.ingest.common.IngestCommonPlugin",
    "org.opensearch.ingest.useragent.IngestUserAgentPlugin",
    "org.opensearch.geo.GeoModulePlugin",
    "org.opensearch.plugin.repository.url.URLRepositoryPlugin",
)
_MODULES_3 = tuple(name if name.endswith("ModulePlugin") else name[:-len("Plugin")] + "ModulePlugin"
                   for name in _MODULES_2)
_KNN = "org.opensearch.knn.plugin.KNNPlugin"
_NEURAL = "org.opensearch.neuralsearch.plugin.NeuralSearch"

DISTRIBUTIONS = {
    "2.19.1": Distribution("2.19.1", "2.19.1.0", 17, True, "2.21.0", (*_MODULES_2, _KNN, _NEURAL)),
    # neural-search 3.x is not on Maven Central: native `hybrid` queries are unavailable
    "3.5.0": Distribution("3.5.0", "3.5.0.0", 21, False, "2.25.3", (*_MODULES_3, _KNN)),
}


def distribution(version: str) -> Distribution:
    try:
        return DISTRIBUTIONS[version]
    except KeyError:
        raise NodeError(f"OpenSearch {version} cannot be assembled here; the versions are "
                        f"{', '.join(DISTRIBUTIONS)}") from None


# Nodes started by this process, kept so that stop() can reap them (no zombies, no
# "subprocess still running" warnings when a test session starts and stops a node).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class NodeError(RuntimeError):
    """The node could not be built, started or stopped; the message says why."""


def default_home() -> Path:
    return Path(os.environ.get("CROSSRANK_OPENSEARCH_HOME", ".crossrank/opensearch")).resolve()


def default_build_dir(version: str = OPENSEARCH_VERSION) -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "crossrank" / f"opensearch-{version}"


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
    """One node: alone (single-node discovery), or a member of a ``DevCluster`` when
    ``cluster`` names its peers' transport ports."""

    home: Path
    port: int = 9200
    heap: str = "1g"
    version: str = OPENSEARCH_VERSION
    build_dir: Path | None = None
    name: str = "crossrank-node"
    transport_port: int | None = None
    cluster: tuple[int, ...] = ()
    cluster_managers: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def distribution(self) -> Distribution:
        return distribution(self.version)

    @property
    def build_path(self) -> Path:
        return self.build_dir or default_build_dir(self.version)

    @property
    def pid_file(self) -> Path:
        return self.home / "node.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "logs" / "node.log"

    # -- build ------------------------------------------------------------------------------

    def is_built(self) -> bool:
        """Built, and from the pom, launcher and plugin list this checkout has."""
        stamp = self.build_path / "crossrank-build.txt"
        return stamp.exists() and stamp.read_text() == self._recipe()

    def _recipe(self) -> str:
        digest = hashlib.sha256()
        for part in (_HERE / "pom.xml", _HERE / "Launcher.java"):
            digest.update(part.read_bytes())
        digest.update(repr(self.distribution).encode())
        return f"{self.version} {digest.hexdigest()}\n"

    def build(self, *, quiet: bool = True) -> None:
        """Fetch the jars with Maven and compile the launcher (skipped when already built)."""
        if self.is_built():
            return
        java_home = find_java(self.distribution.min_java)
        if shutil.which("mvn") is None:
            raise NodeError("'mvn' is not on PATH: install Maven (Debian: apt install maven)")
        dist = self.distribution
        shutil.rmtree(self.build_path, ignore_errors=True)  # Maven's unpack markers too
        self.build_path.mkdir(parents=True, exist_ok=True)
        mvn = ["mvn", "-B", "-f", str(_HERE / "pom.xml"), "package",
               f"-Dcrossrank.build.dir={self.build_path}",
               f"-Dopensearch.version={dist.version}",
               f"-Dopensearch.plugin.version={dist.plugin_version}",
               f"-Dlog4j.version={dist.log4j}"]
        if dist.major >= 3:
            mvn.append("-Dcrossrank.opensearch3")
        if quiet:
            mvn.insert(2, "-q")
        # Maven itself runs on the Java the node needs
        env = {**os.environ, "JAVA_HOME": str(java_home)}
        _run(mvn, "Maven could not assemble OpenSearch", env=env)
        classes = self.build_path / "classes"
        classes.mkdir(exist_ok=True)
        _run([str(java_home / "bin" / "javac"), "-d", str(classes),
              "-cp", str(self.build_path / "lib" / "*"), str(_HERE / "Launcher.java")],
             "javac could not compile the launcher")
        (self.build_path / "crossrank-build.txt").write_text(self._recipe())

    def classpath(self) -> str:
        parts = [self.build_path / "classes", self.build_path / "lib" / "*"]
        parts += [self.build_path / "plugins" / name / "*"
                  for name in self.distribution.plugin_dirs]
        return os.pathsep.join(str(p) for p in parts)

    def settings(self) -> dict[str, object]:
        """The node's opensearch.yml (JSON is YAML): loopback, its ports, and either
        single-node discovery or its cluster's seed hosts."""
        settings: dict[str, object] = {
            "cluster.name": "crossrank-dev",
            "node.name": self.name,
            "path.data": str(self.home / "data"),
            "path.logs": str(self.home / "logs"),
            "network.host": "127.0.0.1",
            "http.port": self.port,
            "transport.port": self.transport_port or self.port + 100,
            # Build machines may have nearly full disks; a dev node should not go read-only.
            "cluster.routing.allocation.disk.threshold_enabled": False,
        }
        if self.cluster:
            settings["discovery.seed_hosts"] = [f"127.0.0.1:{port}" for port in self.cluster]
            settings["cluster.initial_cluster_manager_nodes"] = list(self.cluster_managers)
        else:
            settings["discovery.type"] = "single-node"
        return settings

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
        proc = self.launch()
        self.wait_ready(proc, timeout_s=timeout_s)
        return self.status(), True

    def launch(self) -> subprocess.Popen[bytes]:
        """Spawn the node's JVM (building first when needed) and return without waiting."""
        current = self.status()
        if current.pid:
            raise NodeError(f"{current.describe()}; run `crossrank opensearch stop` first")
        self.build()
        java = find_java(self.distribution.min_java) / "bin" / "java"
        (self.home / "config").mkdir(parents=True, exist_ok=True)
        (self.home / "config" / "opensearch.yml").write_bytes(
            orjson.dumps(self.settings(), option=orjson.OPT_INDENT_2))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        cmd = [str(java), f"-Xms{self.heap}", f"-Xmx{self.heap}",
               "-Dlog4j.shutdownHookEnabled=false", "-Dlog4j2.disable.jmx=true",
               "-Djava.awt.headless=true", "-XX:+UseG1GC",
               "-cp", self.classpath(), "Launcher", str(self.home),
               *self.distribution.plugin_classes]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        _CHILDREN[proc.pid] = proc
        self.pid_file.write_text(str(proc.pid))
        return proc

    def wait_ready(self, proc: subprocess.Popen[bytes], *, timeout_s: float,
                   nodes: int = 1) -> None:
        """Wait until the node answers yellow health with ``nodes`` nodes in its cluster."""
        query = f"wait_for_status=yellow&wait_for_nodes=>={nodes}&timeout=1s"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                _CHILDREN.pop(proc.pid, None)
                self.pid_file.unlink(missing_ok=True)
                raise NodeError(f"OpenSearch exited with {proc.returncode} during start-up:\n"
                                f"{self.log_tail()}")
            health = _get_json(f"{self.url}/_cluster/health?{query}", timeout=3.0)
            if isinstance(health, dict) and health.get("status") in ("yellow", "green") \
                    and int(health.get("number_of_nodes", 0)) >= nodes:
                return
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


@dataclass(frozen=True)
class DevCluster:
    """``size`` nodes on loopback forming one cluster: node i has HTTP port ``port + i`` and
    transport port ``port + 100 + i``, its home ``home/node-i``; every node is cluster-manager
    eligible and holds data."""

    home: Path
    port: int = 9200
    size: int = 3
    heap: str = "512m"
    version: str = OPENSEARCH_VERSION

    @property
    def nodes(self) -> list[DevNode]:
        transports = tuple(self.port + 100 + i for i in range(self.size))
        names = tuple(f"crossrank-node-{i}" for i in range(self.size))
        return [DevNode(home=self.home / f"node-{i}", port=self.port + i, heap=self.heap,
                        version=self.version, name=names[i], transport_port=transports[i],
                        cluster=transports, cluster_managers=names)
                for i in range(self.size)]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def start(self, *, timeout_s: float = 240.0) -> list[NodeStatus]:
        """Start every node that is not running and wait until all have joined."""
        nodes = self.nodes
        nodes[0].build()
        procs = [(node, node.launch()) for node in nodes if not node.status().answering]
        for node, proc in procs:
            node.wait_ready(proc, timeout_s=timeout_s, nodes=self.size)
        return [node.status() for node in nodes]

    def start_node(self, index: int, *, timeout_s: float = 240.0) -> NodeStatus:
        """(Re)start one member and wait until the whole cluster has it back."""
        node = self.nodes[index]
        node.wait_ready(node.launch(), timeout_s=timeout_s, nodes=self.size)
        return node.status()

    def stop(self) -> int:
        return sum(node.stop() for node in self.nodes)


def free_cluster_port(size: int, first: int = 19200, last: int = 19900) -> int:
    """A base port P for a ``DevCluster`` of ``size`` nodes: P..P+size-1 (HTTP) and
    P+100..P+100+size-1 (transport) all free on loopback."""
    for base in range(first, last, 10):
        try:
            for port in [base + i for i in range(size)] + [base + 100 + i for i in range(size)]:
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise NodeError(f"no free ports for a {size}-node cluster between {first} and {last}")


def find_java(min_major: int) -> Path:
    """A Java home of at least ``min_major``, looked for as a user's machine would offer one:
    ``$CROSSRANK_JAVA_HOME``, ``$JAVA_HOME``, the ``java`` on PATH, then the JDKs installed
    under ``/usr/lib/jvm`` (Debian's and Temurin's packages), newest last."""
    seen: list[str] = []
    candidates: list[Path] = []
    for variable in ("CROSSRANK_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(variable):
            candidates.append(Path(os.environ[variable]))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path).resolve().parent.parent)
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if not p.is_symlink()),
                             key=lambda p: _java_major(p) or 0)
    for home in candidates:
        major = _java_major(home)
        seen.append(f"{home} ({'Java ' + str(major) if major else 'no java'})")
        if major is not None and major >= min_major:
            return home
    raise NodeError(f"this OpenSearch needs Java {min_major} or newer and none was found; "
                    f"looked at: {'; '.join(seen) or 'nothing (no JAVA_HOME, no java on PATH)'}. "
                    f"Install a JDK {min_major}+ and set JAVA_HOME or CROSSRANK_JAVA_HOME to it")


def _java_major(home: Path) -> int | None:
    """The feature version of the JDK at ``home`` (its ``release`` file; javac must exist)."""
    if not (home / "bin" / "java").exists() or not (home / "bin" / "javac").exists():
        return None
    try:
        for line in (home / "release").read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                number = line.split("=", 1)[1].strip().strip('"')
                first = number.split(".")[0]
                return int(number.split(".")[1]) if first == "1" else int(first)
    except (OSError, ValueError, IndexError):
        return None
    return None


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


def _run(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
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
