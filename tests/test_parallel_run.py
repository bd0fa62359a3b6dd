"""proofs-check run --jobs: claims in worker processes (proofs_check.parallel) measure what they measure in the
command's own process, come back in the order asked for, and a Ctrl-C stops the workers."""

from __future__ import annotations

import importlib
import json
import multiprocessing
import os
import signal
import sys
import time

import pytest

from proofs_check import parallel, registry
from proofs_check.cli import main


@pytest.fixture
def test_claims(monkeypatch):
    """tests/parallel_claims.py's claims, registered in a copy of the registry that the command also reads (the real
    one stays as it is)."""
    import proofs_check.claims

    copy = dict(proofs_check.claims.load_claims())
    monkeypatch.setattr(registry, "REGISTRY", copy)
    monkeypatch.setattr(proofs_check.claims, "REGISTRY", copy)
    sys.modules.pop("parallel_claims", None)
    module = importlib.import_module("parallel_claims")
    yield module
    sys.modules.pop("parallel_claims", None)


def test_worker_count_and_order(monkeypatch):
    monkeypatch.setattr(parallel, "available_cores", lambda: 4)
    assert [parallel.worker_count(None, n) for n in (1, 3, 9)] == [1, 3, 4]
    assert [parallel.worker_count(j, 9) for j in (1, 2, 16)] == [1, 2, 9]
    claims = [registry.Claim(id=i, title="", statement="", assumptions=[], quick_seconds=s)
              for i, s in (("A", 5), ("B", 70), ("C", 5), ("D", 40))]
    assert [c.id for c in parallel.longest_first(claims)] == ["B", "D", "A", "C"]


def test_claims_run_in_workers_and_come_back_in_order(test_claims, tmp_path):
    """Each claim in a process other than this one; results in the order asked for whatever order they end in;
    a raising step is a failed outcome there as here; seed and --arch reach the worker; progress is reported."""
    from theory.architecture import parse_spec

    messages, steps, ended = [], [], []
    handler = signal.getsignal(signal.SIGINT)
    import proofs_check.report  # noqa: F401  (imported here, not by the worker's own imports)

    here = set(parallel.project_modules())
    results = parallel.run_in_workers(
        [test_claims.FIRST, test_claims.SECOND], jobs=2, profile="quick", seed=3, arch_specs=["relu:3"],
        out_dir=tmp_path, running=messages.append, step_finished=lambda: steps.append(1),
        claim_finished=lambda result: ended.append(result.claim.id))
    assert signal.getsignal(signal.SIGINT) is handler  # this process's Ctrl-C handling is as it was
    assert not signal.pthread_sigmask(signal.SIG_BLOCK, [])
    assert [r.claim.id for r in results] == ["PX1", "PX2"] and ended == ["PX2", "PX1"]
    first, second = results
    assert [o.name for o in first.outcomes] == ["exact zero", "seed and archs", "raises"]
    seed_and_archs = first.outcomes[1]
    assert seed_and_archs.measured == 3 and seed_and_archs.details["archs"] == [parse_spec("relu:3").spec]
    assert seed_and_archs.details["array"].tolist() == [0.0, 1.0, 2.0]
    # the worker imported this process's project modules first: Hypothesis draws from their constants
    assert "proofs_check.report" in here and here <= set(seed_and_archs.details["modules"])
    # the worker ignores Ctrl-C (the command's process takes it) and no longer blocks it (it started blocked)
    assert seed_and_archs.details["sigint_ignored"] and not seed_and_archs.details["sigint_blocked"]
    assert seed_and_archs.details["sigint_in_a_loop"]  # an attack's or training's loop puts no handler back
    assert {seed_and_archs.details["pid"], second.outcomes[0].details["pid"]}.isdisjoint({os.getpid()})
    assert first.outcomes[2].failed and "kaput in a worker" in first.outcomes[2].details["error"]
    assert not first.passed and second.passed
    assert (tmp_path / "figures" / "px2.txt").read_text() == "a figure's stand-in"
    assert len(steps) == 5
    assert any(m.get("PX1") == "PX1 halfway" for m in messages)
    assert not multiprocessing.active_children()


