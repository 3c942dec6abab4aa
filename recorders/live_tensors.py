"""Keeping the recorder on the live parameters and buffers of the model.

Snapshots read flat views of the parameters made at ``bind``. Training code may replace what
those views see after that: a parameter's storage (``p.data = p.data.clamp(-c, c)``,
``Module.to`` / ``.half()`` / ``.double()``, ``torch.utils.swap_tensors``), a module's buffer
tensor (``Module.double()`` makes new BatchNorm statistics), or the parameter itself
(``load_state_dict(..., assign=True)``, ``module.weight = nn.Parameter(...)``, pruning and
parametrizations, which rename it). Before each record :meth:`ParameterWatch.check` follows a
new storage of the same shape and dtype (the record then equals the live weights bit for bit) and
refuses, in one line, what the fixed layout of the store cannot hold: a new shape, another device,
another dtype (``Module.double()`` / ``.half()`` / ``.to(torch.bfloat16)``: the layout keeps the
dtype in training, and float64 weights would be stored rounded to float32 under a layout that says
float32), a parameter no longer the model's under its recorded name, parameters added to the model
and its optimizer. Per record it costs one ``data_ptr()`` and one dict lookup per parameter.
"""

from __future__ import annotations

import torch

from .discovery import _live, unwrap
from .errors import ReplacedParameterError
from .snapshot import SnapshotPool

_DATA_PTR = torch.Tensor.data_ptr  # mapped over the parameters: no Python frame per parameter
_WHEN = (
    "the store's layout is fixed when the recorder attaches: do this before attaching "
    "(under trajstore record: before the first optimizer.step()), or record what follows into a new store"
)


def _dtype_message(what: str, was: torch.dtype, now: torch.dtype, step: int) -> str:
    def short(d: torch.dtype) -> str:
        return str(d).removeprefix("torch.")

    return (
        f"{what} changed dtype from {short(was)} to {short(now)} before step {step} (Module.double(), "
        ".half() or .to(dtype) after the recorder attached): the store's layout keeps the dtype the "
        f"model trains in; {_WHEN}"
    )


def _owners(tensors: list[torch.Tensor], roots: list[torch.nn.Module], kind: str) -> list[tuple]:
    """(module, key, tensor) for every module slot (``_parameters`` or ``_buffers``) that holds
    one of ``tensors`` directly; a tied parameter has one per module that holds it."""
    index = {id(t): t for t in tensors}
    seen: set[tuple[int, str]] = set()
    found = []
    for root in roots:
        for m in unwrap(root).modules():
            for key, t in getattr(m, kind).items():
                if t is not None and id(t) in index and (id(m), key) not in seen:
                    seen.add((id(m), key))
                    found.append((m, key, t))
    return found


def model_roots(model: torch.nn.Module | None, tensors: list[torch.Tensor]) -> list[torch.nn.Module]:
    """The modules to watch: ``model``, or (no single model) every live module that holds one of
    ``tensors`` directly."""
    if model is not None:
        return [model]
    ids = {id(t) for t in tensors}
    return [m for m in _live(torch.nn.Module) if any(id(p) in ids for p in m._parameters.values())]


