"""Every resource and data source of the module against its provider's schema
(tests/provider_schema.py says where the schemas come from): each argument and nested block it
sets exists there, at that depth, and each required argument is set."""
from __future__ import annotations

import re
from pathlib import Path

import hcl2

from levelflow_commands import ROOT
from provider_schema import META_ARGUMENTS, PACKAGES, Block, provider

MODULE = ROOT / "terraform"
HCL_KEYS = {"__is_block__", "__comments__", "__inline_comments__", "__start_line__", "__end_line__"}


def unquote(text: str) -> str:
    return text[1:-1] if text.startswith('"') and text.endswith('"') else text


def declared_provider(kind: str, body: dict) -> str:
    """The provider a block is checked against: its `provider` meta-argument, else its type's prefix."""
    return unquote(body["provider"]) if "provider" in body else kind.split("_")[0]


def schema_for(block_kind: str, kind: str, body: dict) -> Block:
    name = declared_provider(kind, body)
    assert name in PACKAGES, f"no schema package for provider {name}"
    # Registry pages are named by the type, less the provider's prefix in some providers' docs
    # (google: workflows_workflow; google-beta: google_workflows_workflow; local: file).
    types, section = provider(name).types, "resources" if block_kind == "resource" else "data-sources"
    keys = [(section, kind), (section, kind.split("_", 1)[-1])]
    found = next((types[key] for key in keys if key in types), None)
    assert found is not None, f"{block_kind} {kind}: hashicorp/{name} {provider(name).version} has no such type"
    return found


def problems(body: dict, schema: Block, where: str, top: bool = True) -> list[str]:
    found = []
    given = {key: value for key, value in body.items() if key not in HCL_KEYS}
    for dynamic in given.pop("dynamic", []):
        for name, spec in dynamic.items():
            name = unquote(name)
            if name not in schema.blocks:
                found.append(f"{where}: no nested block {name!r} (dynamic)")
                continue
            for content in spec.get("content", []):
                found += problems(content, schema.blocks[name], f"{where}.{name}", top=False)
    for name, value in given.items():
        if top and name in META_ARGUMENTS:
            continue
        if name in schema.blocks:
            for nested in value if isinstance(value, list) else [value]:
                if isinstance(nested, dict):
                    found += problems(nested, schema.blocks[name], f"{where}.{name}", top=False)
        elif name not in schema.arguments:
            found.append(f"{where}: no argument {name!r}")
    dynamic_names = {unquote(name) for dynamic in body.get("dynamic", []) for name in dynamic}
    for name, required in schema.arguments.items():
        if required and name not in given and name not in dynamic_names:
            found.append(f"{where}: required argument {name!r} is not set")
    return found


def module_blocks(directory: Path):
    """(file, "resource" | "data", type, name, body) of every resource and data source."""
    for path in sorted(directory.glob("*.tf")):
        tree = hcl2.load(path.open(encoding="utf-8"))
        for block_kind in ("resource", "data"):
            for entry in tree.get(block_kind, []):
                for kind, named in entry.items():
                    for name, body in named.items():
                        yield path.name, block_kind, unquote(kind), unquote(name), body


def module_problems(directory: Path) -> list[str]:
    found = []
    for file, block_kind, kind, name, body in module_blocks(directory):
        address = f"{file}: {'data.' if block_kind == 'data' else ''}{kind}.{name}"
        found += problems(body, schema_for(block_kind, kind, body), address)
    return found


def test_every_argument_of_the_module_is_in_its_provider_s_schema():
    assert sum(1 for _ in module_blocks(MODULE)) > 20
    assert module_problems(MODULE) == []


def test_the_schemas_are_of_provider_versions_the_module_admits():
    versions = (MODULE / "versions.tf").read_text(encoding="utf-8")
    for name in ("google", "google-beta"):
        constraint = re.search(rf'{name} = {{\s*source\s*=\s*"hashicorp/{name}"\s*version\s*=\s*"([^"]+)"', versions).group(1)
        assert constraint == ">= 6.36, < 8"
        major, minor, _patch = (int(part) for part in provider(name).version.split("."))
        assert (major, minor) >= (6, 36) and major < 8 and provider(name).version == PACKAGES[name][1]


def test_the_check_finds_a_misspelled_argument_a_wrong_nested_one_and_a_missing_required_one(tmp_path):
    for path in MODULE.glob("*.tf"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    workflows = tmp_path / "workflows.tf"
    text = workflows.read_text(encoding="utf-8")
    workflows.write_text(text.replace("call_log_level  =", "call_log_levl  =", 1).replace(
        '  service  = "workflows.googleapis.com"\n', "", 1), encoding="utf-8")
    composer = tmp_path / "composer.tf"
    composer.write_text(composer.read_text(encoding="utf-8").replace("count      = var.composer_config.workloads_config.scheduler.count",
                                                                     "replicas   = var.composer_config.workloads_config.scheduler.count", 1),
                        encoding="utf-8")
    found = module_problems(tmp_path)
    assert found == [
        "composer.tf: google_composer_environment.this.config.workloads_config.scheduler: no argument 'replicas'",
        "workflows.tf: google_workflows_workflow.this: no argument 'call_log_levl'",
        "workflows.tf: google_project_service_identity.workflows: required argument 'service' is not set",
    ]
