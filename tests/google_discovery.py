"""Google's own API definitions, for checking requests: the discovery documents that
google-api-python-client ships in `googleapiclient/discovery_cache/documents/`.

Nothing here encodes levelflow's idea of an API. A method is found by matching a URL against
`rootUrl + servicePath + path` of every method of the documents served from that host (URI
template syntax, RFC 6570: `{+name}` is a reserved expansion and may hold slashes, `{name}` may
not); each path parameter must then match its document's `pattern`.

Body checks follow the request schema (`$ref`, `properties`, `additionalProperties`, `items`,
`enum`) and the proto3 JSON mapping (protobuf.dev/programming-guides/proto3/#json, "JSON
Mapping"), which Google's REST APIs use on the wire:
- int64/uint64 (`format` int64/uint64, discovery type `string`) and int32/uint32 (type
  `integer`): "Either numbers or strings are accepted", so an integral JSON number or a string
  of digits passes; a fraction or other text does not.
- float/double (type `number`): a number, a numeric string, "NaN", "Infinity" or "-Infinity".
- bool: only true/false. bytes (`format: byte`): base64 text. Duration (`google-duration`):
  seconds with the suffix "s" ("3.5s"). Timestamp (`google-datetime`): RFC 3339.
- null is accepted for every field ("treated as the default value of the corresponding field").
- Enums: the value names listed in the document (the mapping also accepts the enum's integer,
  but discovery documents do not give the numbers, so an integer is reported).
- Field names: the document's lowerCamelCase names. Proto3 parsers also accept the original
  proto (snake_case) names; they are reported anyway, since generated workflows should use the
  names Google documents.
Required: path parameters marked `required`, and query parameters marked so or whose
description starts "Required." (how the documents render a proto field's REQUIRED behaviour,
e.g. Dataform readFile's `path`). Not checked: which body fields are required.
"""
from __future__ import annotations

import base64
import binascii
import functools
import importlib.resources
import json
import re
import urllib.parse
from dataclasses import dataclass, field

GLOBAL_QUERY = "parameters"  # the document-wide query parameters (alt, fields, key, prettyPrint...)


@functools.lru_cache(maxsize=None)
def documents_dir():
    return importlib.resources.files("googleapiclient") / "discovery_cache" / "documents"


@functools.lru_cache(maxsize=None)
def document(service: str, version: str) -> dict:
    """One discovery document, e.g. document("dataproc", "v1")."""
    path = documents_dir() / f"{service}.{version}.json"
    if not path.is_file():
        raise KeyError(f"google-api-python-client ships no discovery document {service}.{version}")
    return json.loads(path.read_text())


@functools.lru_cache(maxsize=None)
def _documents_for_host(host: str) -> tuple[dict, ...]:
    """Every document served from https://<host>/ (the service name is the host's first label)."""
    service = host.split(".")[0]
    found = []
    for entry in documents_dir().iterdir():
        name = entry.name
        if name.startswith(service + ".") and name.endswith(".json"):
            doc = document(service, name[len(service) + 1:-len(".json")])
            if urllib.parse.urlsplit(doc["rootUrl"]).netloc == host:
                found.append(doc)
    return tuple(found)


def methods(node: dict):
    yield from node.get("methods", {}).values()
    for child in node.get("resources", {}).values():
        yield from methods(child)


@dataclass
class Method:
    """A discovery method, and the path parameters read from one URL."""
    doc: dict
    spec: dict
    path_params: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.spec["id"]

    @property
    def service(self) -> str:
        return self.doc["name"]

    @property
    def version(self) -> str:
        return self.doc["version"]

    @property
    def http_method(self) -> str:
        return self.spec["httpMethod"]

    @property
    def parameters(self) -> dict:
        return self.spec.get("parameters", {})

    @property
    def url_template(self) -> str:
        return self.doc["rootUrl"] + self.doc["servicePath"] + self.spec["path"]

    def pattern_problems(self) -> list[str]:
        problems = []
        for name, value in self.path_params.items():
            pattern = self.parameters.get(name, {}).get("pattern")
            if pattern and not re.fullmatch(pattern.removeprefix("^").removesuffix("$"), value):
                problems.append(f"path parameter {name}={value!r} does not match {pattern}")
        return problems


