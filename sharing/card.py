"""Dataset cards: README.md (YAML front matter, Hugging Face style), CITATION.cff, DataCite JSON.

Everything is generated from what the store says about itself (``dataset``, ``provenance``,
``store_id``, layout and sizes), so a card never claims what the store does not hold.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jinja2
import yaml

from trajstore import __version__, spec
from trajstore.reader import Trajectory

CARD_FILES = ("README.md", "CITATION.cff", "datacite.json")

_README = jinja2.Template(
    """---
{{ front_matter }}---

# {{ title }}

{{ description }}

| | |
|---|---|
{% for key, value in facts %}| {{ key }} | {{ value }} |
{% endfor %}
{% if authors %}## Authors

{% for line in authors %}- {{ line }}
{% endfor %}
{% endif %}## How to cite

See `CITATION.cff`{% if related %}; related work: {{ related | join(", ") }}{% endif %}.

## What it holds

The trajectory of every parameter of `{{ model }}` after each recorded optimizer step, in the open
trajstore format {{ spec_version }} (a Zarr v3 hierarchy or an HDF5 file; specification:
docs/format.md of trajstore). Tensors:

| tensor | shape |
|---|---|
{% for t in tensors %}| `{{ t.name }}` | {{ t.shape }} |
{% endfor %}
## How to read it without trajstore

With plain zarr (v3):

```python
import zarr

root = zarr.open_group("{{ zarr_path }}", mode="r")
w = root["weights"]
n = w.attrs["n_committed"]  # only records 0 .. n-1 are valid
weights = w["value"][:n]  # (records, parameters) {{ dtype }}
steps = w["step"][:n]  # optimizer step of each record
t = next(t for t in w.attrs["layout"] if t["name"] == "{{ first_tensor }}")
tensor = weights[:, t["offset"] : t["offset"] + t["size"]].reshape((n, *t["shape"]))
```

With h5py, after `trajstore convert {{ zarr_path }} run.h5`:

```python
import json, h5py

with h5py.File("run.h5", "r") as f:
    n = int(f["weights"].attrs["n_committed"])
    weights = f["weights/value"][:n]
    layout = json.loads(f["weights"].attrs["layout"])
```

## Integrity