def test_each_claim_in_a_fresh_process_longest_first(test_claims, tmp_path):
    """One claim per process (what ran before in a process can change what a step draws), the longest first: with
    one worker, PX2 (5 s by its quick_seconds) before PX1 (1 s), each in a process of its own."""
    ended = []
    first, second = parallel.run_in_workers([test_claims.FIRST, test_claims.SECOND], jobs=1, profile="quick", seed=0,
                                            arch_specs=[], out_dir=tmp_path,
                                            claim_finished=lambda result: ended.append(result.claim.id))
    assert ended == ["PX2", "PX1"]
    assert first.outcomes[1].details["pid"] != second.outcomes[0].details["pid"]


def test_a_worker_that_dies_is_named_and_the_finished_claims_reported(test_claims, tmp_path, capsys):
    """A worker ended from outside (os._exit, as the system ends a process out of memory) is no hang and no
    traceback: one line naming the claim it ran, exit 1, the report of the claims that finished marked incomplete."""
    assert main(["run", "PX2", "PX5", "--jobs", "2", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "proofs-check: error: a worker process ended before its claim did (running: PX5); "), err
    assert "the report of the 1 finished claim (PX2) is in" in err, err
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["complete"], report["not_run"]) == (False, ["PX5"])
    assert report["interrupted_during"] == "PX5: dies (a worker process ended)"
    assert not multiprocessing.active_children()


def test_a_claim_its_worker_cannot_find_is_a_failed_outcome(tmp_path):
    """A claim whose module does not register it at import: the worker reports it as a failed outcome of that claim
    (the other claims and the report go on), not a traceback."""
    stray = registry.Claim(id="PX9", title="", statement="", assumptions=[], module="json")
    (result,) = parallel.run_in_workers([stray], jobs=1, profile="quick", seed=0, arch_specs=[], out_dir=tmp_path)
    (outcome,) = result.outcomes
    assert outcome.failed and outcome.name == "PX9 in a worker process" and "KeyError" in outcome.details["error"]


def test_which_claims_a_fresh_process_can_find(test_claims):
    """A fresh process imports a claim's module by its name from sys.path: not __main__, not a name it lacks."""
    claim = registry.Claim(id="PX8", title="", statement="", assumptions=[])
    assert parallel.not_in_workers([test_claims.FIRST]) is None
    for module in ("__main__", "", "no_such_module_anywhere", "proofs_check.no_such_claims", "string.json",
                   "proofs_check.registry.json"):
        claim.module = module
        assert "is registered by code a fresh process cannot import" in parallel.not_in_workers([claim]), module
    claim.module = "proofs_check.claims.t3"
    assert parallel.not_in_workers([claim]) is None


def test_the_installed_claims_run_in_workers(tmp_path):
    """As the installed program sees them (no checkout on sys.path: an editable install's own finder serves the
    package), every claim can run in a fresh process: the default run is side by side."""
    import subprocess

    code = ("from proofs_check.claims import load_claims\nfrom proofs_check.parallel import not_in_workers\n"
            "print(not_in_workers(list(load_claims().values())))")
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0 and done.stdout.strip().splitlines()[-1] == "None", (done.stdout, done.stderr)


def test_a_ctrl_c_python_discarded_is_polled(test_claims, tmp_path):
    """The command's poll (numerics.checkpoint.raise_if_interrupted) runs while the workers do: a press whose
    KeyboardInterrupt Python discarded stops the run too."""
    calls = []

    def poll():
        calls.append(1)
        if len(calls) == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        parallel.run_in_workers([test_claims.BLOCKING], jobs=1, profile="quick", seed=0, arch_specs=[],
                                out_dir=tmp_path, poll=poll)
    assert not multiprocessing.active_children()


