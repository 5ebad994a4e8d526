"""A fast writer of generated workflows: byte for byte what PyYAML writes with the compiler's
dumper (block style, sequences not indented inside mappings, `FlowMap`s on one line, no line
folding, no document markers), for the values a workflow holds: mappings with string keys,
lists, strings, numbers, booleans and null.

PyYAML spends its time in its Python representer, node by node. Here the structure is written
directly, and each scalar is written by PyYAML itself, once per distinct value and context
(block or flow, key or value), so quoting stays PyYAML's. A subtree's text is kept by object
identity (`Emitter`): the compiler reuses the data of a level in every candidate part it
measures, so measuring a part costs joins of texts already written.

What this writer does not reproduce is handed to PyYAML whole (`Unsupported`): multi-line
strings (PyYAML's quoting of those depends on the indentation), a list directly inside a list,
keys PyYAML would write as complex keys, and an object that appears twice in a document (PyYAML
writes an alias for it).
"""
from __future__ import annotations

import re
from typing import Any, Callable


LINE_BREAKS = ("\n", "\r", "\x85", "\u2028", "\u2029")
# Names such as job ids, which PyYAML writes plain in every context unless its resolver reads them
# as another type (_WORDS): written without asking PyYAML. A letter or "_" first: no number.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,100}")
# Workflows expressions, which PyYAML writes plain as block values: printable ASCII, no ": " or
# " #" (which would end a plain scalar), and no implicit type starts with "$".
_EXPRESSION = re.compile(r"\$\{[ -~]*\}")



class FlowMap(dict):
    """A mapping written on one line (step descriptors), to keep the source compact."""


class Unsupported(Exception):
    """A document the fast writer does not reproduce exactly: PyYAML writes it instead."""


# Names that YAML 1.1's resolver reads as booleans or null (in some capitalizations): PyYAML decides.
_WORDS = frozenset(("yes", "no", "true", "false", "on", "off", "null"))


class Scalars:
    """Each scalar as PyYAML writes it, per context; computed once per distinct value."""

    def __init__(self, dump: Callable[[Any], str], quoted: "re.Pattern[str] | None" = None):
        self.dump = dump  # the compiler's yaml.dump of a whole document
        self.quoted = quoted  # strings the dumper's representer always single-quotes (without quotes inside)
        self.same_everywhere: dict[str, str] = {}  # strings written alike in every context
        self.by_context: dict[tuple[bool, bool], dict[str, str]] = {(f, k): {} for f in (False, True) for k in (False, True)}
        self.others: dict[tuple, str] = {}  # numbers, booleans, null

    def text(self, value: Any, flow: bool, key: bool) -> str:
        if type(value) is str:
            found = self.same_everywhere.get(value)
            if found is not None:
                return found
            cache = self.by_context[flow, key]
            found = cache.get(value)
            if found is None:
                found = self._anywhere(value)
                if found is not None:
                    self.same_everywhere[value] = found
                    return found
                found = cache[value] = self._written(value, flow, key)
            return found
        cache_key = (type(value), value, flow, key)
        found = self.others.get(cache_key)
        if found is None:
            found = self.others[cache_key] = self._written(value, flow, key)
        return found

    def _anywhere(self, value: str) -> "str | None":
        """The text of a string that PyYAML writes alike in every context, when it is one: a name
        its resolver reads as a string (written plain), or one the dumper always single-quotes."""
        if _NAME.fullmatch(value) and value.lower() not in _WORDS:
            return value
        if self.quoted is not None and len(value) < 100 and "'" not in value and self.quoted.fullmatch(value):
            return f"'{value}'"
        return None

    def _written(self, value: Any, flow: bool, key: bool) -> str:
        if type(value) is int:
            return str(value)
        if not flow and not key and type(value) is str and _EXPRESSION.fullmatch(value) and ": " not in value and " #" not in value:
            return value
        if isinstance(value, str) and any(mark in value for mark in LINE_BREAKS):
            raise Unsupported("a multi-line string")
        if key and not isinstance(value, str):
            raise Unsupported("a key that is not a string")
        if flow:
            text = self.dump(FlowMap({value: 0}) if key else FlowMap(k=value))
            prefix, suffix = ("{", ": 0}\n") if key else ("{k: ", "}\n")
        else:
            text = self.dump({value: 0} if key else {"k": value})
            prefix, suffix = ("", ": 0\n") if key else ("k: ", "\n")
        if not (text.startswith(prefix) and text.endswith(suffix)) or text.startswith("?"):
            raise Unsupported(f"a scalar PyYAML writes otherwise: {text[:40]!r}")
        return text[len(prefix):len(text) - len(suffix)]


