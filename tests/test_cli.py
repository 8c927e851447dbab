import json
import subprocess
import sys
from pathlib import Path

import pytest

from gnnalloc.cli import main


def test_generate_solve_score(tmp_path, capsys):
    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "40", "--servers", "6", "--load", "1.2", "--seed", "3", "--out", str(inst)]) == 0
    alloc = tmp_path / "a.json"
    assert main(["solve", str(inst), "--method", "exact", "--out", str(alloc)]) == 0
    out = capsys.readouterr().out
    assert "objective" in out and "optimal" in out and "NOT certified" not in out
    assert json.loads(alloc.read_text())["format"] == "gnnalloc.allocation/v1"
    assert main(["solve", str(inst), "--method", "equal", "--reference", "exact"]) == 0
    out = capsys.readouterr().out
    gap = float(next(line for line in out.splitlines() if line.startswith("gap")).split()[-1])
    assert gap > 0
    assert main(["score", str(inst), str(alloc), "--reference", str(alloc)]) == 0
    out = capsys.readouterr().out
    assert float(next(line for line in out.splitlines() if line.startswith("gap")).split()[-1]) == 0.0


def test_generate_eua_to_stdout(capsys):
    assert main(["generate", "eua", "--users", "10", "--seed", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["users"]) == 10 and len(doc["servers"]) == 125


@pytest.mark.parametrize(
    "content,needle",
    [
        ("{", "invalid JSON"),
        ('{"format": "gnnalloc.instance/v1", "servers": [], "users": [{"id": "u"}]}', "users[0].server"),
        ('{"format": "gnnalloc.instance/v1", "servers": [{"id": "s", "compute": -1, "bandwidth": 1}], "users": []}', "servers[0].compute"),
    ],
)
def test_bad_files_give_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "gnnalloc.cli", "solve", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_generator_argument_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["generate", "mars", "--users", "3"])


def test_public_api_exports_the_allocator():
    import gnnalloc

    assert isinstance(gnnalloc.Allocator(hidden=8, heads=2, layers=1), __import__("torch").nn.Module)
    assert {"load_instance", "solve", "score", "Allocator"} <= set(gnnalloc.__all__)


def test_every_public_name_is_what_its_name_says_not_a_subpackage():
    """A subpackage imported by the package's __init__ rebinds the package's attribute of its
    name: a function exported under a subpackage's name (``families``) would be that module."""
    import types

    import gnnalloc

    for name in gnnalloc.__all__:
        assert not isinstance(getattr(gnnalloc, name), types.ModuleType), name
    assert isinstance(gnnalloc.families, types.ModuleType)  # the package of the families


@pytest.mark.parametrize("flag, name", [("--search-rounds", "search_rounds"), ("--dual-iterations", "dual_iterations")])
def test_evaluate_rejects_negative_counts_in_one_line(capsys, flag, name):
    from pathlib import Path

    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "default.ckpt"
    code = main(["evaluate", "--checkpoint", str(checkpoint), flag, "-1"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"error: {name}: must be a non-negative integer, got -1"


@pytest.mark.parametrize("flags, message", [
    (["--instances", "0"], "instances: must be an integer in [1, 10000], got 0"),
    (["--links", "8", "0"], "links: must be at least 1, got 0"),
    (["--instances", "-1"], "instances: must be an integer in [1, 10000], got -1"),
])
def test_evaluate_rejects_empty_sizes_in_one_line(capsys, flags, message):
    from pathlib import Path

    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "power.ckpt"
    code = main(["evaluate", "--checkpoint", str(checkpoint), *flags])
    assert code == 2
    assert capsys.readouterr().err.strip() == f"error: {message}"


def test_solve_with_the_dual_method(tmp_path, capsys):
    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "40", "--servers", "6", "--seed", "3", "--out", str(inst)]) == 0
    assert main(["solve", str(inst), "--method", "dual", "--reference", "exact"]) == 0
    out = capsys.readouterr().out
    assert "dual" in out
    gap = float(next(line for line in out.splitlines() if line.startswith("gap")).split()[-1])
    assert -1e-6 <= gap < 0.01  # the exact solver is optimal to its tolerance
    # The dual's own proof of quality, without the exact solver: never below the true gap.
    bound = float(next(line for line in out.splitlines() if line.startswith("proven gap bound")).split()[-1])
    assert gap <= bound < 0.1


