"""The MLflow server as docs/cluster.md starts it for compute nodes (issue 15.5): the documented
block itself is run (its port replaced by a free one), and a tracked job logs a run through
``MLFLOW_TRACKING_URI`` as the block exports it, addressed by the machine's host name, not
localhost. MLflow 3 refuses such a request unless ``--allowed-hosts`` names the host (the
request of a host it does not name is refused here too)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import REPO
from tests.orchestration.conftest import SERVER_START_TIMEOUT, free_port, stop

MARKER = "<!-- mlflow-server:"


def documented_block() -> str:
    """The bash block right after the marker in docs/cluster.md."""
    text = (REPO / "docs" / "cluster.md").read_text()
    after = text[text.index(MARKER) :]
    block = re.search(r"```bash\n(.*?)```", after, flags=re.S).group(1)
    return "\n".join(line.strip() for line in block.splitlines())


def request(url: str, host: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


@pytest.fixture
def documented_server(tmp_path):
    """The block run in ``tmp_path`` with a free port: (tracking URI it exported, process)."""
    port = free_port()
    block = documented_block()
    assert re.search(r"^port=5000$", block, flags=re.M), block
    script = block.replace("port=5000", f"port={port}", 1)
    script += '\necho "URI=$MLFLOW_TRACKING_URI"\nwait\n'
    log = tmp_path / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}  # no job workers
    proc = subprocess.Popen(
        ["bash", "-c", script],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 (closed with the process)
        text=True,
        start_new_session=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("URI="), line + log.read_text()[-3000:]
        uri = line.strip()[len("URI=") :]
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if request(f"http://127.0.0.1:{port}/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(1)
        else:
            raise AssertionError(f"server not up:\n{log.read_text()[-3000:]}")
        yield uri, port
    finally:
        stop(proc)


def test_a_job_logs_through_the_host_name_the_nodes_use(documented_server, tmp_path):
    uri, port = documented_server
    host = re.match(r"http://([^:/]+):(\d+)$", uri)
    assert host and int(host.group(2)) == port, uri
    assert host.group(1) not in ("localhost", "127.0.0.1"), uri  # the machine's own name
    # a host the server does not name is refused (what every node met before --allowed-hosts)
    status, body = request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search"
                           "?max_results=1", host=f"elsewhere.invalid:{port}")  # fmt: skip
    assert status == 403 and "Invalid Host header" in body

    code = (
        "from condi.tracking import Run\n"
        "with Run('train_teacher', 'synthetic', {'lr': 0.1}, name='job@node') as run:\n"
        "    run.log_metrics({'loss': 0.5}, step=1)\n"
        "    assert run.run_id, 'no run in the store'\n"
        "print(run.run_id)\n"
    )
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "CONDI_ROOT": str(tmp_path),
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }
    env.pop("CONDI_TRACKING", None)
    env.pop("CONDI_INVOCATION", None)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert not (tmp_path / ".mlflow_pending").exists(), out.stderr[-3000:]
    run_id = out.stdout.split()[-1]
    status, body = request(f"{uri}/api/2.0/mlflow/runs/get?run_id={run_id}")
    assert status == 200, body
    run = json.loads(body)["run"]
    assert run["info"]["run_name"] == "job@node" and run["info"]["status"] == "FINISHED"
    assert [m["key"] for m in run["data"]["metrics"]] == ["loss"]
    assert (tmp_path / "mlflow.db").is_file()  # where the documented block keeps the store