`{{ manifest_name }}` lists the SHA-256 of every file; `trajstore verify` checks it and every
chunk checksum. Store id `{{ store_id }}`.
"""
)


def _facts(traj: Trajectory) -> list[tuple[str, str]]:
    prov = traj.provenance
    optimizer = prov.get("optimizer") or []
    group = optimizer[0] if optimizer else {}
    hyper = ", ".join(f"{k}={group[k]}" for k in ("lr", "momentum", "weight_decay") if k in group)
    facts = [
        ("model", prov.get("model_class", "unknown")),
        ("optimizer", f"{prov.get('optimizer_class', 'unknown')} {hyper}".strip()),
        ("dataset", str(prov.get("dataset", "not stated"))),
        ("seed", str(prov.get("seed", "not stated"))),
        ("records", str(traj.n_records)),
        ("steps", f"{int(traj.steps[0])} to {int(traj.steps[-1])}" if traj.n_records else "none"),
        ("parameters", str(traj.n_params)),
        ("licence", traj.dataset.get("license", "not stated")),
        ("store id", str(traj.store_id)),
    ]
    return [(k, str(v).replace("|", "\\|")) for k, v in facts]


def _split_name(name: str) -> dict[str, str]:
    if "," in name:
        family, given = (p.strip() for p in name.split(",", 1))
    else:
        *given_parts, family = name.split()
        given = " ".join(given_parts)
    out = {"family-names": family}
    if given:
        out["given-names"] = given
    return out


def citation_cff(traj: Trajectory) -> dict[str, Any]:
    """The CITATION.cff (CFF 1.2.0) of the store, as a mapping."""
    d = traj.dataset
    # CFF requires an author: without one recorded, an entity that says so (never an invented name).
    authors: list[dict] = [] if d.get("authors") else [{"name": "unknown (no author recorded in the store)"}]
    for a in d.get("authors") or []:
        person = _split_name(a["name"])
        if a.get("orcid"):
            person["orcid"] = f"https://orcid.org/{a['orcid']}"
        if a.get("affiliation"):
            person["affiliation"] = a["affiliation"]
        authors.append(person)
    cff: dict[str, Any] = {
        "cff-version": "1.2.0",
        "message": "If you use this trajectory, please cite it as below.",
        "type": "dataset",
        "title": d.get("title") or _default_title(traj),
        "authors": authors,
    }
    if d.get("description"):
        cff["abstract"] = d["description"]
    if d.get("license"):
        cff["license"] = d["license"]
    if d.get("keywords"):
        cff["keywords"] = list(d["keywords"])
    if d.get("version"):
        cff["version"] = d["version"]
    created = str(traj.attrs.get(spec.ATTR_CREATED, ""))[:10]
    if len(created) == 10:
        cff["date-released"] = created
    identifiers = [
        {"type": "other", "value": f"trajstore:{traj.store_id}", "description": "trajstore store id"}
    ]
    for r in d.get("related") or []:
        if r.get("type") == "DOI":
            identifiers.append(
                {"type": "doi", "value": r["identifier"], "description": r.get("relation", "")}
            )
        else:
            identifiers.append(
                {"type": "url", "value": r["identifier"], "description": r.get("relation", "")}
            )
    cff["identifiers"] = identifiers
    return cff


def datacite(traj: Trajectory) -> dict[str, Any]:
    """DataCite-style metadata (the JSON a Zenodo-like repository takes)."""
    d = traj.dataset
    creators = []
    for a in d.get("authors") or []:
        parts = _split_name(a["name"])
        creator: dict[str, Any] = {
            "name": f"{parts['family-names']}, {parts.get('given-names', '')}".rstrip(", "),
            "nameType": "Personal",
            "familyName": parts["family-names"],
        }
        if parts.get("given-names"):
            creator["givenName"] = parts["given-names"]
        if a.get("orcid"):
            creator["nameIdentifiers"] = [
                {"nameIdentifier": f"https://orcid.org/{a['orcid']}", "nameIdentifierScheme": "ORCID"}
            ]
        if a.get("affiliation"):
            creator["affiliation"] = [{"name": a["affiliation"]}]
        creators.append(creator)
    created = str(traj.attrs.get(spec.ATTR_CREATED, ""))
    out: dict[str, Any] = {
        "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Neural-network weight trajectory"},
        "titles": [{"title": d.get("title") or _default_title(traj)}],
        "creators": creators,
        "publisher": d.get("publisher") or "not stated",
        "publicationYear": created[:4] if created[:4].isdigit() else None,
        "subjects": [{"subject": k} for k in d.get("keywords") or []],
        "descriptions": [{"description": d["description"], "descriptionType": "Abstract"}]
        if d.get("description")
        else [],
        "rightsList": [{"rightsIdentifier": d["license"], "rightsIdentifierScheme": "SPDX"}]
        if d.get("license")
        else [],
        "relatedIdentifiers": [
            {
                "relatedIdentifier": r["identifier"],
                "relatedIdentifierType": r.get("type", "URL"),
                "relationType": r.get("relation", "IsSupplementTo"),
            }
            for r in d.get("related") or []
        ],
        "fundingReferences": [{"funderName": f} for f in d.get("funding") or []],
        "alternateIdentifiers": [{"alternateIdentifier": traj.store_id, "alternateIdentifierType": "UUID"}],
        "formats": ["application/x-zarr" if traj.backend_name == "zarr" else "application/x-hdf5"],
        "version": d.get("version"),
        "sizes": [f"{traj.n_records} records", f"{traj.n_params} parameters"],
    }
    return {k: v for k, v in out.items() if v not in (None, [], "")}


def _author_line(a: dict) -> str:
    line = a["name"]
    if a.get("orcid"):
        line += f" ([ORCID {a['orcid']}](https://orcid.org/{a['orcid']}))"
    if a.get("affiliation"):
        line += f", {a['affiliation']}"
    return line


def _default_title(traj: Trajectory) -> str:
    model = str(traj.provenance.get("model_class", "a neural network")).rsplit(".", 1)[-1]
    return f"Weight trajectory of {model} ({traj.n_records} records)"


def card_texts(traj: Trajectory, *, source: str | None = None) -> dict[str, str]:
    """File name -> text of README.md, CITATION.cff and datacite.json for the store."""
    d = traj.dataset
    title = d.get("title") or _default_title(traj)
    front = {
        "pretty_name": title,
        "license": (d.get("license") or "unknown").lower(),
        "tags": ["weight-trajectory", "trajstore", *(d.get("keywords") or [])],
        "trajstore": {"spec_version": traj.spec_version, "store_id": traj.store_id},
    }
    tensors = [{"name": t.name, "shape": list(t.shape)} for t in traj.layout]
    readme = _README.render(
        front_matter=yaml.safe_dump(front, sort_keys=False, allow_unicode=True),
        title=title,
        description=d.get("description") or "No description was recorded; add one with `trajstore annotate`.",
        facts=_facts(traj),
        authors=[_author_line(a) for a in d.get("authors") or []],
        related=[r["identifier"] for r in d.get("related") or []],
        model=traj.provenance.get("model_class", "the model"),
        spec_version=traj.spec_version,
        tensors=tensors,
        dtype=str(traj.weights.dtype),
        zarr_path=source or os.path.basename(traj.path.rstrip("/")),
        first_tensor=tensors[0]["name"] if tensors else "",
        manifest_name=spec.MANIFEST_NAME,
        store_id=traj.store_id,
    )
    return {
        "README.md": readme,
        "CITATION.cff": "# Generated by trajstore "
        + __version__
        + "\n"
        + yaml.safe_dump(citation_cff(traj), sort_keys=False, allow_unicode=True),
        "datacite.json": json.dumps(datacite(traj), indent=2) + "\n",
    }


def write_card(store: str, out_dir: str | None = None) -> list[str]:
    """Write the card files into ``out_dir`` (default: inside a Zarr folder, or ``<name>-card/``
    beside an HDF5 file or package); return their paths."""
    from trajstore.reader import open as open_store

    store = os.fspath(store).rstrip("/")
    if out_dir is None:
        out_dir = store if os.path.isdir(store) else os.path.splitext(store)[0] + "-card"
    with open_store(store) as traj:
        texts = card_texts(traj, source=os.path.basename(store))
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for name, text in texts.items():
        path = os.path.join(out_dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        paths.append(path)
    return paths
