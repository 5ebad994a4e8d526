"""A rules checker for generated Cloud Workflows: the documented rules that workflows-emulator
does not enforce. `check(files)` returns one message per broken rule, each with its step path
(`workflow/subworkflow/step/...`). The test suite runs it on every workflow a test generates.

Rules, and the documentation page each comes from (cloud.google.com/workflows/docs/...):

- Scoping (reference/syntax/variables, reference/syntax/iteration, reference/syntax/catching-errors,
  reference/syntax/parallel-steps): a variable created inside a `for` loop, an `except` block or
  a parallel branch exists only there; reading it after the block needs an assignment before
  the block, in an enclosing scope. Reads of variables never assigned are reported too.
- Parallel branches (reference/syntax/parallel-steps): a branch may assign a variable declared
  before the parallel step only when it is listed in `shared`; every `shared` name must exist
  before the step.
- Step names (reference/syntax/steps, reference/syntax/syntax-search): unique within a
  (sub)workflow, and not one of the syntax's reserved words (`end`, `call`, `next`, ...).
- Names (reference/rest/v1/projects.locations.workflows, reference/syntax/subworkflows):
  workflow ids of letters, digits, `_` and `-`, starting with a letter, ending with a letter or
  digit, at most 64 characters; subworkflow names of letters, digits and `_`.
- Limits (quotas): an expression at most 400 characters; at most 50 conditions in a `switch` and
  50 entries in an `assign`; an HTTP call's `timeout` at most 1,800 s.
- Authentication (reference/syntax/authenticating, reference/stdlib/http): `auth` (OIDC or
  OAuth2) only on https URLs; a URL given by an expression is resolved from the literal
  settings the workflow assigns (`settings.intermediate`, `settings.functions`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Optional

import yaml

WORKFLOW_ID = re.compile(r"^[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?$")
SUBWORKFLOW_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_STEP_NAMES = frozenset({
    "args", "as", "assign", "branches", "break", "call", "condition", "continue", "end", "except", "for", "in",
    "index", "main", "next", "parallel", "params", "range", "raise", "result", "retry", "return", "shared",
    "steps", "switch", "try", "value",
})
MAX_EXPRESSION = 400
MAX_CONDITIONS = 50
MAX_ASSIGNMENTS = 50
MAX_HTTP_TIMEOUT = 1800
# Names an expression may use without assigning them: the standard library and the literals.
LIBRARY = frozenset({
    "sys", "http", "text", "json", "list", "map", "math", "time", "uuid", "base64", "retry", "events", "hash",
    "googleapis", "experimental", "default", "get_type", "keys", "len", "int", "double", "string", "bool", "if",
    "true", "false", "null", "True", "False", "and", "or", "not", "in",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME = re.compile(r"(?<![\w.])([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\()")


def expressions(value) -> Iterable[str]:
    """The `${...}` expressions inside a value (strings only hold one when they start with it)."""
    if isinstance(value, str):
        if value.startswith("${") and value.endswith("}"):
            yield value[2:-1]
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from expressions(key)
            yield from expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from expressions(item)


def names_read(expression: str) -> set[str]:
    """Root variable names an expression reads (attribute and library names excluded)."""
    return {name for name in _NAME.findall(_STRING.sub('""', expression)) if name not in LIBRARY}


def root(key: str) -> str:
    return re.split(r"[.\[]", key, maxsplit=1)[0]


@dataclass
class _Scope:
    names: set = field(default_factory=set)
    kind: str = "workflow"  # workflow | for | except | branch
    shared: frozenset = frozenset()
    outer: Optional["_Scope"] = None

    def defines(self, name: str) -> bool:
        scope: Optional[_Scope] = self
        while scope is not None:
            if name in scope.names:
                return True
            scope = scope.outer
        return False

    def branch(self) -> Optional["_Scope"]:
        scope: Optional[_Scope] = self
        while scope is not None and scope.kind != "branch":
            scope = scope.outer
        return scope


class Checker:
    def __init__(self, doc: dict, workflow: str):
        self.doc, self.workflow = doc, workflow
        self.problems: list[str] = []
        self.settings = self._settings()

    def _settings(self) -> dict:
        """The literal `settings` map the main workflow assigns (URLs for the auth rule)."""
        for step in self.doc.get("main", {}).get("steps", []):
            (_, body), = step.items()
            for entry in body.get("assign", []) if isinstance(body, dict) else []:
                if "settings" in entry and isinstance(entry["settings"], dict):
                    return entry["settings"]
        return {}

    def problem(self, where: str, message: str) -> None:
        self.problems.append(f"{self.workflow}/{where}: {message}")

    def run(self) -> list[str]:
        if not WORKFLOW_ID.match(self.workflow):
            self.problem("", f"workflow id {self.workflow!r} is invalid (a letter, then letters, digits, '_' or '-', "
                             "ending with a letter or digit, at most 64 characters)")
        for name, sub in self.doc.items():
            if not SUBWORKFLOW_NAME.match(name):
                self.problem(name, "subworkflow names are letters, digits and '_'")
            scope = _Scope(set(sub.get("params", []) if isinstance(sub.get("params"), list) else []))
            scope.names |= {next(iter(p)) for p in sub.get("params", []) if isinstance(p, dict)}
            seen: set[str] = set()
            self.steps(sub.get("steps", []), scope, name, seen)
        return self.problems

    # -- walking ------------------------------------------------------------------------------

    def steps(self, steps: list, scope: _Scope, where: str, seen: set) -> None:
        for item in steps:
            (name, body), = item.items()
            path = f"{where}/{name}"
            if name in seen:
                self.problem(path, "step names must be unique within a (sub)workflow")
            seen.add(name)
            if name in RESERVED_STEP_NAMES:
                self.problem(path, f"{name!r} is a reserved word of the Workflows syntax")
            self.step(body, scope, path, seen)

    def reads(self, value, scope: _Scope, where: str) -> None:
        for expression in expressions(value):
            if len(expression) > MAX_EXPRESSION:
                self.problem(where, f"expression of {len(expression)} characters, more than {MAX_EXPRESSION}")
            for name in sorted(names_read(expression)):
                if not scope.defines(name):
                    self.problem(where, f"reads {name!r}, which is not assigned in this scope (scoping rule)")

    def writes(self, key: str, scope: _Scope, where: str) -> None:
        name = root(key)
        if key != name and not scope.defines(name):
            self.problem(where, f"assigns into {key!r}, but {name!r} is not assigned in this scope")
        branch = scope.branch()
        if branch is not None and not name_in(branch, name) and branch.outer is not None and branch.outer.defines(name) \
                and name not in branch.shared:
            self.problem(where, f"a parallel branch assigns {name!r}, declared outside it, without listing it in shared")
        if not scope.defines(name):
            scope.names.add(name)

    def step(self, body: dict, scope: _Scope, where: str, seen: set) -> None:
        if not isinstance(body, dict):
            return
        for entry in body.get("assign", []):
            (key, value), = entry.items()
            self.reads(value, scope, where)
            self.writes(key, scope, where)
        if "assign" in body and len(body["assign"]) > MAX_ASSIGNMENTS:
            self.problem(where, f"{len(body['assign'])} assignments, more than {MAX_ASSIGNMENTS}")
        if "call" in body:
            self.call(body, scope, where)
        for key in ("return", "raise"):
            if key in body:
                self.reads(body[key], scope, where)
        if "switch" in body:
            if len(body["switch"]) > MAX_CONDITIONS:
                self.problem(where, f"{len(body['switch'])} conditions, more than {MAX_CONDITIONS}")
            for condition in body["switch"]:
                self.reads(condition.get("condition"), scope, where)
                self.step({k: v for k, v in condition.items() if k != "condition"}, scope, where, seen)
        if "steps" in body:
            self.steps(body["steps"], scope, where, seen)
        if "for" in body:
            loop = body["for"]
            self.reads(loop.get("in"), scope, where)
            self.reads(loop.get("range"), scope, where)
            inner = _Scope({loop.get("value"), loop.get("index")} - {None}, "for", outer=scope)
            self.steps(loop.get("steps", []), inner, where, seen)
        if "try" in body:
            before = set(scope.names)
            self.step(body["try"], scope, where, seen)
            retry = body.get("retry")
            if isinstance(retry, dict):
                self.reads({k: v for k, v in retry.items() if k != "predicate"}, scope, where)
            if "except" in body:
                handler = body["except"]
                inner = _Scope({handler.get("as")} - {None}, "except", outer=scope)
                self.steps(handler.get("steps", []), inner, where, seen)
                # When the try raised, what it would have created does not exist after the except
                # (unless the handler leaves by raise / return): assign such names before the try.
                handler_steps = handler.get("steps", [])
                leaves = handler_steps and any(k in next(iter(handler_steps[-1].values())) for k in ("raise", "return"))
                if not leaves:
                    scope.names &= before | (scope.names - _created_in(body["try"]))
        if "parallel" in body:
            parallel = body["parallel"]
            shared = frozenset(parallel.get("shared", []))
            for name in sorted(shared):
                if not scope.defines(name):
                    self.problem(where, f"shared variable {name!r} must be assigned before the parallel step")
            for branch in parallel.get("branches", []):
                (branch_name, branch_body), = branch.items()
                inner = _Scope(set(), "branch", shared, outer=scope)
                if branch_name in seen:
                    self.problem(f"{where}/{branch_name}", "step names must be unique within a (sub)workflow")
                seen.add(branch_name)
                self.steps(branch_body.get("steps", []), inner, f"{where}/{branch_name}", seen)

    def call(self, body: dict, scope: _Scope, where: str) -> None:
        args = body.get("args", {})
        self.reads(args, scope, where)
        target = body["call"]
        if isinstance(target, str) and target.startswith("http."):
            timeout = args.get("timeout") if isinstance(args, dict) else None
            if isinstance(timeout, (int, float)) and timeout > MAX_HTTP_TIMEOUT:
                self.problem(where, f"HTTP time-out {timeout} s, more than {MAX_HTTP_TIMEOUT}")
            if isinstance(args, dict) and args.get("auth"):
                for url in self.urls(args.get("url")):
                    if not url.startswith("https://"):
                        self.problem(where, f"auth {args['auth'].get('type')} on a non-https URL ({url})")
        if "result" in body:
            self.writes(body["result"], scope, where)

    def urls(self, value) -> list[str]:
        """Literal URLs a call's `url` can take: itself, or the settings the workflow assigns."""
        if isinstance(value, str) and not value.startswith("${"):
            return [value]
        return [v for k, v in self.settings.items() if k in ("intermediate", "functions") and isinstance(v, str)]


def _created_in(body) -> set:
    """Names a step body assigns or receives as a call result (any depth)."""
    found: set = set()
    if isinstance(body, dict):
        for entry in body.get("assign", []) if isinstance(body.get("assign"), list) else []:
            found |= {root(k) for k in entry}
        if isinstance(body.get("result"), str):
            found.add(body["result"])
        for value in body.values():
            if isinstance(value, (dict, list)):
                found |= _created_in(value)
    elif isinstance(body, list):
        for item in body:
            found |= _created_in(item)
    return found


def name_in(scope: _Scope, name: str) -> bool:
    return name in scope.names


def check(files: dict[str, str]) -> list[str]:
    """Every broken rule in a set of generated workflow files (name.yaml -> source)."""
    problems: list[str] = []
    for file_name, text in files.items():
        problems += Checker(yaml.safe_load(text), file_name.removesuffix(".yaml")).run()
    return problems
