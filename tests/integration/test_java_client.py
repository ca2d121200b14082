"""The OpenSearch Java client (opensearch-java, Apache HttpClient 5 transport) against the real
proxy and node: runs the Maven test module in tests/clients/java/ with Surefire. Maven fetches
the client and JUnit from Maven Central the first time (about 20 s), as it does for the node."""

from __future__ import annotations

import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from proxy_fixtures import ServedProxy

pytestmark = pytest.mark.integration

MODULE = Path(__file__).resolve().parents[1] / "clients" / "java"


def test_the_java_client_suite(proxy: ServedProxy, opensearch_url: str, admin_token: str) -> None:
    mvn = shutil.which("mvn")
    assert mvn is not None, "Maven is needed for the Java client suite (and for the dev node)"
    reports = MODULE / "target" / "surefire-reports"
    shutil.rmtree(reports, ignore_errors=True)
    done = subprocess.run(
        [mvn, "-B", "-ntp", "-f", str(MODULE / "pom.xml"), "test",
         f"-Dcrossrank.url={proxy.url}", f"-Dopensearch.url={opensearch_url}",
         f"-Dcrossrank.admin.token={admin_token}"],
        capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stdout[-10000:] + done.stderr[-4000:]
    suites = [ET.parse(path).getroot() for path in reports.glob("TEST-*.xml")]
    assert suites, "Surefire wrote no report: " + done.stdout[-2000:]
    ran = sum(int(suite.get("tests", "0")) for suite in suites)
    failed = sum(int(suite.get("failures", "0")) + int(suite.get("errors", "0"))
                 for suite in suites)
    skipped = sum(int(suite.get("skipped", "0")) for suite in suites)
    assert ran >= 11 and failed == 0 and skipped == 0, (ran, failed, skipped)
