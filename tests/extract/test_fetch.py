"""The explanation mirror against a real HTTP server on 127.0.0.1 serving generated files."""

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from extract.fetch import fetch_explanations, parse_layers
from extract.openai_explanations import neuron_record, read_openai_explanations


class _Server:
    """Serves /{layer}/{neuron}.jsonl for 2 layers x 5 neurons, except `absent` (404); each path
    in `flaky` answers 503 `flaky_times` times before it succeeds."""

    def __init__(self, absent=(), flaky=(), flaky_times=2):
        self.requests = Counter()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests[self.path] += 1
                parts = self.path.strip("/").split("/")
                if self.path in absent or len(parts) != 2:
                    self.send_error(404)
                    return
                if self.path in flaky and outer.requests[self.path] <= flaky_times:
                    self.send_error(503)
                    return
                body = neuron_record(int(parts[0]), int(parts[1].split(".")[0]),
                                     f"explanation of {self.path}", 0.5).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server(absent={"/1/4.jsonl"}, flaky={"/0/2.jsonl", "/1/1.jsonl"})
    yield s
    s.close()


def test_mirror_retries_transient_failures_reports_404s_and_reads_back(server, tmp_path):
    progress = []
    report = fetch_explanations(server.url, [0, 1], 5, tmp_path, workers=4, backoff=0.01,
                                progress=lambda done, total: progress.append((done, total)))
    assert report.downloaded == 9 and report.skipped == 0 and report.failed == []
    assert report.missing == [f"{server.url}/1/4.jsonl"]
    assert server.requests["/0/2.jsonl"] == 3  # two 503s, then the file
    assert progress[-1] == (10, 10)
    read = read_openai_explanations(tmp_path, n_layers=2, neurons_per_layer=5, workers=1)
    assert read.explanations.height == 9
    assert read.rejects.filter(read.rejects["problem"] == "missing")["neuron"].to_list() == [4]
    assert not list(tmp_path.rglob("*.tmp"))


def test_mirror_resumes_without_fetching_again(server, tmp_path):
    fetch_explanations(server.url, [0], 5, tmp_path, backoff=0.01)
    (tmp_path / "0" / "3.jsonl").unlink()
    before = sum(server.requests.values())
    report = fetch_explanations(server.url, [0], 5, tmp_path, backoff=0.01)
    assert (report.downloaded, report.skipped) == (1, 4)
    assert sum(server.requests.values()) - before == 1


def test_a_path_that_keeps_failing_is_reported_after_the_retries(tmp_path):
    s = _Server(flaky={"/0/0.jsonl"}, flaky_times=100)
    try:
        report = fetch_explanations(s.url, [0], 2, tmp_path, retries=2, backoff=0.01)
    finally:
        s.close()
    assert report.failed == [f"{s.url}/0/0.jsonl"] and report.downloaded == 1
    assert s.requests["/0/0.jsonl"] == 3
    assert not (tmp_path / "0" / "0.jsonl").exists()


def test_layer_specs():
    assert parse_layers("0-3,7, 9-10") == [0, 1, 2, 3, 7, 9, 10]
    with pytest.raises(ValueError, match="'x'"):
        parse_layers("0-2,x")
    with pytest.raises(ValueError, match="'5-2'"):
        parse_layers("5-2")


def test_nwh_explanations_fetch_mirrors_and_reports(server, tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    nwh = str(Path(sys.executable).parent / "nwh")
    out = subprocess.run([nwh, "--home", str(tmp_path / "home"), "explanations", "fetch",
                          "--base-url", server.url, "--layers", "0-1", "--neurons-per-layer", "5",
                          "--dest", str(tmp_path / "mirror")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "9 downloaded, 0 already present, 1 missing (404), 0 failed" in out.stdout
    assert len(list((tmp_path / "mirror").rglob("*.jsonl"))) == 9
