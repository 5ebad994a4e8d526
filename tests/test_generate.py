"""`levelflow generate` across engines: all-or-nothing writes, located errors, determinism."""
import json
import shutil

from conftest import EXAMPLES, PARAMS, pipeline, run_cli, step


def test_examples_generate_for_both_engines(tmp_path):
    result = run_cli("generate", EXAMPLES, "--params", PARAMS, "--out", tmp_path / "out")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["demo_pipeline_cloud_workflows.yaml", "demo_pipeline_composer.py", "retail-daily.yaml"]


def test_a_bad_definition_leaves_earlier_outputs_untouched(tmp_path):
    defs = tmp_path / "defs"
    defs.mkdir()
    shutil.copy(EXAMPLES / "demo_pipeline_cloud_workflows.json", defs)
    out = tmp_path / "out"
    assert run_cli("generate", defs, "--params", PARAMS, "--out", out).returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # A second, valid definition plus a broken one: nothing at all may be written.
    shutil.copy(EXAMPLES / "retail_daily.json", defs)
    (defs / "zz_broken.json").write_text(json.dumps(pipeline([[[step("A", WAIT_TIME_SECONDS="soon")]]])))
    result = run_cli("generate", defs, "--params", PARAMS, "--out", out)
    assert result.returncode == 1
    assert "zz_broken.json:" in result.stderr and "WAIT_TIME_SECONDS" in result.stderr
    assert "Traceback" not in result.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_generation_is_byte_identical(tmp_path):
    for run in ("a", "b"):
        assert run_cli("generate", EXAMPLES, "--params", PARAMS, "--out", tmp_path / run).returncode == 0
    for file in (tmp_path / "a").iterdir():
        assert file.read_bytes() == (tmp_path / "b" / file.name).read_bytes()


def test_out_and_output_are_exclusive(tmp_path):
    result = run_cli("generate", EXAMPLES / "retail_daily.json", "--params", PARAMS)
    assert result.returncode == 2 and "exactly one of --out DIR or -o FILE" in result.stderr
    result = run_cli("generate", EXAMPLES, "--params", PARAMS, "-o", tmp_path / "x.yaml")
    assert result.returncode == 1 and "exactly one definition" in result.stderr
    assert not (tmp_path / "x.yaml").exists()


def test_check_fails_on_stale_files_and_passes_after_generate(tmp_path):
    """generate --check writes nothing: exit 1 with each missing, changed or leftover part file
    named (--diff shows the change), exit 0 once `generate` has written the same files."""
    definition, out = EXAMPLES / "retail_daily.json", tmp_path / "out"
    missing = run_cli("generate", definition, "--params", PARAMS, "--out", out, "--check")
    assert missing.returncode == 1 and "missing: " in missing.stdout and not out.exists()
    assert run_cli("generate", definition, "--params", PARAMS, "--out", out).returncode == 0
    fresh = run_cli("generate", definition, "--params", PARAMS, "--out", out, "--check")
    assert fresh.returncode == 0 and "up to date: 1 file" in fresh.stdout
    [written] = out.iterdir()
    written.write_text(written.read_text().replace("level_1_check", "level_one_check"))
    (out / f"{written.stem}-part-2.yaml").write_text("old part\n")
    stale = run_cli("generate", definition, "--params", PARAMS, "--out", out, "--check", "--diff")
    assert stale.returncode == 1
    assert f"stale: {written}" in stale.stdout and f"no longer generated: {out / (written.stem + '-part-2.yaml')}" in stale.stdout
    assert "-  - level_one_check:" in stale.stdout and "+  - level_1_check:" in stale.stdout
    assert "level_one_check" in written.read_text()  # nothing written
    assert run_cli("generate", definition, "--params", PARAMS, "--out", out, "--diff").returncode == 2  # --diff needs --check


def test_each_file_says_where_it_comes_from(tmp_path):
    """The first line of every generated file: levelflow's version, the definition's path from
    its project, a digest of definition and parameters; the same for a reformatted or moved copy,
    another for a changed value, and a file name with a line break stays inside the comment."""
    import levelflow

    def first_lines(definition, engine):
        out = tmp_path / f"out-{engine}"
        shutil.rmtree(out, ignore_errors=True)
        mode = ["--step-mode", "functions"] if engine == "composer" else []
        result = run_cli("generate", definition, "--params", PARAMS, "--out", out, "--engine", engine, *mode)
        assert result.returncode == 0, result.stderr
        return {path.name: path.read_text().splitlines()[0] for path in out.iterdir()}

    original = EXAMPLES / "retail_daily.json"
    lines = first_lines(original, "cloud_workflows") | first_lines(original, "composer")
    assert set(lines.values()) and all(line.startswith(f"# levelflow {levelflow.__version__}; source \"examples/retail_daily.json\"; "
                                                        "definition and parameters sha256 ") for line in lines.values())
    digest = lines["retail-daily.yaml"].rsplit(" ", 1)[1]
    assert len(digest) == 16 and lines["retail-daily.py"].rsplit(" ", 1)[1] != digest  # the engine is part of it
    moved = tmp_path / "moved\nname.json"  # outside any project: its bare name, JSON-escaped
    moved.write_text(json.dumps(json.loads(original.read_text()), indent=4))
    [line] = first_lines(moved, "cloud_workflows").values()
    assert line.endswith(f'source "moved\\nname.json"; definition and parameters sha256 {digest}')
    changed = json.loads(original.read_text())
    changed["definition"][0]["THREADS"][0]["STEPS"][0]["WAIT_TIME_SECONDS"] = "31"
    moved.write_text(json.dumps(changed))
    [line] = first_lines(moved, "cloud_workflows").values()
    assert not line.endswith(digest)


def test_quiet_prints_only_problems_and_json_reports_what_generate_wrote(tmp_path):
    """`levelflow --quiet` drops the "ok:" / "wrote" lines and keeps errors, warnings and the
    exit status; `generate --format json` lists what it wrote, and with --check each output's state."""
    out = tmp_path / "out"
    args = ["generate", EXAMPLES / "retail_daily.json", "--params", PARAMS, "--out", out]
    quiet = run_cli("--quiet", *args)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    assert run_cli("-q", "validate", EXAMPLES).stdout == ""
    ran = run_cli("-q", "run", EXAMPLES / "demo_pipeline_cloud_workflows.json", "--params", PARAMS, "--simulate",
                  "--state", tmp_path / "r.db")
    assert ran.returncode == 0 and ran.stdout == "" and ran.stderr == ""  # no header, view or summary
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(pipeline([[[step("J1", WAIT_TIME_SECONDS="soon")]]])))
    failed = run_cli("-q", "validate", bad)
    assert failed.returncode == 1 and "WAIT_TIME_SECONDS" in failed.stderr
    [written] = json.loads(run_cli(*args, "--format", "json").stdout)["written"]
    assert written == str(out / "retail-daily.yaml")
    checked = run_cli(*args, "--check", "--format", "json")
    assert checked.returncode == 0
    assert json.loads(checked.stdout) == {"up_to_date": True, "outputs": [{"path": written, "state": "up to date"}]}
    (out / "retail-daily.yaml").write_text("changed\n")
    stale = run_cli(*args, "--check", "--format", "json")
    assert stale.returncode == 1 and json.loads(stale.stdout)["outputs"] == [{"path": written, "state": "stale"}]
