"""Zero-code recording of common training patterns, checked against a record the script keeps
itself (weights copied by hand after each step and saved with numpy.save).

Each script writes its own reference into the folder given as its first argument; the test runs
it under ``trajstore record`` and compares: weights bit-identical, one record per iteration,
each loss equal to the loss at the weights it is paired with, gradients equal or flagged.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from torch import nn
from trajstore.recorders import Recorder

import trajstore
from trajstore.validate import validate

from .conftest import run_cli

PRELUDE = """\
import json, sys
import numpy as np
import pytest
import torch
from torch import nn
import torch.nn.functional as F
REF = sys.argv[1]

def flat(tensors):
    return torch.cat([t.detach().reshape(-1).clone() for t in tensors]).numpy()

def save(**arrays):
    for k, v in arrays.items():
        np.save(f"{REF}/{k}.npy", np.asarray(v))
"""


def _script(tmp_path, body: str, name: str):
    script = tmp_path / f"{name}.py"
    script.write_text(PRELUDE + textwrap.dedent(body))
    ref = tmp_path / f"ref_{name}"
    ref.mkdir(exist_ok=True)
    return script, ref


def record(tmp_path, body: str, *, name="s", out=None, args=(), **recorder_options):
    """Write PRELUDE + body as a script and record it as ``trajstore record`` does (run_script
    with a Recorder, in this process: no second torch import); return (exit status, store, refs)."""
    from trajstore.recorders.runner import run_script

    script, ref = _script(tmp_path, body, name)
    out = out or tmp_path / f"{name}.zarr"
    rec = Recorder(None, out, progress=False, script=str(script), **recorder_options)
    code = run_script(str(script), [str(ref), *map(str, args)], rec)
    return code, out, ref


def record_cli(tmp_path, body: str, *options, name="s", out=None, args=(), cwd=None):
    """The same through the real command line in a subprocess: (completed process, store, refs)."""
    script, ref = _script(tmp_path, body, name)
    out = out or tmp_path / f"{name}.zarr"
    p = run_cli("record", *options, "-o", out, script, "--", ref, *args, cwd=cwd)
    return p, out, ref


def _commit_script(repo) -> str:
    """Make ``repo`` a git repository with ``train.py`` committed; returns the commit's hash."""
    git = ["git", "-c", "user.email=t@example.org", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    subprocess.run([*git, "add", "train.py"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "train"], cwd=repo, check=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()

def load(ref, key):
    return np.load(ref / f"{key}.npy")


def test_compiled_model_records_under_original_names(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
        model = torch.compile(net, backend="eager")
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        g = torch.Generator().manual_seed(1)
        snaps, losses = [flat(net.parameters())], []
        for i in range(4):
            x = torch.randn(16, 4, generator=g)
            loss = F.mse_loss(model(x), torch.zeros(16, 1))
            opt.zero_grad(); loss.backward(); losses.append(loss.item()); opt.step()
            snaps.append(flat(net.parameters()))
        save(w=np.stack(snaps), loss=losses)
        json.dump([n for n, _ in net.named_parameters()], open(f"{REF}/names.json", "w"))
        """,
    )
    assert code == 0
    with trajstore.open(out) as t:
        assert t.layout.names == json.loads((ref / "names.json").read_text())  # no _orig_mod.
        np.testing.assert_array_equal(t.weights[:], load(ref, "w"))
        steps, loss = t.observable("loss")
        assert steps.tolist() == [1, 2, 3, 4]
        np.testing.assert_allclose(loss, load(ref, "loss"), rtol=1e-6)
        assert t.observable_attrs("loss")["unit"] == ""  # an MSE is not in nats


def test_wrapped_models_keep_bare_names_in_the_recorder_api(tmp_path):
    """The naming rule: compile's ``_orig_mod.`` and DataParallel's ``module.`` are removed."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    bare = [n for n, _ in net.named_parameters()]
    for i, wrapped in enumerate((torch.compile(net, backend="eager"), nn.DataParallel(net))):
        opt = torch.optim.SGD(wrapped.parameters(), lr=0.1)
        with Recorder(wrapped, tmp_path / f"w{i}.zarr", progress=False) as rec:
            rec.attach(opt)
            wrapped(torch.ones(2, 3)).sum().backward()
            opt.step()
        with trajstore.open(tmp_path / f"w{i}.zarr") as t:
            assert t.layout.names == bare and t.n_records == 2
            assert t.provenance["model_class"].endswith("Sequential")


def test_lbfgs_closure_loss_is_at_the_paired_weights_and_gradient_is_flagged(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        X = torch.randn(32, 3)
        Y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
        model = nn.Linear(3, 1)
        opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
        snaps, pre_loss, pre_grad = [flat(model.parameters())], [], []
        for i in range(3):
            # by hand: loss and gradient at the weights before the step
            l = F.mse_loss(model(X), Y)
            pre_loss.append(l.item())
            pre_grad.append(flat(torch.autograd.grad(l, list(model.parameters()))))
            def closure():
                opt.zero_grad()
                loss = F.mse_loss(model(X), Y)
                loss.backward()
                return loss
            opt.step(closure)
            snaps.append(flat(model.parameters()))
        save(w=np.stack(snaps), loss=pre_loss, grad=np.stack(pre_grad))
        """,
        gradients=True,
    )
    assert code == 0
    with trajstore.open(out) as t:
        np.testing.assert_array_equal(t.weights[:], load(ref, "w"))
        assert t.steps.tolist() == [0, 1, 2, 3]
        steps, loss = t.observable("loss")
        np.testing.assert_allclose(loss, load(ref, "loss"), rtol=1e-6)  # not the sum of 5 evaluations
        assert (t.observable("closure_evaluations")[1] > 1).any()
        assert t.gradient_source == "first_closure_evaluation"  # not the update direction: flagged
        np.testing.assert_allclose(t.gradients.values[:], load(ref, "grad"), rtol=1e-5, atol=1e-7)


def test_lightning_style_step_with_closure_stores_the_gradient_the_update_used(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.Linear(6, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(2)
        snaps, losses, grads = [flat(model.parameters())], [], []
        for i in range(5):
            x, y = torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
            used = {}
            def closure():  # Lightning: training_step, zero_grad, backward inside the step
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                used["g"], used["loss"] = flat(p.grad for p in model.parameters()), loss.item()
                return loss
            opt.step(closure=closure)
            grads.append(used["g"]); losses.append(used["loss"]); snaps.append(flat(model.parameters()))
        save(w=np.stack(snaps), loss=losses, grad=np.stack(grads))
        """,
        gradients=True,
    )
    assert code == 0
    with trajstore.open(out) as t:
        w = t.weights[:]
        np.testing.assert_array_equal(w, load(ref, "w"))
        np.testing.assert_array_equal(t.gradients.values[:], load(ref, "grad"))
        np.testing.assert_allclose(t.gradients.values[:], -(w[1:] - w[:-1]) / 0.1, rtol=1e-3, atol=1e-5)
        np.testing.assert_allclose(t.observable("loss")[1], load(ref, "loss"), rtol=1e-6)
        assert t.observable_attrs("loss")["unit"] == "nats"  # a cross-entropy
        assert t.gradient_source == "update"


GAN = """
class Generator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 2))
    def forward(self, z):
        return self.net(z)

class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 6), nn.ReLU(), nn.Linear(6, 1))
    def forward(self, x):
        return self.net(x)

torch.manual_seed(0)
G, D = Generator(), Discriminator()
opt_d = torch.optim.Adam(D.parameters(), lr=1e-3)
opt_g = torch.optim.Adam(G.parameters(), lr=2e-3)
bce = nn.BCEWithLogitsLoss()
gen = torch.Generator().manual_seed(3)
ones, zeros = torch.ones(16, 1), torch.zeros(16, 1)
wg, wd, ld_, lg_, gd, gg = [flat(G.parameters())], [flat(D.parameters())], [], [], [], []
for i in range(ITERATIONS):
    real = torch.randn(16, 2, generator=gen) + 3
    fake = G(torch.randn(16, 2, generator=gen))
    opt_d.zero_grad()
    ld = bce(D(real), ones) + bce(D(fake.detach()), zeros)
    ld.backward(); gd.append(flat(p.grad for p in D.parameters())); opt_d.step()
    opt_g.zero_grad()
    lg = bce(D(fake), ones)
    lg.backward(); gg.append(flat(p.grad for p in G.parameters())); opt_g.step()
    ld_.append(ld.item()); lg_.append(lg.item())
    wg.append(flat(G.parameters())); wd.append(flat(D.parameters()))
save(wg=np.stack(wg), wd=np.stack(wd), ld=ld_, lg=lg_, gd=np.stack(gd), gg=np.stack(gg))
"""


def _part(t, values, prefix):
    """The columns of ``values`` that belong to tensors named ``prefix*``, in layout order."""
    cols = [np.arange(s.offset, s.stop) for s in t.layout if s.name.startswith(prefix)]
    return values[:, np.concatenate(cols)]


def test_two_optimizers_give_one_record_per_iteration_with_named_series(tmp_path):
    code, out, ref = record(tmp_path, GAN.replace("ITERATIONS", "6"), gradients=True)
    assert code == 0
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(7))  # 6 iterations, not 12 optimizer steps
        w = t.weights[:]
        g_prefix = next(s.name for s in t.layout if s.name.startswith("Generator")).split(".")[0]
        d_prefix = next(s.name for s in t.layout if s.name.startswith("Discriminator")).split(".")[0]
        np.testing.assert_array_equal(_part(t, w, g_prefix + "."), load(ref, "wg"))
        np.testing.assert_array_equal(_part(t, w, d_prefix + "."), load(ref, "wd"))
        grads = t.gradients.values[:]  # each part: the gradient its own optimizer's update used
        np.testing.assert_array_equal(_part(t, grads, d_prefix + "."), load(ref, "gd"))
        np.testing.assert_array_equal(_part(t, grads, g_prefix + "."), load(ref, "gg"))
        assert "loss" not in t.observables and "lr" not in t.observables
        np.testing.assert_allclose(t.observable("loss.opt_d")[1], load(ref, "ld"), rtol=1e-6)
        np.testing.assert_allclose(t.observable("loss.opt_g")[1], load(ref, "lg"), rtol=1e-6)
        assert t.observable("loss.opt_g")[0].tolist() == list(range(1, 7))
        assert t.observable_attrs("loss.opt_d")["evaluated_at"] == "pre_step"
        assert t.observable_attrs("loss.opt_g")["evaluated_at"] == "within_step"
        assert t.observable("lr.opt_d.0")[1][0] == 1e-3 and t.observable("lr.opt_g.0")[1][0] == 2e-3
        prov = t.provenance["optimizers"]
        assert [o["name"] for o in prov] == ["opt_d", "opt_g"]
        from trajstore.analysis.landscape import paired_losses

        np.testing.assert_allclose(paired_losses(t, "loss.opt_d")[:-1], load(ref, "ld"), rtol=1e-6)
        with pytest.raises(ValueError, match="cannot be paired"):
            paired_losses(t, "loss.opt_g")  # at weights no record holds
        assert all(o["optimizer_class"] == "torch.optim.adam.Adam" for o in prov)
    assert validate(out).valid


def test_optimizers_stepping_in_a_varying_pattern_are_refused(tmp_path):
    body = GAN.replace("ITERATIONS", "4").replace(
        "opt_g.zero_grad()",
        "if i == 2: opt_d.step()  # a second critic step in one iteration\n    opt_g.zero_grad()",
    )
    p, out, _ = record_cli(tmp_path, body)
    assert p.returncode != 0
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "out of order" in err[0] and "Traceback" not in p.stderr
    with trajstore.open(out) as t:  # what was recorded before the refusal stays, valid
        assert t.steps.tolist() == [0, 1, 2]
        assert t.metadata["trajstore_partial_last_iteration"] == {"iteration": 3, "stepped": ["opt_d"]}
    assert validate(out).valid


def test_frozen_then_unfrozen_parameters_are_recorded_with_their_trainable_mask(tmp_path):
    code, out, ref = record(
        tmp_path,
        """
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
        for q in model[0].parameters():
            q.requires_grad_(False)
        opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=0.05)
        g = torch.Generator().manual_seed(1)
        snaps = [flat(model.parameters())]
        for i in range(6):
            if i == 3:  # unfreeze the first layer
                for q in model[0].parameters():
                    q.requires_grad_(True)
                opt.add_param_group({"params": list(model[0].parameters()), "lr": 0.01})
            loss = model(torch.randn(8, 4, generator=g)).pow(2).mean()
            opt.zero_grad(); loss.backward(); opt.step()
            snaps.append(flat(model.parameters()))
        save(w=np.stack(snaps))
        """,
    )
    assert code == 0
    with trajstore.open(out) as t:
        assert t.layout.names == ["0.weight", "0.bias", "2.weight", "2.bias"]
        np.testing.assert_array_equal(t.weights[:], load(ref, "w"))
        first = t.layout["0.weight"].size + t.layout["0.bias"].size
        for r in range(4):
            mask = t.trainable_mask(r)
            assert not mask[:first].any() and mask[first:].all()
        assert all(t.trainable_mask(r).all() for r in (4, 5, 6))
        assert np.any(t.weights[6, :first] != t.weights[3, :first])  # its training is recorded
        # one naming per run: ``lr`` (group 0) goes on through step 6, the added group is lr.opt.1
        assert "lr.opt.0" not in t.observables
        assert t.observable("lr")[0].tolist() == list(range(1, 7))
        assert t.observable("lr")[1].tolist() == pytest.approx([0.05] * 6)
        assert t.observable("lr.opt.1")[0].tolist() == [4, 5, 6]
        assert t.observable("lr.opt.1")[1].tolist() == pytest.approx([0.01] * 3)


RESUMABLE = """
import os
torch.manual_seed(int(sys.argv[2]))
model = nn.Linear(4, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1)
ck = f"{REF}/../ckpt.pt"
if sys.argv[3] == "load":
    model.load_state_dict(torch.load(ck, weights_only=True))
g = torch.Generator().manual_seed(int(sys.argv[2]))
x, y = torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g)
data = torch.utils.data.TensorDataset(x, y)
loader = torch.utils.data.DataLoader(data, batch_size=8)
snaps = [flat(model.parameters())]
for epoch in range(2):
    for xb, yb in loader:
        opt.zero_grad(); F.cross_entropy(model(xb), yb).backward(); opt.step()
        snaps.append(flat(model.parameters()))
torch.save(model.state_dict(), ck)
save(w=np.stack(snaps))
"""


def test_resume_refuses_a_gap_and_records_segments(tmp_path):
    out = tmp_path / "r.zarr"
    code, _, _ = record(tmp_path, RESUMABLE, name="a", out=out, args=("0", "fresh"))
    assert code == 0
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(9))
    # A script that does not restore its state: fresh weights would fake a continuation.
    p, _, _ = record_cli(tmp_path, RESUMABLE, "--resume", name="b", out=out, args=("1", "fresh"))
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert p.returncode != 0 and len(err) == 1 and "--resume-new-segment" in err[0], p.stderr
    assert "step 8" in err[0] and "Traceback" not in p.stderr
    with trajstore.open(out) as t:
        assert t.n_records == 9 and "segments" not in t.attrs
    # Loading the checkpoint continues the trajectory exactly: accepted, epochs continue.
    code, _, ref = record(tmp_path, RESUMABLE, name="c", out=out, args=("1", "load"), resume=True)
    assert code == 0
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(17))
        np.testing.assert_array_equal(t.weights[8:], load(ref, "w"))
        assert t.observable("epoch")[1].tolist() == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
        assert t.attrs["segments"][0]["continuous"] and t.segments == [slice(0, 17)]
    # A deliberate new segment: its own first record, and a boundary analyses can respect.
    p, _, ref = record_cli(
        tmp_path, RESUMABLE, "--resume", "--resume-new-segment", name="d", out=out, args=("2", "fresh")
    )
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.steps.tolist() == list(range(26))
        np.testing.assert_array_equal(t.weights[17:], load(ref, "w"))
        seg = t.attrs["segments"][-1]
        assert not seg["continuous"] and seg["start_record"] == 17 and seg["max_abs_gap"] > 0
        assert t.segments == [slice(0, 17), slice(17, 26)]
        from trajstore.analysis.pipeline import analyze

        a = analyze(t, window=5, progress=False)  # analysed per segment, never a lag across the boundary
        assert a.summary()["segments"][1]["start_record"] == 17
        assert 17 in [w.msd.t_w for w in a.windows] and all(len(w.msd.msd) <= 5 for w in a.windows)
    assert validate(out).valid