@pytest.mark.parametrize("command", ["export", "solve", "evaluate"])
def test_bad_checkpoints_give_one_line_errors(tmp_path, capsys, command):
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x80\x02not a pickle at all")
    instance = tmp_path / "inst.json"
    assert main(["generate", "random", "--users", "5", "--servers", "2", "--out", str(instance)]) == 0
    capsys.readouterr()
    argv = {
        "export": ["export", str(junk), "--out", str(tmp_path / "out.ckpt")],
        "solve": ["solve", str(instance), "--method", "gnn", "--checkpoint", str(junk)],
        "evaluate": ["evaluate", "--checkpoint", str(junk), "--suite", "random", "--users", "10"],
    }[command]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint: ") and err.count("\n") == 1, err


def test_export_refuses_an_exported_checkpoint(tmp_path, capsys):
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "default.ckpt"
    out = tmp_path / "again.ckpt"
    assert main(["export", str(shipped), "--out", str(out)]) == 2
    assert "already an exported" in capsys.readouterr().err
    assert not out.exists()


def test_unusable_out_paths_are_named(tmp_path, capsys):
    assert main(["generate", "random", "--users", "5", "--servers", "2", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: out: ")
    afile = tmp_path / "afile"
    afile.write_text("")
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "default.ckpt"
    # Refused before any solve, not after the table.
    assert main(["evaluate", "--checkpoint", str(shipped), "--users", "20", "--loads", "1",
                 "--out", str(afile)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: out: ") and "gnn" not in captured.out


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["generate", "random", "--users", "5", "--servers", "2", "--penalty", "0.5"], "error: penalty: "),
        (["generate", "random", "--users", "5", "--servers", "2", "--alpha", "nan"], "error: alpha: "),
        (["generate", "random", "--users", "5", "--servers", "2", "--load", "inf"], "error: load: "),
        (["generate", "random", "--users", "5", "--servers", "2", "--load", "1e308"], "error: load: "),
        (["generate", "eua", "--users", "5", "--load", "1e-300"], "error: load: "),
        (["generate", "random", "--users", "5", "--servers", "2", "--seed", "-1"], "error: seed: "),
    ],
)
def test_generator_settings_are_named(argv, needle, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(needle)


@pytest.mark.parametrize(
    "text,needle",
    [
        ('{"format": "gnnalloc.allocation/v1", "users": [{"id": ["u0"], "bandwidth": 1}]}', "users[0].id: expected a string"),
        ('{"format": "gnnalloc.allocation/v1", "users": [{"id": "u0", "bandwidth": 1' + "0" * 400 + "}]}",
         "users[0].bandwidth: must be finite"),
        ("[" * 100_000 + "]" * 100_000, "$: JSON nested too deeply"),
    ],
)
def test_bad_allocation_files_give_one_line_errors(tmp_path, capsys, text, needle):
    instance = tmp_path / "inst.json"
    assert main(["generate", "random", "--users", "3", "--servers", "2", "--out", str(instance)]) == 0
    allocation = tmp_path / "alloc.json"
    allocation.write_text(text)
    capsys.readouterr()
    assert main(["score", str(instance), str(allocation)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {needle}") and err.count("\n") == 1, err


def test_non_utf8_and_deeply_nested_instances(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"format": "gnnalloc.instance/v1", "servers": [{"id": "s\xff"}]}')
    assert main(["solve", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("error: $: not UTF-8/16/32 text")
    bad.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["solve", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("error: $: JSON nested too deeply")


def _fit_error(tmp_path: Path, config: str, *settings: str) -> str:
    """``gnnalloc fit`` of a shipped config with ``settings`` and no steps, expected to refuse them
    (exit 2, no traceback); its stderr."""
    path = Path(__file__).resolve().parents[1] / "training" / "configs" / config
    proc = subprocess.run(
        [sys.executable, "-m", "gnnalloc.cli", "fit", "--config", str(path), "--trainer.logger", "false",
         "--trainer.max_steps", "0", *settings],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return proc.stderr


def test_fit_settings_are_one_line_errors(tmp_path):
    assert "error: batch_size: must be at least 1" in _fit_error(tmp_path, "default.yaml", "--data.batch_size", "0")


@pytest.mark.parametrize("value", [1e308, -1e308, 1.7e308])
def test_score_refuses_values_that_overflow_the_metrics(tmp_path, capsys, value):
    """Sums of values near 1e308 overflow: one named error line and exit 2, never inf/nan."""
    instance = tmp_path / "inst.json"
    assert main(["generate", "random", "--users", "3", "--servers", "2", "--out", str(instance)]) == 0
    from gnnalloc.families.edge import load_instance
    from gnnalloc.families.edge import equal_share

    loaded = load_instance(instance)
    doc = equal_share(loaded).to_dict(loaded)
    for user in doc["users"]:
        user["bandwidth"] = value
        user["compute"] = {server: value for server in user["compute"]}
    allocation = tmp_path / "alloc.json"
    allocation.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["score", str(instance), str(allocation)]) == 2
    out, err = capsys.readouterr()
    assert "inf" not in out and "nan" not in out
    assert err.startswith("error: compute: ") and err.count("\n") == 1, err


def test_an_uncertified_exact_result_is_never_called_the_optimum(tmp_path, capsys, monkeypatch):
    """A gap to an uncertified exact result says so; exact does not grade itself 0 unless certified."""
    import dataclasses

    import gnnalloc.families.edge._methods as dispatch

    real = dispatch.solve_exact
    monkeypatch.setattr(dispatch, "solve_exact", lambda *a, **k: dataclasses.replace(
        real(*a, **k), certified=False, status="optimal_inaccurate"))
    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "20", "--servers", "4", "--out", str(inst)]) == 0
    capsys.readouterr()
    assert main(["solve", str(inst), "--method", "exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    gap = next(line for line in lines if line.startswith("gap"))
    assert "NOT certified" in gap and "0.000000" not in gap
    assert main(["solve", str(inst), "--method", "equal", "--reference", "exact"]) == 0
    gap = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gap"))
    assert gap.startswith("gap to UNCERTIFIED exact result")


def test_solve_dual_anytime_options(tmp_path, capsys):
    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "30", "--servers", "4", "--seed", "2", "--out", str(inst)]) == 0
    capsys.readouterr()
    assert main(["solve", str(inst), "--method", "dual", "--gap-tol", "0.05", "--time-limit", "5"]) == 0
    out = capsys.readouterr().out
    assert "proven gap" in out and "<= gap_tol 0.05" in out
    for args, needle in (
        (["--method", "dual", "--gap-tol", "-1"], "error: gap_tol: must be a non-negative finite number"),
        (["--method", "dual", "--time-limit", "nan"], "error: time_limit: must be a positive finite number"),
        (["--method", "equal", "--gap-tol", "0.1"], "error: gap_tol: only method 'dual' or 'gnn' takes it"),
    ):
        assert main(["solve", str(inst), *args]) == 2
        assert capsys.readouterr().err.startswith(needle)


@pytest.mark.parametrize("family,generate", [
    ("edge", ["generate", "random", "--users", "5", "--servers", "2"]),
    ("power", ["generate", "gaussian", "--links", "4"]),
    ("sfl", ["generate", "sfl", "--clients", "4"]),
])
@pytest.mark.parametrize("damage", ["junk", "truncated", "list"])
def test_bad_checkpoints_of_every_family_give_one_line_without_warnings(tmp_path, capsys, family, generate, damage):
    """No torch warning (from torch.load or elsewhere) leaks beside the one error line."""
    import warnings

    import torch

    from gnnalloc.core import get_family

    shipped = get_family(family).default_checkpoint.read_bytes()
    bad = tmp_path / "bad.ckpt"
    if damage == "junk":
        bad.write_bytes(b"\x80\x02not a pickle at all")
    elif damage == "truncated":
        bad.write_bytes(shipped[: len(shipped) // 2])
    else:
        torch.save([1, 2], bad)
    instance = tmp_path / "inst.json"
    assert main([*generate, "--out", str(instance)]) == 0
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert main(["solve", str(instance), "--method", "gnn", "--checkpoint", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint: ") and err.count("\n") == 1, err
    assert "Warning" not in err and not caught, [str(w.message) for w in caught]


def test_a_reference_neither_method_nor_file_is_named(tmp_path, capsys):
    """The power family has no ``exact``: ``--reference exact`` names ``reference`` and the
    family's methods, not "$: cannot read"."""
    instance = tmp_path / "power.json"
    assert main(["generate", "gaussian", "--links", "4", "--seed", "1", "--out", str(instance)]) == 0
    capsys.readouterr()
    assert main(["solve", str(instance), "--method", "full_power", "--reference", "exact"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: reference: 'exact' is neither a method of the power family (") and "wmmse" in err


def test_evaluate_takes_each_family_s_default_instance_count(monkeypatch, capsys):
    """``--instances`` left out: sfl evaluates its own default of 3 per size, not power's 5."""
    from pathlib import Path

    from gnnalloc.families.sfl import _evaluate

    seen = {}
    monkeypatch.setattr(_evaluate, "sfl_table", lambda model, sizes, instances: seen.update(n=instances) or "")
    monkeypatch.setattr(_evaluate, "_report", lambda *args, **kwargs: 0)
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "sfl.ckpt"
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--links", "5"]) == 0
    assert seen == {"n": 3}


@pytest.mark.parametrize("bug", [False, True])
def test_a_method_s_refusal_exits_2_and_a_library_bug_is_not_blamed_on_the_input(tmp_path, capsys, monkeypatch, bug):
    """An InputError from ``solve`` is the caller's (exit 2, one line naming the field), as the
    server's 422; any other ValueError (numpy's, from a bug inside a method) propagates with its
    traceback, as the server's 500, instead of an exit 2 that blames the input."""
    import gnnalloc.core
    from gnnalloc.core import InputError

    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "20", "--servers", "4", "--out", str(inst)]) == 0
    capsys.readouterr()
    error = ValueError("operands could not be broadcast") if bug else InputError("links: at most 4, got 6")

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(gnnalloc.core, "solve", refuse)
    if bug:
        with pytest.raises(ValueError, match="broadcast"):
            main(["solve", str(inst), "--method", "dual"])
    else:
        assert main(["solve", str(inst), "--method", "dual"]) == 2
        assert capsys.readouterr().err == "error: links: at most 4, got 6\n"


def test_a_reference_file_is_used_with_the_reference_method_and_its_errors_name_it(tmp_path, capsys):
    """``--reference FILE`` grades the reference method too (it used to be ignored silently),
    and a bad reference file is named as the reference, not as the instance's ``$``."""
    inst, equal, bad = tmp_path / "i.json", tmp_path / "equal.json", tmp_path / "bad.json"
    bad.write_text("{")
    assert main(["generate", "random", "--users", "20", "--servers", "4", "--out", str(inst)]) == 0
    assert main(["solve", str(inst), "--method", "equal", "--out", str(equal)]) == 0
    capsys.readouterr()
    assert main(["solve", str(inst), "--method", "exact", "--reference", str(equal)]) == 0
    gap = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("gap"))
    assert gap.startswith("gap to reference allocation") and float(gap.split()[-1]) < 0  # exact beats equal
    for command in (["solve", str(inst)], ["solve", str(inst), "--method", "equal"], ["score", str(inst), str(equal)]):
        assert main([*command, "--reference", str(bad)]) == 2
        assert capsys.readouterr().err.startswith(f"error: reference: {str(bad)!r}: $: invalid JSON")


def test_the_reference_method_named_as_its_own_reference_runs_once(tmp_path, capsys, monkeypatch):
    """``--method exact --reference exact`` is the method's own yardstick, one solve with the
    user's options, not a second, unlimited solve without them."""
    import gnnalloc.core

    inst = tmp_path / "i.json"
    assert main(["generate", "random", "--users", "20", "--servers", "4", "--out", str(inst)]) == 0
    calls = []
    real = gnnalloc.core.solve
    monkeypatch.setattr(gnnalloc.core, "solve", lambda *a, **k: calls.append(k) or real(*a, **k))
    capsys.readouterr()
    assert main(["solve", str(inst), "--method", "exact", "--time-limit", "5", "--reference", "exact"]) == 0
    assert calls == [{"time_limit": 5.0}]
    assert "gap to optimum" in capsys.readouterr().out


def test_fit_reads_the_power_frame_training_mapping_with_its_integers(tmp_path):
    """A YAML mapping keeps ``slots`` an integer (a ``dict[str, float]`` annotation made it 3.0
    and refused it), so the first error here is the fair_time's."""
    stderr = _fit_error(tmp_path, "power.yaml", "--model.frame_training", "{slots: 3, fair_time: 2}")
    assert "error: frame_training.fair_time: " in stderr


def test_python_dash_m_runs_the_command(tmp_path):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "gnnalloc", "generate", "random", "--users", "3", "--servers", "2", "--out",
         str(tmp_path / "i.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "i.json").exists()
