"""The benchmark command itself, run as a user would, with a handful of tasks: it must keep
working (the figures it prints are only trusted if every section still runs end to end)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_runs_every_section_and_checks_ground_truth(tmp_path: Path) -> None:
    out = tmp_path / "results"
    cmd = [sys.executable, "-m", "bench", "--quick", "--only", "throughput,lanes,status,memory,list",
           "--workloads", "small", "--reps", "1", "--tasks", "12", "--long", "20", "--list-tasks", "300",
           "--no-profile", "--out", str(out), "--data-root", str(tmp_path / "work")]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "GOALS" in done.stdout and "ratio service/limit" in done.stdout

    (result_file,) = out.glob("*-quick.json")
    res = json.loads(result_file.read_text())
    small = res["workloads"]["small"]
    assert small["limit"]["tasks_per_s"] > 0 and small["service"]["tasks_per_s"] > 0
    assert small["limit"]["failures"] == 0 and small["service"]["failures"] == 0  # ground truth held
    assert 0 < small["ratio"] < 2
    assert small["service"]["c16"]["stored_mb_per_task"] > 0.3  # the upload and results are stored
    cpu = small["service"]["cpu_ms_per_task"]
    assert all(cpu[role] > 0 for role in ("gateway", "matcher (main)", "matcher workers", "nats-server"))
    assert res["status"]["errors"] == 0 and res["status"]["req_per_s"] > 0
    assert res["memory"]["tasks"] == 20 and res["memory"]["failures"] == 0
    lanes = res["lanes"]
    assert lanes["failures"] == 0 and lanes["surface_failures"] == 0 and 0 < lanes["busy_p95_ms"]
    assert res["list"]["tasks"] == 300 and res["list"]["errors"] == 0 and res["list"]["worst_p95_ms"] > 0
    assert set(res["list"]["by_query"]) == {"all", "status=done", "status=error"}
    assert res["memory"]["gateway"]["max_mb"] >= res["memory"]["gateway"]["end_mb"]
    assert not list((tmp_path / "work").iterdir())  # the data folders are removed