def test_gradient_accumulation_logs_and_script_provenance(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    body = """
        import trajstore
        torch.manual_seed(0)
        model = nn.Linear(4, 3)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        g = torch.Generator().manual_seed(1)
        snaps, losses, grads = [flat(model.parameters())], [], []
        for i in range(4):
            opt.zero_grad()
            total = 0.0
            for k in range(2):  # gradient accumulation over two micro-batches
                x, y = torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                total += loss.item()
            grads.append(flat(p.grad for p in model.parameters())); losses.append(total)
            opt.step()
            snaps.append(flat(model.parameters()))
            trajstore.log("val_metric", torch.tensor(10.0 * i))  # post_step, at this iteration
        save(w=np.stack(snaps), loss=losses, grad=np.stack(grads))
        """
    (repo / "train.py").write_text(PRELUDE + textwrap.dedent(body))
    head = _commit_script(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ref = tmp_path / "ref"
    ref.mkdir()
    out = tmp_path / "acc.h5"
    p = run_cli("record", "--gradients", "-o", out, repo / "train.py", "--", ref, cwd=elsewhere)
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        np.testing.assert_array_equal(t.weights[:], load(ref, "w"))
        np.testing.assert_array_equal(t.gradients.values[:], load(ref, "grad"))
        np.testing.assert_allclose(t.observable("loss")[1], load(ref, "loss"), rtol=1e-6)
        assert t.observable_attrs("loss")["unit"] == "nats"
        steps, vals = t.observable("val_metric")
        assert steps.tolist() == [1, 2, 3, 4] and vals.tolist() == [0.0, 10.0, 20.0, 30.0]
        prov = t.provenance
        assert prov["code_revision"] == head  # the script's repository, not the cwd (no repo)
        assert prov["script_text"] == (repo / "train.py").read_text() and not prov["script_text_truncated"]
    with open(repo / "train.py", "a") as f:
        f.write("# an uncommitted change\n")
    from trajstore.recorders.runner import run_script  # in this process, whose cwd is another repo

    rec = Recorder(None, out, overwrite=True, progress=False, script=str(repo / "train.py"))
    assert run_script(str(repo / "train.py"), [str(ref)], rec) == 0
    with trajstore.open(out) as t:
        assert t.provenance["code_revision"] == head + "-dirty"


def test_log_is_a_no_op_without_a_recorder_and_imports_no_torch():
    code = "import sys, trajstore; trajstore.log('x', 1.0); assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_recorder_api_provenance_names_the_scripts_repository(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "train.py").write_text(
        "import sys, torch\nfrom trajstore.recorders import Recorder\n"
        "m = torch.nn.Linear(2, 1); opt = torch.optim.SGD(m.parameters(), lr=0.1)\n"
        "with Recorder(m, sys.argv[1], progress=False) as rec:\n"
        "    rec.attach(opt)\n"
        "    m(torch.ones(1, 2)).sum().backward(); opt.step()\n"
    )
    head = _commit_script(repo)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "api.zarr"
    p = subprocess.run(
        [sys.executable, repo / "train.py", out], cwd=elsewhere, capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr
    with trajstore.open(out) as t:
        assert t.provenance["code_revision"] == head
        assert t.provenance["script"] == str(repo / "train.py")


def test_sam_style_two_pass_optimizer_is_refused(tmp_path):
    """SAM's second backward is at perturbed weights: summing it into the loss would be wrong."""
    script = tmp_path / "sam.py"
    script.write_text(
        textwrap.dedent(
            """
            import torch

            class SAM(torch.optim.Optimizer):
                def __init__(self, params, base, rho=0.05):
                    super().__init__(params, {"rho": rho})
                    self.base = base(self.param_groups)
                def first_step(self):
                    with torch.no_grad():
                        for g in self.param_groups:
                            for p in g["params"]:
                                p.add_(g["rho"] * p.grad.sign())
                def second_step(self):
                    self.base.step()

            m = torch.nn.Linear(3, 1)
            opt = SAM(m.parameters(), lambda groups: torch.optim.SGD(groups, lr=0.1))
            for _ in range(3):
                m(torch.ones(2, 3)).pow(2).sum().backward(); opt.first_step(); opt.zero_grad()
                m(torch.ones(2, 3)).pow(2).sum().backward(); opt.second_step(); opt.zero_grad()
            """
        )
    )
    from trajstore.recorders.errors import UnsupportedPatternError
    from trajstore.recorders.runner import run_script

    rec = Recorder(None, tmp_path / "sam.zarr", progress=False, script=str(script))
    with pytest.raises(UnsupportedPatternError, match="SAM-style"):
        run_script(str(script), [], rec)
    assert not (tmp_path / "sam.zarr").exists()  # refused before anything was written


def test_validate_checks_the_recording_attributes(tmp_path):
    import zarr

    from trajstore.info import format_summary, summarize

    model = nn.Linear(3, 2)
    model.bias.requires_grad_(False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    out = tmp_path / "v.zarr"
    # The script is named: under pytest-xdist, ``__main__`` is not a file.
    with Recorder(model, out, progress=False, script=__file__) as rec:
        rec.attach(opt)
        model(torch.ones(1, 3)).sum().backward()
        opt.step()
    assert validate(out).valid
    with trajstore.open(out) as t:
        assert t.attrs["trainable"] == [{"step": 0, "trainable": [True, False]}] and t.spec_version == "1.2"
        info = summarize(t)
        assert info["frozen_tensors_at_last_record"] == ["bias"] and info["segments"] == [[0, 2]]
        text = format_summary(info)
        assert "frozen       1 tensors at the last record: bias" in text
        assert "script_text: <" in text  # the script's copy is summarised, not printed
    for key, bad, msg in [
        ("trainable", [{"step": 0, "trainable": [True]}], "one bool per weights tensor"),
        ("segments", [{"start_record": "3"}], "start_record"),
        ("gradient_source", "guessed", "gradient_source"),
    ]:
        root = zarr.open_group(out, mode="r+")
        good = root.attrs.get(key)
        root.attrs[key] = bad
        report = validate(out)
        assert not report.valid and any(msg in p for p in report.problems), report.problems
        if good is None:
            del root.attrs[key]
        else:
            root.attrs[key] = good
