"""Shared helpers: seeding, device choice, autocast, JSON-line logging, ONNX export and checks."""
import contextlib
import inspect
import json
import os
import random
import sys
import time

import numpy as np
import torch

try:  # onnxruntime is optional (absent on the Debian CPU machine)
    import onnxruntime as _ort  # type: ignore
except Exception:  # pragma: no cover
    _ort = None


def log(event, **fields):
    """One JSON line on stdout (progress and metrics)."""
    rec = {"event": event, "t": round(time.time() - _T0, 2)}
    rec.update(fields)
    print(json.dumps(rec, default=_jsonable), flush=True)


def _jsonable(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, torch.Tensor):
        return o.tolist()
    return str(o)


_T0 = time.time()


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def setup_determinism(device):
    if device.type == "cpu":
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        try:
            torch.use_deterministic_algorithms(True, warn_only=True)
        except TypeError:  # very old torch
            pass
    else:
        # Seeded, but not bitwise deterministic on CUDA: cudnn's deterministic algorithms made the conv
        # nets several times slower on the H100, and the full scale has a time budget anyway.
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def pick_device(name="auto"):
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda asked for but torch.cuda.is_available() is False")
    return torch.device(name)


def autocast(device):
    """bf16 autocast on CUDA, nothing on CPU."""
    if device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def n_params(module):
    return int(sum(p.numel() for p in module.parameters()))


class EMA:
    """Exponential moving average of the weights (used for sampling and export)."""

    def __init__(self, model, decay=0.999):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model, decay=None):
        d = self.decay if decay is None else decay
        sd = model.state_dict()
        fk = [k for k, v in sd.items() if v.dtype.is_floating_point]
        sh, cur = [self.shadow[k] for k in fk], [sd[k] for k in fk]
        if hasattr(torch, "_foreach_lerp_"):  # one fused kernel per group of tensors
            torch._foreach_lerp_(sh, cur, 1 - d)
        else:
            for a, b in zip(sh, cur):
                a.mul_(d).add_(b, alpha=1 - d)
        for k, v in sd.items():
            if not v.dtype.is_floating_point:
                self.shadow[k].copy_(v)

    def copy_to(self, model):
        model.load_state_dict(self.shadow)


def adamw(params, lr, device, **kw):
    """AdamW, fused on CUDA where this torch has it."""
    params = list(params)
    if device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        try:
            return torch.optim.AdamW(params, lr=lr, fused=True, **kw)
        except (RuntimeError, TypeError):
            pass
    return torch.optim.AdamW(params, lr=lr, **kw)


class StepBudget:
    """Fixed step count, optionally shortened to fit a wall-clock budget: the speed is measured over
    steps 20..60 (after warm-up), and the total becomes min(steps, budget / seconds-per-step).
    The learning-rate schedule follows the (possibly shortened) total."""

    def __init__(self, steps, seconds=None, device=None):
        self.total, self.seconds, self.device = steps, seconds, device
        self.planned = steps
        self.t_start = time.time()
        self._t20 = None
        self.seconds_per_step = None

    def _sync(self):
        if self.device is not None and self.device.type == "cuda":
            torch.cuda.synchronize()

    def after(self, step):
        if not self.seconds or self.seconds_per_step is not None or self.total <= 80:
            return
        if step == 20:
            self._sync()
            self._t20 = time.time()
        elif step == 60:
            self._sync()
            self.seconds_per_step = (time.time() - self._t20) / 40
            left = self.seconds - (time.time() - self.t_start)
            self.total = max(61, min(self.total, 61 + int(left / self.seconds_per_step)))

    def facts(self):
        return {"planned_steps": self.planned, "steps": self.total, "time_budget_s": self.seconds,
                "seconds_per_step": self.seconds_per_step}


def lr_at(step, total, base, warmup=100):
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * min(1.0, p))))


def set_lr(opt, lr):
    for g in opt.param_groups:
        g["lr"] = lr


# --------------------------------------------------------------------------------------------- ONNX

OPSET = 17
_HAS_DYNAMO_ARG = "dynamo" in inspect.signature(torch.onnx.export).parameters


def export_onnx(module, args, path, input_names, output_names, dynamic_axes, fp16_weights=True,
                atol=2e-3):
    """Export with the TorchScript exporter (dynamo=False on torch 2.x), check with onnx.checker,
    optionally store large float weights as fp16 (with Cast nodes, so inputs/outputs/compute stay fp32),
    and compare against torch with onnxruntime when it is importable. Returns a dict of facts."""
    import onnx

    os.makedirs(os.path.dirname(path), exist_ok=True)
    module = module.eval().float().cpu()
    args = tuple(a.cpu() for a in args)
    kw = dict(input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes,
              opset_version=OPSET, do_constant_folding=True)
    if _HAS_DYNAMO_ARG:
        kw["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(module, args, path, **kw)
    model = onnx.load(path)
    if fp16_weights:
        model = _fp16_initializers(model)
        onnx.save(model, path)
    onnx.checker.check_model(path)
    facts = {"path": path, "bytes": os.path.getsize(path), "opset": OPSET, "fp16_weights": fp16_weights}
    if _ort is None:
        facts["ort_check"] = "skipped (onnxruntime not importable in this Python)"
    else:
        # Compare at a different batch size than the export used, to exercise the dynamic axis.
        args2 = tuple(torch.cat([a, a], 0) if a.dim() > 0 else a for a in args)
        with torch.no_grad():
            ref = module(*args2)
        ref = ref if isinstance(ref, (tuple, list)) else (ref,)
        sess = _ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        got = sess.run(None, {n: a.numpy() for n, a in zip(input_names, args2)})
        err = max(float(np.max(np.abs(g - r.numpy()))) for g, r in zip(got, ref))
        scale = max(float(np.max(np.abs(r.numpy()))) for r in ref) + 1e-6
        facts["ort_max_abs_err"] = err
        facts["ort_rel_err"] = err / scale
        tol = (5e-2 if fp16_weights else atol)
        if err / scale > tol:
            raise RuntimeError(f"onnxruntime output differs from torch for {path}: {err} (scale {scale})")
    return facts


def _fp16_initializers(model, min_elems=256):
    """Store float32 initializers with >= min_elems elements as float16, each followed by a Cast back
    to float32 at the start of the graph (onnxruntime folds the casts at session creation)."""
    from onnx import TensorProto, helper, numpy_helper

    g = model.graph
    new_inits, casts = [], []
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT and int(np.prod(init.dims)) >= min_elems:
            arr = numpy_helper.to_array(init).astype(np.float16)
            name16 = init.name + "__fp16"
            new_inits.append(numpy_helper.from_array(arr, name16))
            casts.append(helper.make_node("Cast", [name16], [init.name], to=TensorProto.FLOAT,
                                          name="cast_" + init.name))
        else:
            new_inits.append(init)
    del g.initializer[:]
    g.initializer.extend(new_inits)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    return model


def write_json(path, obj):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=2, default=_jsonable)
        f.write("\n")


def eprint(*a):
    print(*a, file=sys.stderr, flush=True)
