#!/usr/bin/env python3
"""Property-based fuzzing of `vton serve` from its own OpenAPI spec (schemathesis 4.x).

    python scripts/serve_fuzz.py target/release/vton [--max-examples N] [--seed S]

Starts the binary on a free port (geometric method, a temporary --data-dir, one worker,
a 2 MB --max-body and a 1 Mpx --max-pixels so that generated inputs stay cheap), waits for
the model, then:

1. seeds one real batch job (one pair of examples/ uploaded through POST /api/v1/files,
   waited on until done), so that the job routes can also answer 200 / 409 and not only 404;
2. runs `schemathesis run <url>/api/v1/openapi.json` over every operation with a bounded
   number of examples per operation and a fixed seed, checks not_a_server_error (5xx other
   than the documented 503 / 504 fail), status_code_conformance, content_type_conformance
   and response_schema_conformance;
3. runs it again over the /api/v1/jobs/ operations with `id` bound to the seeded job;
4. independently re-reads every recorded response (schemathesis' NDJSON report) and fails on
   any 5xx other than 503 / 504;
5. checks the server is still alive and GET /api/v1/health answers 200 with model_loaded;
6. SIGTERMs the server and checks that it exits 0.

Exit status 0 when all of that holds, 1 otherwise. schemathesis is found next to this
interpreter (`python -m schemathesis.cli`), so run it with the venv's python.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ALLOWED_5XX = {503, 504}
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def request(method: str, url: str, body: bytes | None = None, content_type: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if content_type:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def upload(base: str, path: Path) -> str:
    data, name = path.read_bytes(), path.name
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
        f"Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    status, out = request("POST", f"{base}/api/v1/files", body, f"multipart/form-data; boundary={boundary}")
    if status != 201:
        raise RuntimeError(f"POST /api/v1/files: {status} {out[:300]!r}")
    return json.loads(out)["file_id"]


def seed_job(base: str) -> str:
    """One batch job with one pair of the repository's examples (uploaded through
    POST /api/v1/files), waited on until it is done; returns its id."""
    pair = {
        "person": upload(base, EXAMPLES / "person" / "mpl_grace_hopper.png"),
        "keypoints": upload(base, EXAMPLES / "person" / "mpl_grace_hopper_keypoints.json"),
        "person_mask": upload(base, EXAMPLES / "person" / "mpl_grace_hopper_mask.png"),
        "garment": upload(base, EXAMPLES / "garment" / "openvto_shirt1_front.png"),
        "garment_mask": upload(base, EXAMPLES / "garment" / "openvto_shirt1_front_mask.png"),
    }
    body = json.dumps({"pairs": [pair]}).encode()
    status, out = request("POST", f"{base}/api/v1/batch", body, "application/json")
    if status != 202:
        raise RuntimeError(f"POST /api/v1/batch: {status} {out[:300]!r}")
    job = json.loads(out)["job_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status, out = request("GET", f"{base}/api/v1/jobs/{job}")
        if status != 200:
            raise RuntimeError(f"GET /api/v1/jobs/{job}: {status} {out[:300]!r}")
        state = json.loads(out)
        if state["status"] not in ("pending", "running"):
            if state.get("completed") != 1:
                raise RuntimeError(f"seeded job {job} did not complete: {state}")
            status, img = request("GET", f"{base}/api/v1/jobs/{job}/results/0")
            if status != 200 or not img.startswith(b"\x89PNG"):
                raise RuntimeError(f"GET /api/v1/jobs/{job}/results/0: {status}")
            return job
        time.sleep(0.2)
    raise RuntimeError(f"seeded job {job} still not finished after 120 s")


def read_line(proc: subprocess.Popen, timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise RuntimeError(f"no line from the server within {timeout} s")
    return proc.stdout.readline().decode().strip()


def wait_loaded(base: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early with {proc.returncode}")
        try:
            status, out = request("GET", f"{base}/api/v1/health")
            if status == 200 and json.loads(out).get("model_loaded"):
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"model not loaded within {timeout} s")


def run_schemathesis(
    label: str, base: str, work: Path, args: argparse.Namespace, parameters: dict[str, str], extra: list[str]
) -> dict:
    """One schemathesis run; returns its summary (exit code, cases, statuses, bad 5xx)."""
    config = work / f"{label}.toml"
    lines = [
        "[checks.not_a_server_error]",
        "expected-statuses = [\"2xx\", \"3xx\", \"4xx\", " + ", ".join(f'"{s}"' for s in sorted(ALLOWED_5XX)) + "]",
    ]
    if parameters:
        lines.append("[parameters]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in parameters.items()]
    config.write_text("\n".join(lines) + "\n")
    report = work / f"{label}.ndjson"
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(config),
        "run", f"{base}/api/v1/openapi.json",
        "--checks", CHECKS,
        "--max-examples", str(args.max_examples),
        "--seed", str(args.seed),
        "--workers", "1",
        "--request-timeout", "60",
        "--generation-database", "none",
        "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(report),
        *extra,
    ]  # fmt: skip
    print(f"== schemathesis ({label}): {' '.join(cmd[1:])}", flush=True)
    started = time.monotonic()
    proc = subprocess.run(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.monotonic() - started
    out = proc.stdout
    if proc.returncode == 0 and "=== SUMMARY" in out:
        print(out[out.find("=== SUMMARY") :].rstrip(), flush=True)
    else:  # the failures with their reproducing curl commands
        print(out[-30000:].rstrip(), flush=True)

    statuses: collections.Counter[int] = collections.Counter()
    bad: list[str] = []
    failed_checks: list[str] = []
    operations = 0
    if report.exists():
        for line in report.read_text().splitlines():
            event = json.loads(line)
            if "LoadingFinished" in event:
                operations = event["LoadingFinished"]["statistic"]["operations"]["selected"]
            finished = event.get("ScenarioFinished")
            if not finished:
                continue
            recorder = finished["recorder"]
            for case_id, interaction in (recorder.get("interactions") or {}).items():
                response = interaction.get("response") or {}
                code = response.get("status_code")
                if code is None:
                    continue
                statuses[code] += 1
                if code >= 500 and code not in ALLOWED_5XX:
                    req = interaction["request"]
                    case = (recorder.get("cases") or {}).get(case_id, {})
                    bad.append(f"{req['method']} {req['uri']} -> {code}; case: {json.dumps(case)[:600]}")
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if check.get("status") == "failure":
                        failed_checks.append(f"{recorder['label']}: {check['name']} (case {case_id})")
    else:
        bad.append(f"no NDJSON report at {report}")

    m = re.search(r"Test cases:\s*\n\s*(\d+) generated(.*)", out)
    cases = int(m.group(1)) if m else sum(statuses.values())
    result = {
        "label": label,
        "returncode": proc.returncode,
        "operations": operations,
        "cases": cases,
        "cases_line": (m.group(0).split("\n")[-1].strip() if m else "?"),
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "bad_5xx": bad,
        "failed_checks": sorted(set(failed_checks)),
        "seconds": round(elapsed, 1),
    }
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="the vton binary (target/release/vton)")
    parser.add_argument("--max-examples", type=int, default=100, help="cases per operation and phase (default 100)")
    parser.add_argument("--seed", type=int, default=20261202, help="schemathesis / hypothesis seed")
    args = parser.parse_args()

    failures: list[str] = []
    results: list[dict] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="vton_serve_fuzz_") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        stderr = open(work / "server.log", "wb")
        cmd = [
            args.binary, "serve", "--port", "0", "--method", "geometric", "--data-dir", str(data),
            "--workers", "1", "--queue", "16", "--max-body", str(2 * 1024 * 1024),
            "--max-pixels", str(1024 * 1024), "--timeout", "60",
        ]  # fmt: skip
        print(f"== starting {' '.join(cmd)}", flush=True)
        server = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr)
        try:
            first = read_line(server, 60)
            m = re.fullmatch(r"listening on (http://\S+)", first)
            if not m:
                raise RuntimeError(f"unexpected first line {first!r}")
            base = m.group(1).rstrip("/")
            wait_loaded(base, server)
            job = seed_job(base)
            print(f"== seeded job {job} (1 pair, done)", flush=True)

            results.append(run_schemathesis("all", base, work, args, {}, []))
            results.append(
                run_schemathesis("jobs", base, work, args, {"id": job}, ["--include-path-regex", "^/api/v1/jobs/"])
            )

            for r in results:
                if r["bad_5xx"]:
                    failures += [f"[{r['label']}] 5xx: {b}" for b in r["bad_5xx"]]
                if r["failed_checks"]:
                    failures += [f"[{r['label']}] check failed: {c}" for c in r["failed_checks"]]
                if r["returncode"] != 0:
                    failures.append(f"[{r['label']}] schemathesis exited {r['returncode']}")
                if r["requests"] == 0:
                    failures.append(f"[{r['label']}] no request reached the server")

            if server.poll() is not None:
                failures.append(f"server died during the run (exit {server.returncode})")
            else:
                status, out = request("GET", f"{base}/api/v1/health")
                if status != 200 or not json.loads(out).get("model_loaded"):
                    failures.append(f"GET /api/v1/health after the run: {status} {out[:300]!r}")
                status, out = request("GET", f"{base}/api/v1/jobs/{job}")
                if status != 200:
                    failures.append(f"seeded job lost after the run: {status} {out[:300]!r}")
        except Exception as e:  # noqa: BLE001 - any setup failure is a test failure, reported
            failures.append(f"{type(e).__name__}: {e}")
        finally:
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
                try:
                    rc = server.wait(timeout=60)
                    if rc != 0:
                        failures.append(f"server exited {rc} on SIGTERM (expected 0)")
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()
                    failures.append("server did not exit within 60 s of SIGTERM")
            stderr.close()
            if failures:
                log = (work / "server.log").read_text(errors="replace")
                print("== server log (last 4000 chars)\n" + log[-4000:], flush=True)

    print("== serve_fuzz summary", flush=True)
    for r in results:
        print(
            f"  {r['label']}: {r['operations']} operations, {r['cases_line']}, {r['requests']} requests "
            f"in {r['seconds']} s; statuses {r['statuses']}; bad 5xx {len(r['bad_5xx'])}; "
            f"failed checks {len(r['failed_checks'])}",
            flush=True,
        )
    print(f"  total {time.monotonic() - started:.1f} s, {len(failures)} failure(s)", flush=True)
    for f in failures[:40]:
        print(f"FAIL {f}", flush=True)
    if len(failures) > 40:
        print(f"FAIL ... and {len(failures) - 40} more", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
