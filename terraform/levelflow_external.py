#!/usr/bin/env python3
"""Program for Terraform `external` data sources: run one levelflow command, answer in JSON.

Terraform writes the data source's `query` (a JSON object of strings) to stdin and reads a
JSON object of strings from stdout; anything on stderr is shown to the user if we fail.
The command is split with POSIX shell rules and run without a shell.

* {"command": "levelflow --version"} answers {"output": <what the command printed>}. Given
  "params_file": F and "params_json": J too (for `levelflow plan ... --params F`), it first
  writes J to F.
* {"command": "levelflow generate ... --out DIR", "out_dir": DIR, "params_file": F,
  "params_json": J} writes J to F, runs the command and answers {"out_dir": DIR}.
  DIR's path carries a hash of every input (definitions, parameters, levelflow version, step
  mode, job files), so when DIR was completed by an earlier run the command is not run again.

Only the standard library: this runs wherever Terraform runs.
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path


def fail(message: str) -> None:
    sys.stderr.write(message.rstrip() + "\n")
    sys.exit(1)


def run(command: str) -> str:
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        fail(f"the command {command!r} cannot be split into words: {exc}")
    if not argv:
        fail("the query's 'command' is empty")
    try:
        done = subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        fail(f"{argv[0]!r} was not found: install levelflow (pip install levelflow) where Terraform runs")
    except OSError as exc:
        fail(f"cannot run {argv[0]!r}: {exc.strerror}")
    if done.returncode != 0:
        fail(f"`{command}` failed (exit status {done.returncode}):\n{done.stderr}{done.stdout}")
    return done.stdout


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temp, path)


def require(query: dict, *keys: str) -> None:
    missing = [key for key in keys if key not in query]
    if missing:
        fail(f"the query needs {', '.join(missing)}")


def generate(query: dict) -> dict:
    require(query, "params_file", "params_json")
    out_dir = Path(query["out_dir"])
    # A marker beside (not inside) the output dir, so that globbing the outputs never sees it.
    complete = out_dir.with_name(out_dir.name + ".complete")
    if not complete.exists():
        write_atomic(Path(query["params_file"]), query["params_json"])
        run(query["command"])
        complete.touch()
    return {"out_dir": query["out_dir"]}


def main() -> None:
    try:
        query = json.load(sys.stdin)
    except (ValueError, UnicodeDecodeError) as exc:
        fail(f"the query on standard input is not JSON: {exc}")
    if not isinstance(query, dict) or not all(isinstance(v, str) for v in query.values()):
        fail("the query must be a JSON object of strings (Terraform's external data source protocol)")
    if "command" not in query:
        fail(f"the query needs a 'command', got keys {sorted(query)}")
    if "out_dir" in query:
        answer = generate(query)
    else:
        # Several data sources may write the same parameters file: each write is atomic and alike.
        if "params_file" in query or "params_json" in query:
            require(query, "params_file", "params_json")
            write_atomic(Path(query["params_file"]), query["params_json"])
        answer = {"output": run(query["command"]).strip()}
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