_EXPRESSION = re.compile(r"\{(\+?)([^}]+)\}")


@functools.lru_cache(maxsize=None)
def _template_regex(template: str) -> tuple[re.Pattern, tuple[str, ...]]:
    parts, names, at = [], [], 0
    for match in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[at:match.start()]))
        parts.append("(.+)" if match.group(1) else "([^/]+)")  # reserved expansion keeps slashes
        names.append(match.group(2))
        at = match.end()
    parts.append(re.escape(template[at:]))
    return re.compile("".join(parts)), tuple(names)


def _literal_length(template: str) -> int:
    return len(_EXPRESSION.sub("", template))


def _fits(http_method: str, url: str) -> list[Method]:
    """Every method whose URL template fits `url` (query ignored), patterns not yet checked."""
    parts = urllib.parse.urlsplit(url)
    target = f"{parts.scheme}://{parts.netloc}{parts.path}"
    fits = []
    for doc in _documents_for_host(parts.netloc):
        for spec in methods(doc):
            if spec["httpMethod"] != http_method.upper():
                continue
            method = Method(doc, spec)
            regex, names = _template_regex(method.url_template)
            match = regex.fullmatch(target)
            if match:
                method.path_params = {name: urllib.parse.unquote(value) for name, value in zip(names, match.groups())}
                fits.append(method)
    return sorted(fits, key=lambda m: (_literal_length(m.url_template), m.version), reverse=True)  # the most specific first


def find_method(http_method: str, url: str) -> Method | None:
    """The method a request is for, or None: among the templates that fit the https://<host>/...
    URL, the most specific one whose path parameters match their patterns."""
    return next((m for m in _fits(http_method, url) if not m.pattern_problems()), None)


def connector_method(call: str) -> Method:
    """The method of a Workflows connector call `googleapis.<service>.<version>.<resource...>.<method>`."""
    _, service, version, *resources, name = call.split(".")
    node = document(service, version)
    try:
        for resource in resources:
            node = node["resources"][resource]
        spec = node["methods"][name]
    except KeyError:
        raise KeyError(f"{call}: no such method in {service}.{version}") from None
    return Method(document(service, version), spec)


def expand_path(method: Method, args: dict) -> str:
    """The method's URL with its path parameters filled in from `args` (RFC 6570)."""
    def value(match: re.Match) -> str:
        reserved, name = match.group(1), match.group(2)
        return urllib.parse.quote(str(args[name]), safe="/:@!$&'()*+,;=" if reserved else "")
    return _EXPRESSION.sub(value, method.url_template)


# -- request checks ----------------------------------------------------------------------------


def request_problems(http_method: str, url: str, body=None, query: dict | None = None) -> list[str]:
    """What is wrong with a request, as human-readable lines (empty when Google would accept it
    as far as its discovery document says). `query` defaults to the URL's own query string."""
    method = find_method(http_method, url)
    if method is None:
        where = f"{http_method.upper()} {urllib.parse.urlsplit(url)._replace(query='').geturl()}"
        closest = _fits(http_method, url)
        if closest:  # the shape fits, a path parameter does not
            return [f"{where}: no such method; closest {closest[0].id}: {p}" for p in closest[0].pattern_problems()]
        return [f"{where}: no such method in Google's discovery documents"]
    if query is None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))
    return method_problems(method, body, query)


