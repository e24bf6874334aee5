"""The GPU-test preflight names every missing module and every package below its floor."""

from adabench.measure import preflight


def test_missing_module_and_old_package_are_named():
    found = preflight.problems({"json": "json", "no_such_mod_xyz": "no-such-dist"},
                               {"pytest": (999, 0)})  # fmt: skip
    assert found[0] == "no_such_mod_xyz (pip install no-such-dist)"
    assert found[1].startswith("pytest ") and found[1].endswith("< 999.0")
    assert preflight.problems({"json": "json"}, {}) == []


def test_cli_exits_1_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(preflight, "REQUIRED", {"no_such_mod_xyz": "no-such-dist"})
    monkeypatch.setattr(preflight, "problems", lambda: ["no_such_mod_xyz (pip install x)"])
    assert preflight.main() == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_mod_xyz" in err
