"""The dataset description of a store (format 1.1): title, authors, licence, keywords, links.

A store carries it in the root attribute ``dataset`` so that a lab receiving a trajectory can
tell what it is, who made it, how to cite it and under which terms it may be used. This module
checks and normalises the description; it needs nothing beyond the standard library.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import TrajstoreError

TEXT_FIELDS = ("title", "description", "license", "version", "publisher")
LIST_FIELDS = ("authors", "keywords", "related", "funding")
FIELDS = TEXT_FIELDS + LIST_FIELDS
MAX_TEXT = 100_000  # characters: a description, not a payload

_ORCID = re.compile(r"^(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])$")
_SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_SPDX_WORDS = ("AND", "OR", "WITH")
_AUTHOR = re.compile(r"^\s*(?P<name>[^<>]+?)\s*(?:<(?P<extra>[^<>]*)>)?\s*$")


class DescriptionError(TrajstoreError, ValueError):
    """A dataset description field is malformed."""


def orcid_checksum_ok(orcid: str) -> bool:
    """ISO 7064 MOD 11-2 check digit of a bare ORCID iD (``0000-0002-1825-0097``)."""
    digits = orcid.replace("-", "")
    total = 0
    for ch in digits[:-1]:
        total = (total + int(ch)) * 2
    check = (12 - total % 11) % 11
    return digits[-1] == ("X" if check == 10 else str(check))


def normalise_orcid(text: str) -> str:
    """Return the bare ORCID iD of ``text`` (bare or https://orcid.org/ form); raise if invalid."""
    m = _ORCID.match(text.strip())
    if not m or not orcid_checksum_ok(m.group(1)):
        raise DescriptionError(
            f"{text!r} is not a valid ORCID iD: four groups of four digits whose last character is a "
            "check digit over the others; copy it from your ORCID record"
        )
    return m.group(1)


def parse_author(text: str) -> dict[str, str]:
    """Parse ``"Ada Lovelace"`` or ``"Ada Lovelace <0000-0002-1825-0097; Analytical Society>"``.

    Inside the angle brackets, items separated by ``;`` are an ORCID iD (recognised by its form)
    or an affiliation. Returns ``{"name": ..., "orcid"?: ..., "affiliation"?: ...}``.
    """
    m = _AUTHOR.match(text or "")
    if not m or not m.group("name").strip():
        raise DescriptionError(
            f"author {text!r} is malformed; write 'Given Family' or 'Given Family <ORCID; affiliation>'"
        )
    author: dict[str, str] = {"name": m.group("name").strip()}
    for item in (m.group("extra") or "").split(";"):
        item = item.strip()
        if not item:
            continue
        if _ORCID.match(item) or re.fullmatch(r"[\dX-]{15,}", item):
            author["orcid"] = normalise_orcid(item)
        else:
            author["affiliation"] = item
    return author


def check_license(text: str) -> str:
    """Check that ``text`` has the form of an SPDX licence expression (``CC-BY-4.0``,
    ``MIT OR Apache-2.0``); return it stripped. Whether each identifier is on the SPDX list is
    checked by :func:`check_license_known` where the ``license-expression`` package is installed."""
    value = str(text).strip()
    tokens = value.replace("(", " ").replace(")", " ").split()
    ids, words = tokens[::2], tokens[1::2]  # an expression alternates identifier, operator, ...
    if (
        len(tokens) % 2 == 0
        or not all(_SPDX_ID.match(t) and t not in _SPDX_WORDS for t in ids)
        or not all(w in _SPDX_WORDS for w in words)
    ):
        raise DescriptionError(
            f"licence {text!r} is not an SPDX identifier or expression; use e.g. CC-BY-4.0, CC0-1.0 or MIT"
        )
    return value


def check_license_known(text: str) -> str:
    """Validate ``text`` against the SPDX licence list (needs ``license-expression``) and return
    its canonical spelling; without that package, the form check of :func:`check_license` only."""
    value = check_license(text)
    try:
        from license_expression import ExpressionError, get_spdx_licensing
    except ImportError:
        return value
    licensing = get_spdx_licensing()
    try:
        info = licensing.validate(value)
    except ExpressionError as exc:  # pragma: no cover - validate reports errors in its result
        raise DescriptionError(f"licence {text!r}: {exc}") from None
    if info.errors:
        raise DescriptionError(
            f"licence {text!r} is not on the SPDX licence list ({info.errors[0]}); "
            "see https://spdx.org/licenses/ (e.g. CC-BY-4.0, CC0-1.0, MIT)"
        )
    return info.normalized_expression or value


def _related(item: Any) -> dict[str, str]:
    if isinstance(item, str):
        item = {"identifier": item}
    if not isinstance(item, Mapping) or not isinstance(item.get("identifier"), str):
        raise DescriptionError(f"related item {item!r} needs an 'identifier' string (a DOI or URL)")
    identifier = item["identifier"].strip()
    kind = item.get("type") or ("DOI" if re.match(r"^(doi:)?10\.\d{4,}/", identifier) else "URL")
    if kind == "URL" and not re.match(r"^https?://\S+$", identifier):
        raise DescriptionError(
            f"related item {identifier!r} is neither a DOI (10.xxxx/...) nor an http(s) URL"
        )
    out = {
        "identifier": identifier.removeprefix("doi:"),
        "type": str(kind),
        "relation": str(item.get("relation", "IsSupplementTo")),
    }
    return out


def normalise(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Check a (partial) description and return it normalised; unknown keys are refused.

    ``authors`` items may be strings (parsed by :func:`parse_author`) or objects with ``name``
    and optional ``orcid``/``affiliation``; ``related`` items strings (DOI or URL) or objects.
    """
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in FIELDS:
            raise DescriptionError(f"unknown description field {key!r}; known: {', '.join(FIELDS)}")
        if value is None:
            out[key] = None
            continue
        if key in TEXT_FIELDS:
            if not isinstance(value, str) or len(value) > MAX_TEXT:
                raise DescriptionError(
                    f"description field {key!r} must be text of at most {MAX_TEXT} characters"
                )
            out[key] = check_license(value) if key == "license" else value.strip()
            continue
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise DescriptionError(f"description field {key!r} must be a list")
        items = list(value)
        if key == "authors":
            out[key] = [_author(a) for a in items]
        elif key == "related":
            out[key] = [_related(r) for r in items]
        else:
            if not all(isinstance(v, str) and v.strip() for v in items):
                raise DescriptionError(f"description field {key!r} must be a list of non-empty strings")
            out[key] = [v.strip() for v in items]
    return out


def _author(item: Any) -> dict[str, str]:
    if isinstance(item, str):
        return parse_author(item)
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"].strip():
        raise DescriptionError(f"author {item!r} needs a 'name' string")
    unknown = set(item) - {"name", "orcid", "affiliation"}
    if unknown:
        raise DescriptionError(f"author {item['name']!r} has unknown keys {sorted(unknown)}")
    author = {"name": item["name"].strip()}
    if item.get("orcid"):
        author["orcid"] = normalise_orcid(str(item["orcid"]))
    if item.get("affiliation"):
        author["affiliation"] = str(item["affiliation"]).strip()
    return author


def merged(current: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any]:
    """``current`` updated with the normalised ``changes``; a ``None`` value removes a field."""
    out = dict(current or {})
    for key, value in normalise(changes).items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def problems(value: Any) -> list[str]:
    """Every way the stored ``dataset`` attribute breaks the spec (empty when it conforms)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"root attribute 'dataset' must be an object, not {type(value).__name__}"]
    try:
        normalise(value)
    except DescriptionError as exc:
        return [f"root attribute 'dataset': {exc}"]
    return []