def method_problems(method: Method, body, query: dict) -> list[str]:
    problems = method.pattern_problems()
    known = {**method.doc.get(GLOBAL_QUERY, {}), **{k: v for k, v in method.parameters.items() if v["location"] == "query"}}
    for name, spec in method.parameters.items():
        # a query field the API requires is marked only in prose ("Required. ...", from the proto's REQUIRED)
        required = spec.get("required") or spec.get("description", "").startswith("Required.")
        if required and spec["location"] == "query" and name not in query:
            problems.append(f"{method.id}: required query parameter {name} missing")
        if spec.get("required") and spec["location"] == "path" and not method.path_params.get(name):
            problems.append(f"{method.id}: required path parameter {name} missing")
    for name, value in query.items():
        if name not in known:
            problems.append(f"query.{name}: no such query parameter of {method.id}")
        else:
            for item in value if isinstance(value, list) else [value]:  # a repeated parameter comes as a list
                problems += value_problems(method.doc, known[name], item, f"query.{name}", query_text=True)
    request = method.spec.get("request")
    if body is not None and request is None:
        problems.append(f"{method.id} takes no request body, got {_short(body)}")
    elif body is not None:
        problems += value_problems(method.doc, request, body, "body")
    return problems


def _short(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


_INTEGER = re.compile(r"-?\d+")
_NUMBER = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|NaN|-?Infinity")
_DURATION = re.compile(r"-?\d+(\.\d{1,9})?s")
_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?(Z|[+-]\d\d:\d\d)")


def _is_base64(text: str) -> bool:
    try:
        padded = text + "=" * (-len(text) % 4)
        base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)  # standard or URL-safe
        return True
    except (binascii.Error, ValueError):
        return False


def _scalar_problem(schema: dict, value, query_text: bool) -> str | None:
    """Why `value` is not of the schema's JSON type (proto3 JSON mapping), or None."""
    kind, fmt = schema.get("type"), schema.get("format")
    integral = isinstance(value, int) and not isinstance(value, bool)
    if kind == "boolean":
        ok = isinstance(value, bool) or (query_text and value in ("true", "false"))
        return None if ok else "expected a boolean"
    if kind == "integer" or fmt in ("int64", "uint64", "int32", "uint32"):
        ok = integral or (isinstance(value, float) and value.is_integer()) or (isinstance(value, str) and _INTEGER.fullmatch(value))
        return None if ok else f"expected an integer ({fmt or kind}: a number or a string of digits)"
    if kind == "number":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) or (isinstance(value, str) and _NUMBER.fullmatch(value))
        return None if ok else "expected a number"
    if kind == "string":
        if not isinstance(value, str):
            return "expected a string"
        if fmt == "byte" and not _is_base64(value):
            return "expected base64 text (bytes)"
        if fmt == "google-duration" and not _DURATION.fullmatch(value):
            return "expected a duration such as \"3.5s\""
        if fmt == "google-datetime" and not _DATETIME.fullmatch(value):
            return "expected an RFC 3339 timestamp"
        if "enum" in schema and value not in schema["enum"]:
            return f"{value!r} is not one of {', '.join(schema['enum'])}"
    return None


def value_problems(doc: dict, schema: dict, value, where: str, query_text: bool = False) -> list[str]:
    """Problems of one JSON value against a discovery schema, naming their JSON path.
    `query_text`: the value came from a query string, where booleans are spelt true/false."""
    if value is None:
        return []
    name = schema.get("$ref")
    if name:
        schema = {**doc["schemas"][name], "id": name}
    kind = schema.get("type")
    if kind == "any":
        return []
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {_short(value)}"]
        return [p for i, item in enumerate(value) for p in value_problems(doc, schema.get("items", {}), item, f"{where}[{i}]")]
    if kind == "object":
        return _object_problems(doc, schema, value, where)
    problem = _scalar_problem(schema, value, query_text)
    return [f"{where}: {problem}, got {_short(value)}"] if problem else []


def _object_problems(doc: dict, schema: dict, value, where: str) -> list[str]:
    if not isinstance(value, dict):
        return [f"{where}: expected an object ({schema.get('id', 'map')}), got {_short(value)}"]
    properties, extra = schema.get("properties"), schema.get("additionalProperties")
    problems = []
    for key, item in value.items():
        path = f"{where}.{key}"
        if properties and key in properties:
            problems += value_problems(doc, properties[key], item, path)
        elif extra is not None:
            problems += value_problems(doc, extra, item, path)
        elif properties is not None or "id" in schema:
            problems.append(f"{path}: no such field in {schema.get('id', 'this object')}")
    return problems