class Emitter:
    """Writes documents; keeps the text of every container it wrote, by identity and place, for as
    long as the emitter lives (the caller keeps those objects alive and unchanged meanwhile).

    A container met twice in one document is left to PyYAML, which writes an alias for it. The
    containers inside a reused text are not counted again: a caller that puts one object both
    inside a reused subtree and elsewhere in a document is not detected (the compiler builds no
    such document; tests compare every document shape with PyYAML's text)."""

    def __init__(self, scalars: Scalars):
        self.scalars = scalars
        self.cache: dict[tuple, tuple[Any, str]] = {}  # (kind, id, indent) -> (object, text)
        self._seen: set[int] = set()

    def document(self, doc: dict) -> str:
        if not isinstance(doc, dict) or not doc:
            raise Unsupported("a document that is not a non-empty mapping")
        self._seen = set()
        return self._mapping_lines(doc, 0)

    def _cached(self, kind: str, value: Any, indent: int, write: Callable[[], str]) -> str:
        """The text of a container, written once."""
        self._note(value)
        key = (kind, id(value), indent)
        found = self.cache.get(key)
        if found is not None and found[0] is value:
            return found[1]
        text = write()
        self.cache[key] = (value, text)
        return text

    def _note(self, value: Any) -> None:
        if id(value) in self._seen:
            raise Unsupported("an object that appears twice")
        self._seen.add(id(value))

    # -- block style --------------------------------------------------------------------------

    def _mapping_lines(self, mapping: dict, indent: int) -> str:
        pad = " " * indent
        return "".join(pad + self._entry(key, value, indent) for key, value in mapping.items())

    def _entry(self, key: Any, value: Any, indent: int) -> str:
        """`key: value` from the key on, ending with a newline; nested containers follow."""
        head = self.scalars.text(key, False, True) + ":"
        if isinstance(value, FlowMap) or not isinstance(value, (dict, list)) or not value:
            return f"{head} {self._inline(value)}\n"
        if isinstance(value, dict):
            return head + "\n" + self._cached("map", value, indent + 2, lambda: self._mapping_lines(value, indent + 2))
        # sequences are not indented inside mappings
        return head + "\n" + self._cached("seq", value, indent, lambda: self._sequence_lines(value, indent))

    def _sequence_lines(self, items: list, indent: int) -> str:
        pad = " " * indent
        return "".join(self._item(item, pad, indent) for item in items)

    def _item(self, item: Any, pad: str, indent: int) -> str:
        if isinstance(item, list) and item:
            raise Unsupported("a list directly inside a list")
        if not isinstance(item, dict) or not item or isinstance(item, FlowMap):
            return f"{pad}- {self._inline(item)}\n"

        def write() -> str:  # the first entry shares the line of "- "; the others are indented under it
            entries = iter(item.items())
            key, value = next(entries)
            text = pad + "- " + self._entry(key, value, indent + 2)
            return text + "".join(pad + "  " + self._entry(k, v, indent + 2) for k, v in entries)

        return self._cached("item", item, indent, write)

    # -- on one line --------------------------------------------------------------------------

    def _inline(self, value: Any) -> str:
        """A scalar in block context, an empty container, or a flow mapping."""
        if isinstance(value, dict):
            return self._flow(value) if value else "{}"
        if isinstance(value, list):
            return "[]"
        return self.scalars.text(value, False, False)

    def _flow(self, value: Any) -> str:
        if isinstance(value, (dict, list)):
            return self._cached("flow", value, 0, lambda: self._flow_text(value))
        return self.scalars.text(value, True, False)

    def _flow_text(self, value: Any) -> str:
        text, parts = self.scalars.text, []
        if isinstance(value, dict):
            for key, item in value.items():  # scalars directly: step descriptors hold little else
                inner = self._flow(item) if isinstance(item, (dict, list)) else text(item, True, False)
                parts.append(f"{text(key, True, True)}: {inner}")
            return "{" + ", ".join(parts) + "}"
        return "[" + ", ".join(self._flow(item) for item in value) + "]"


def dumps(doc: dict, dump: Callable[[Any], str], emitter: "Emitter | None" = None) -> str:
    """`doc` as `dump` (PyYAML) writes it: by the fast writer when it can, else by `dump`."""
    try:
        return (emitter or Emitter(Scalars(dump))).document(doc)
    except Unsupported:
        return dump(doc)


__all__ = ["Emitter", "FlowMap", "Scalars", "Unsupported", "dumps"]