def test_claims_registered_in_this_process_only_run_here(test_claims, tmp_path, capsys):
    """An activation registered by the caller's code exists in the caller's process alone: an explicit --jobs is
    refused before any work (one line, exit 2); by default the claims run in this process."""
    import sympy as sp

    from theory.activations import Activation, registered, x

    with registered(Activation(name="softplus", phi=lambda p: sp.log(1 + sp.exp(x)))):
        assert parallel.not_in_workers([test_claims.SECOND]) is not None
        assert main(["run", "PX2", "PX1", "--jobs", "2", "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert err == ("proofs-check: error: --jobs 2: an activation registered by this process's own code is "
                       "unknown to a fresh process; run with --jobs 1 (every claim in this process)\n"), err
        assert main(["run", "PX2", "PX1", "--no-progress", "--out", str(tmp_path)]) == 1  # PX1's raising step
        report = json.loads((tmp_path / "report.json").read_text())
        assert {o["details"].get("pid") for c in report["claims"] for o in c["outcomes"]} >= {os.getpid()}
    assert parallel.not_in_workers([test_claims.SECOND]) is None


def test_ctrl_c_stops_the_workers_and_keeps_what_finished(test_claims, tmp_path):
    """A KeyboardInterrupt in the command's process (here raised as PX3's blocking step starts) ends the worker
    that runs it at once (the step sleeps 120 s); the claim that had finished is kept, the running one is named."""
    finished, where = [], {}

    def running(messages):
        if "PX3: blocks" in messages.values() and any(r.claim.id == "PX2" for r in finished):
            raise KeyboardInterrupt

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        parallel.run_in_workers([test_claims.SECOND, test_claims.BLOCKING], jobs=2, profile="quick", seed=0,
                                arch_specs=[], out_dir=tmp_path, running=running, results_so_far=finished,
                                where=where)
    assert time.perf_counter() - started < 60
    assert [r.claim.id for r in finished] == ["PX2"] and where == {"PX3": "PX3: blocks"}
    assert not multiprocessing.active_children()


def test_run_with_jobs_writes_the_report_of_claims_run_in_workers(test_claims, tmp_path, capsys):
    """A real claim (T3, the cheapest: every outcome passes in its worker as in tests/test_distillation_theory.py's
    steps) beside a test claim through the command: the report lists them in the order asked for, one line per
    claim as each ends, the worker's figure in the report folder."""
    assert main(["run", "T3", "PX2", "--jobs", "2", "--no-progress", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "T3: passed (" in printed and "PX2: passed (2 outcomes)" in printed and "all 2 claims passed in" in printed
    report = json.loads((tmp_path / "report.json").read_text())
    assert [claim["id"] for claim in report["claims"]] == ["T3", "PX2"] and report["passed"]
    t3 = report["claims"][0]
    assert {o["kind"] for o in t3["outcomes"]} == {"derivation", "check", "counterexample"}
    assert all(o["status"] in ("pass", "n/a") for o in t3["outcomes"]) and len(t3["outcomes"]) > 40
    assert report["claims"][1]["outcomes"][0]["figures"] == ["figures/px2.txt"]
    assert report["claims"][1]["outcomes"][0]["details"]["pid"] != os.getpid()  # run in a worker
    assert (tmp_path / "figures" / "px2.txt").is_file()


def test_ctrl_c_during_a_parallel_run_names_what_was_running(tmp_path, monkeypatch, capsys):
    """The command's line and report after a Ctrl-C while claims ran in workers: the finished claims reported
    (marked incomplete), the rest under not_run, every claim that was running named with its step."""
    from proofs_check.claims import load_claims

    def interrupted(claims, *, results_so_far, where, **kwargs):
        t3 = load_claims()["T3"]
        results_so_far.append(registry.ClaimResult(claim=t3, outcomes=[registry.Outcome(
            name="a stand-in", passed=True, measured=0, expected="0", reason="a stand-in")], seconds=1.0))
        where.update({"K1": "K1: (b) closed forms", "H1": "H1: KKT attack"})
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "run_in_workers", interrupted)
    assert main(["run", "K1", "T3", "H1", "D1", "--jobs", "2", "--out", str(tmp_path)]) == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        "proofs-check: interrupted during K1: (b) closed forms; H1: KKT attack; the report of the 1 finished claim "
        "(T3) is in "), err
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["complete"], report["not_run"]) == (False, ["K1", "H1", "D1"])
    assert [claim["id"] for claim in report["claims"]] == ["T3"]
