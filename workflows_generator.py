"""The original AEF generator's command line, kept for existing CI/CD pipelines:

    python3 workflows_generator.py DEFINITION PARAMETERS OUTPUT [True|False]

It does what `levelflow generate DEFINITION --params PARAMETERS -o OUTPUT` does. The last
argument (generate_for_pipeline) keeps its original meaning: True reads a relative PARAMETERS
path from this script's directory, False (the default) from the current directory.
Exit status: 0 success, 1 invalid input (located messages on stderr), 2 usage error.
"""
import sys
from pathlib import Path

from levelflow import LevelflowError, generate

USAGE = "usage: python3 workflows_generator.py DEFINITION PARAMETERS OUTPUT [True|False]"


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 4) or (len(argv) == 4 and argv[3].lower() not in ("true", "false")):
        print(USAGE, file=sys.stderr)
        return 2
    definition, params, output = argv[:3]
    for_pipeline = len(argv) == 4 and argv[3].lower() == "true"
    if for_pipeline and not Path(params).is_absolute():
        params = str(Path(__file__).resolve().parent / params)
    try:
        written = generate([definition], params, output_file=output)
    except LevelflowError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