class ParameterWatch:
    """The recorded parameters (and buffers), their flat views (``flat``, a list updated in
    place), and the checks that keep both on the model's live tensors."""

    def __init__(
        self,
        names: list[str],
        params: list[torch.Tensor],
        model: torch.nn.Module | None,
        buffer_names: list[str],
        buffers: list[torch.Tensor],
    ):
        self.names = names
        self.params = params
        self.model = model
        self.flat = SnapshotPool.flat_views(params)
        self.ptrs = [p.data_ptr() for p in params]
        self.shapes = [tuple(p.shape) for p in params]
        self.devices = [p.device for p in params]
        self.dtypes = [p.dtype for p in params]
        self.roots = model_roots(model, params)
        self.owners = _owners(params, self.roots, "_parameters")
        self.buffer_names = buffer_names
        self.buffers = buffers  # updated in place when a module gets a new buffer tensor
        self.buffer_owners = _owners(buffers, self.roots, "_buffers") if buffers else []
        self._name_of = {id(p): n for n, p in zip(names, params, strict=True)}

    def check(self, step: int) -> None:
        """Before the record of ``step``: follow replaced storage, refuse what cannot be followed."""
        if list(map(_DATA_PTR, self.params)) != self.ptrs:
            self._follow(step)
        for m, key, p in self.owners:
            if m._parameters.get(key) is not p:
                raise ReplacedParameterError(self._replaced_message(m, key, p, step))
        for j, (m, key, b) in enumerate(self.buffer_owners):
            now = m._buffers.get(key)
            if now is not b:
                self._follow_buffer(j, m, key, b, now, step)

    def _follow(self, step: int) -> None:
        for i, p in enumerate(self.params):
            if p.data_ptr() == self.ptrs[i]:
                continue
            name = self.names[i]
            if tuple(p.shape) != self.shapes[i]:
                raise ReplacedParameterError(
                    f"parameter {name} changed shape from {self.shapes[i]} to {tuple(p.shape)} before "
                    f"step {step} (its .data was replaced after the recorder attached); {_WHEN}"
                )
            if p.device != self.devices[i]:
                raise ReplacedParameterError(
                    f"parameter {name} moved from {self.devices[i]} to {p.device} before step {step} "
                    "(Module.to() or .data replaced after the recorder attached); move the model before "
                    "attaching the recorder (under trajstore record: before the first optimizer.step())"
                )
            if p.dtype != self.dtypes[i]:
                was = self.dtypes[i]
                raise ReplacedParameterError(_dtype_message(f"parameter {name}", was, p.dtype, step))
            self.flat[i] = SnapshotPool.flat_views([p])[0]
            self.ptrs[i] = p.data_ptr()

    def _follow_buffer(self, j: int, m, key: str, old: torch.Tensor, now, step: int) -> None:
        i = next(i for i, b in enumerate(self.buffers) if b is old)
        name = self.buffer_names[i]
        if now is None or tuple(now.shape) != tuple(old.shape) or now.device != old.device:
            what = "was removed" if now is None else f"became a {tuple(now.shape)} tensor on {now.device}"
            raise ReplacedParameterError(
                f"buffer {name} ({tuple(old.shape)} on {old.device}) {what} before step {step}; {_WHEN}"
            )
        if now.dtype != old.dtype:
            raise ReplacedParameterError(_dtype_message(f"buffer {name}", old.dtype, now.dtype, step))
        self.buffers[i] = now
        self.buffer_owners[j] = (m, key, now)

    def _replaced_message(self, m: torch.nn.Module, key: str, p: torch.Tensor, step: int) -> str:
        name = self._name_of[id(p)]
        moved = next((k for k, q in m.named_parameters() if q is p), None)
        if moved is not None:
            prefix = name[: -len(key)] if name.endswith(key) else ""
            how = f"is now named {prefix}{moved} (pruning or a parametrization renames it)"
        else:
            now = m._parameters.get(key)
            moved_device = now is not None and now.device != p.device
            where = f" on {now.device} (it was on {p.device})" if moved_device else ""
            how = (
                f"was replaced by another tensor{where} (Module.to() to another kind of device, "
                "load_state_dict(..., assign=True) or an assignment of a new nn.Parameter)"
            )
        return f"parameter {name} {how} before step {step}, after the recorder attached; {_WHEN}"

    def check_added(self, added: set[int], optimizers) -> None:
        """``added``: ids of parameters the optimizers hold now and did not before. Refuse those
        that belong to the model but are not recorded (added to it after the recorder attached)."""
        unrecorded = added - self._name_of.keys()
        if not unrecorded:
            return
        if self.model is not None:
            roots = self.roots
        else:  # every live module that contains a recorded parameter (a GAN's generator, say)
            recorded = self._name_of.keys()
            roots = [m for m in _live(torch.nn.Module) if any(id(q) in recorded for q in m.parameters())]
        for root in roots:
            for name, q in unwrap(root).named_parameters():
                if id(q) in unrecorded:
                    raise ReplacedParameterError(
                        f"parameter {name} {tuple(q.shape)} was added to the model and its optimizer "
                        f"after the recorder attached, so the store would not hold it; {_WHEN}"
                    )

    def check_trained(self, held: set[int], optimizers) -> None:
        """``held``: ids of the parameters the optimizers hold. Refuse when they train none of
        the recorded ones (``torch.func.functional_call`` on copies of the weights): the
        recorded model would never change while training goes on elsewhere."""
        if held and not held & self._name_of.keys():
            kinds = ", ".join(type(o).__name__ for o in optimizers)
            raise ReplacedParameterError(
                f"the attached optimizer(s) ({kinds}) train {len(held)} tensors, none of which is a "
                "parameter of the recorded model (functional code training its own copies of the "
                "weights?), so the store would hold weights that never change; record the tensors "
                "that train: Recorder(None, path).bind(named_parameters=...) before attaching"
            )
