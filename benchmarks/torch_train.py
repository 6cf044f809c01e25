"""Train the shipped architecture on a GPU in plain PyTorch, exporting Keras-named weights.

Why PyTorch: the lent GPU machine has PyTorch but no TensorFlow, and Keras's JAX backend
spent the whole of an earlier device slot autotuning its first compile. This file
rebuilds ``keras.applications.MobileNetV2(alpha=...)`` plus agelens's two heads layer for
layer -- TensorFlow's asymmetric "same" padding, BatchNorm epsilon 1e-3, ReLU6, the
same layer names -- so the weights it writes (``.npz``, one key per Keras weight) load
into ``agelens.model.builder.build_age_model`` unchanged (``benchmarks/torch_to_keras.py``
does that and checks the outputs agree). Nothing here imports agelens or Keras.

Recipe (the CPU recipe of ``train_shipped.py``, made longer because a GPU allows it):
AdamW with warm-up then cosine, label smoothing, square-root class weights, the DLDL
age-distribution loss, flips / rotation / zoom / shift / brightness / contrast done on
the GPU per batch, and an exponential moving average of the weights (buffers included)
that is what gets scored and exported. Training photos from the 200 px folder are, half
the time, shrunk to 64 px and enlarged again, so the model also sees what a 64 px photo
looks like at its input size. The number of epochs is fitted to ``--budget`` seconds
after timing the first two.

Two optional levers, both off by default (then the training step is the one it always was):

* Knowledge distillation from a teacher (``--teacher T.npz --kd-weight k``, "born-again
  network"). The teacher is the same architecture (``--teacher-alpha``), loaded as ``--init``
  loads, in eval mode and without gradients, under the student's autocast, run on the very
  batch the student sees (augmented and mixed up, 0..255: both models rescale inside). Per
  photo, with ``T = --kd-temp``::

      (1 - k) * [CE(group) + age_weight * KL(Gaussian age || student age) + 0.02 * |E[age] - age|]
      + k * [T^2 * KL(softmax(teacher/T) || softmax(student/T)) + age_weight * KL(teacher age || student age)]

  times the class weight, averaged over the batch. The age-distribution term uses temperature 1:
  the teacher's age distribution simply replaces the Gaussian target around the labelled age.
  Why ``(1 - k)`` rather than adding: ``k`` is then the share of each target that comes from the
  teacher (every label term has its teacher counterpart at the same relative weight), and AdamW
  normalises the gradient's overall scale anyway, so only that share matters.
* Auxiliary gender and race heads (``--aux-weight``), two linear layers on the pooled, dropped-out
  features next to the group head, labels from the UTKFace file names; ``aux_weight * (CE_gender
  + CE_race)`` is added (mixed up as the group loss is; missing labels are ignored). They exist
  only while training: the export holds exactly the Keras model's weights.

    python benchmarks/torch_train.py .devdata/gpu/utk.npz /tmp/tt --name A --size 96 --budget 300
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MAX_AGE = 116
EDGES = (30, 60)
GENDERS, RACES = 2, 5  # UTKFace: [age]_[gender 0/1]_[race 0-4]_[date].jpg.chip.jpg
# (expansion, channels, repeats, first stride): MobileNetV2's inverted-residual stages.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def tf_same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow's "same" padding: the extra pixel goes after (bottom/right)."""

    def amounts(n: int) -> tuple[int, int]:
        total = max((-(-n // s) - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    (t, b), (left, r) = amounts(x.shape[-2]), amounts(x.shape[-1])
    return F.pad(x, (left, r, t, b))


class ConvBN(nn.Module):
    """Conv (no bias) + BatchNorm (+ ReLU6), named after the Keras layers it mirrors."""

    def __init__(self, cin: int, cout: int, k: int, s: int, depthwise: bool, act: bool, conv: str, bn: str):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, padding=0, groups=cin if depthwise else 1, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01)
        self.k, self.s, self.act, self.depthwise = k, s, act, depthwise
        self.names = (conv, bn)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k > 1:
            x = tf_same_pad(x, self.k, self.s)
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.act else x


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int, block_id: int):
        super().__init__()
        p = f"block_{block_id}_" if block_id else "expanded_conv_"
        mid = cin * expansion
        self.expand = ConvBN(cin, mid, 1, 1, False, True, p + "expand", p + "expand_BN") if block_id else None
        self.depthwise = ConvBN(mid, mid, 3, stride, True, True, p + "depthwise", p + "depthwise_BN")
        self.project = ConvBN(mid, cout, 1, 1, False, False, p + "project", p + "project_BN")
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


def divisible(v: float, divisor: int = 8) -> int:
    """Keras MobileNetV2's channel rounding: nearest multiple of 8, never more than 10% down."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class AgeNet(nn.Module):
    """MobileNetV2 (width ``alpha``, Keras's channel rules) + dropout + group logits + age-distribution
    logits."""

    def __init__(
        self,
        num_classes: int = 3,
        dropout: float = 0.2,
        bn_momentum: float = 0.01,
        alpha: float = 1.0,
        aux: bool = False,
    ):
        super().__init__()
        cin, block_id = divisible(32 * alpha), 0
        layers: list[nn.Module] = [ConvBN(3, cin, 3, 2, False, True, "Conv1", "bn_Conv1")]
        for t, c, n, s in STAGES:
            cout = divisible(int(c * alpha))
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t, block_id))
                cin, block_id = cout, block_id + 1
        last = divisible(1280 * alpha) if alpha > 1.0 else 1280  # Keras widens the last conv only above 1
        layers.append(ConvBN(cin, last, 1, 1, False, True, "Conv_1", "Conv_1_bn"))
        self.features = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.group = nn.Linear(last, num_classes)
        self.age = nn.Linear(last, MAX_AGE + 1)
        for m in self.modules():  # torchvision's from-scratch initialisation for MobileNetV2
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                m.momentum = bn_momentum
        self.gender = self.race = None
        if aux:  # training-only heads (never exported); the global RNG stream stays as without them
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(12345)
                self.gender, self.race = nn.Linear(last, GENDERS), nn.Linear(last, RACES)
                for lin in (self.gender, self.race):
                    nn.init.normal_(lin.weight, 0, 0.01)
                    nn.init.zeros_(lin.bias)

    def forward(self, x: torch.Tensor, with_aux: bool = False) -> tuple[torch.Tensor, ...]:
        """``x``: float RGB in 0..255, NCHW. Rescaling to [-1, 1] as the Keras model does.

        Returns group and age-distribution logits, plus gender and race logits if ``with_aux``.
        """
        f = self.features(x / 127.5 - 1.0).mean((2, 3))
        f = self.dropout(f)
        if with_aux:
            assert self.gender is not None and self.race is not None
            return self.group(f), self.age(f), self.gender(f), self.race(f)
        return self.group(f), self.age(f)


def keras_weights(model: AgeNet) -> dict[str, np.ndarray]:
    """Weights keyed ``layer/index`` in Keras order and layout (HWIO kernels).

    Only the Keras model's layers: the auxiliary gender/race heads are left out.
    """
    out: dict[str, np.ndarray] = {}
    for m in model.modules():
        if isinstance(m, ConvBN):
            w = m.conv.weight.detach().float().cpu().numpy()
            conv, bn = m.names
            out[f"{conv}/0"] = w.transpose(2, 3, 0, 1) if m.depthwise else w.transpose(2, 3, 1, 0)
            for i, t in enumerate((m.bn.weight, m.bn.bias, m.bn.running_mean, m.bn.running_var)):
                out[f"{bn}/{i}"] = t.detach().float().cpu().numpy()
    for name, lin in (("age_group_logits", model.group), ("age_logits", model.age)):
        out[f"{name}/0"] = lin.weight.detach().float().cpu().numpy().T
        out[f"{name}/1"] = lin.bias.detach().float().cpu().numpy()
    return out


def load_keras_weights(model: AgeNet, path: str) -> None:
    """Inverse of ``keras_weights``: start from an exported (or converted) model."""
    z = np.load(path)

    def put(t: torch.Tensor, arr: np.ndarray) -> None:
        with torch.no_grad():
            t.copy_(torch.from_numpy(np.ascontiguousarray(arr)).to(t.dtype))

    for m in model.modules():
        if isinstance(m, ConvBN):
            conv, bn = m.names
            k = z[f"{conv}/0"]
            put(m.conv.weight, k.transpose(2, 3, 0, 1) if m.depthwise else k.transpose(3, 2, 0, 1))
            for i, t in enumerate((m.bn.weight, m.bn.bias, m.bn.running_mean, m.bn.running_var)):
                put(t, z[f"{bn}/{i}"])
    for name, lin in (("age_group_logits", model.group), ("age_logits", model.age)):
        put(lin.weight, z[f"{name}/0"].T)
        put(lin.bias, z[f"{name}/1"])


# ---------------------------------------------------------------- data


def load_pack(path: str, size: int, limit: int = 0) -> dict[str, np.ndarray]:
    """Decode the pack; photos are enlarged/shrunk to ``size`` as agelens does at predict time."""
    z = np.load(path)
    data, offsets = z["data"], z["offsets"]
    n = len(offsets) - 1
    keep = np.arange(n)
    if limit:
        keep = np.sort(np.random.default_rng(0).permutation(n)[:limit])

    def one(i: int) -> np.ndarray:
        img = cv2.imdecode(data[offsets[i] : offsets[i + 1]], cv2.IMREAD_COLOR)
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        side = img.shape[0]
        if side != size:
            img = cv2.resize(
                img, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
            )
        return img

    with ThreadPoolExecutor(16) as ex:
        x = np.stack(list(ex.map(one, keep)))
    names = z["names"][keep] if "names" in z.files else np.array([b""] * len(keep))
    gender, race = parse_names(names)
    return {
        "x": x,
        "ages": z["ages"][keep],
        "part": z["part"][keep],
        "hires": z["hires"][keep],
        "gender": gender,
        "race": race,
    }


def parse_names(names: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gender (0/1) and race (0-4) from UTKFace names ``age_gender_race_date.jpg.chip.jpg``;
    -1 where a field is missing or not a valid label (a few names lack the race field)."""
    gender = np.full(len(names), -1, np.int64)
    race = np.full(len(names), -1, np.int64)
    for i, n in enumerate(names):
        parts = (n.decode() if isinstance(n, bytes) else str(n)).split("_")
        if len(parts) >= 3 and parts[1] in ("0", "1"):
            gender[i] = int(parts[1])
        if len(parts) >= 4 and parts[2] in ("0", "1", "2", "3", "4"):
            race[i] = int(parts[2])
    return gender, race


def ce_ignore(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy averaged over the photos whose label is known (``target >= 0``); 0 if none."""
    valid = target >= 0
    ce = F.cross_entropy(logits.float(), target.clamp_min(0), reduction="none")
    return (ce * valid).sum() / valid.sum().clamp_min(1)


def soft_kl(teacher_logits: torch.Tensor, student_logp: torch.Tensor, temp: float = 1.0) -> torch.Tensor:
    """Per-photo KL(softmax(teacher / temp) || student), ``student_logp`` already log-softmaxed at temp."""
    t_logp = F.log_softmax(teacher_logits.float() / temp, 1)
    return (t_logp.exp() * (t_logp - student_logp)).sum(1)


def to_group(ages: torch.Tensor) -> torch.Tensor:
    return (ages >= EDGES[0]).long() + (ages >= EDGES[1]).long()


def augment(x: torch.Tensor, hires: torch.Tensor, a: argparse.Namespace, g: torch.Generator) -> torch.Tensor:
    """Per-sample random affine (flip, rotation, zoom, shift), 64 px degradation, colour."""
    n, _, s, _ = x.shape
    dev = x.device

    def u(lo: float, hi: float, shape: tuple = (n,)) -> torch.Tensor:
        return torch.rand(shape, device=dev, generator=g) * (hi - lo) + lo

    if a.degrade > 0:
        sel = hires.bool() & (u(0, 1) < a.degrade)
        if sel.any():
            small = F.interpolate(x[sel], size=(64, 64), mode="area")
            x = x.clone()
            x[sel] = F.interpolate(small, size=(s, s), mode="bilinear", align_corners=False)
    ang = u(-a.rotate, a.rotate) * math.pi / 180
    zoom = u(1 - a.zoom, 1 + a.zoom)
    flip = torch.where(u(0, 1) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(ang) / zoom, torch.sin(ang) / zoom
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, u(-a.shift, a.shift) * 2], 1),
            torch.stack([sin * flip, cos, u(-a.shift, a.shift) * 2], 1),
        ],
        1,
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    x = x + u(-a.brightness, a.brightness, (n, 1, 1, 1)) * 255
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * u(1 - a.contrast, 1 + a.contrast, (n, 1, 1, 1)) + mean
    if a.grey > 0:
        sel = (u(0, 1) < a.grey).view(n, 1, 1, 1)
        x = torch.where(sel, x.mean(1, keepdim=True).expand_as(x), x)
    if a.erase > 0:  # random erasing: one rectangle of noise in some images
        sel = u(0, 1) < a.erase
        h = (u(0.2, 0.45) * s).long()
        w = (u(0.2, 0.45) * s).long()
        y0 = (u(0, 1) * (s - h)).long()
        x0 = (u(0, 1) * (s - w)).long()
        rr = torch.arange(s, device=dev)
        mask = (
            sel[:, None, None]
            & (rr[None, :, None] >= y0[:, None, None])
            & (rr[None, :, None] < (y0 + h)[:, None, None])
            & (rr[None, None, :] >= x0[:, None, None])
            & (rr[None, None, :] < (x0 + w)[:, None, None])
        )
        x = torch.where(mask[:, None], torch.rand(x.shape, device=dev, generator=g) * 255, x)
    return x.clamp(0, 255)


# ---------------------------------------------------------------- training


def macro_f1(y: np.ndarray, p: np.ndarray, k: int = 3) -> float:
    f1s = []
    for c in range(k):
        tp = np.sum((p == c) & (y == c))
        prec, rec = tp / max(np.sum(p == c), 1), tp / max(np.sum(y == c), 1)
        f1s.append(0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec))
    return float(np.mean(f1s))


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: np.ndarray, amp: bool) -> tuple[float, float]:
    model.eval()
    preds = []
    for i in range(0, len(x), 512):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
            logits, _ = model(x[i : i + 512].float().contiguous(memory_format=torch.channels_last))
        preds.append(logits.float().argmax(1).cpu())
    p = torch.cat(preds).numpy()
    return float(np.mean(p == y)), macro_f1(y, p)


def save_weights(path: Path, arrays: dict[str, np.ndarray], half: bool) -> None:
    """Write an export; ``half`` stores float16, which torch_to_keras.py reads back as float32."""
    np.savez(path, **({k: v.astype(np.float16) for k, v in arrays.items()} if half else arrays))


def self_check(out: Path, size: int, alpha: float = 1.0) -> None:
    """Write random weights (with non-trivial BatchNorm statistics) and their outputs.

    ``torch_to_keras.py --reference`` loads both and checks Keras computes the same thing.
    """
    torch.manual_seed(0)
    model = AgeNet(alpha=alpha)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.05)
    model.eval()
    images = torch.randint(0, 256, (4, size, size, 3)).float()
    taps = {
        0: "Conv1_relu",
        2: "block_1_project_BN",
        7: "block_6_project_BN",
        14: "block_13_project_BN",
        18: "out_relu",
    }
    feats: dict[str, np.ndarray] = {}
    for i, name in taps.items():
        model.features[i].register_forward_hook(
            lambda _m, _i, o, name=name: feats.__setitem__("feat:" + name, o.permute(0, 2, 3, 1).numpy())
        )
    with torch.no_grad():
        logits, age_logits = model(images.permute(0, 3, 1, 2))
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "check.npz", **keras_weights(model))
    np.savez(
        out / "check_ref.npz",
        images=images.numpy(),
        logits=logits.numpy(),
        age_logits=age_logits.numpy(),
        **feats,
    )
    print(f"wrote {out / 'check.npz'} and {out / 'check_ref.npz'}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pack")
    ap.add_argument("out")
    ap.add_argument("--name", default="A")
    ap.add_argument("--size", type=int, default=96)
    ap.add_argument("--alpha", type=float, default=1.0, help="width multiplier (torch_to_keras.py --alpha)")
    ap.add_argument("--budget", type=float, default=300, help="seconds of training; epochs are fitted to it")
    ap.add_argument("--max-epochs", type=int, default=400)
    ap.add_argument("--warmup", type=int, default=3, help="epochs of linear warm-up")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--smoothing", type=float, default=0.1)
    ap.add_argument("--age-weight", type=float, default=0.5)
    ap.add_argument("--sigma", type=float, default=2.5)
    ap.add_argument("--class-weight-power", type=float, default=0.5)
    ap.add_argument("--dropout", type=float, default=0.2)
    ap.add_argument("--ema", type=float, default=0.9995)
    ap.add_argument("--bn-momentum", type=float, default=0.01, help="PyTorch convention (Keras 0.99)")
    ap.add_argument("--rotate", type=float, default=12.0, help="degrees")
    ap.add_argument("--zoom", type=float, default=0.12)
    ap.add_argument("--shift", type=float, default=0.06)
    ap.add_argument("--brightness", type=float, default=0.15)
    ap.add_argument("--contrast", type=float, default=0.2)
    ap.add_argument("--grey", type=float, default=0.05)
    ap.add_argument("--erase", type=float, default=0.0)
    ap.add_argument("--degrade", type=float, default=0.5, help="chance a 200 px photo is shown as 64 px")
    ap.add_argument("--mixup", type=float, default=0.0, help="Beta(a, a) mixup; 0 = off")
    ap.add_argument("--eval-every", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--init", default="", help="start from these weights (npz from this script)")
    ap.add_argument(
        "--teacher",
        default="",
        help="distil from these weights (npz from this script, e.g. .devdata/gpu/shipped.npz); "
        "it sees the student's own augmented, mixed-up batch, so train at the size it was trained at",
    )
    ap.add_argument("--teacher-alpha", type=float, default=1.0, help="the teacher's width multiplier")
    ap.add_argument(
        "--kd-weight",
        type=float,
        default=0.0,
        help="share k of the loss taken from the teacher: (1-k)*label loss + k*(T^2*KL on the group "
        "head at temperature T + age_weight*KL on the age distribution at temperature 1); 0 = off",
    )
    ap.add_argument("--kd-temp", type=float, default=2.0, help="distillation temperature T (group head)")
    ap.add_argument(
        "--aux-weight",
        type=float,
        default=0.0,
        help="weight of training-only gender + race heads (labels from the names, never exported); 0 = off",
    )
    ap.add_argument("--self-check", action="store_true", help="write random weights + outputs and stop")
    ap.add_argument(
        "--half",
        action="store_true",
        help="save float16 weights (a width-1.4 export is 18 MB in float32; a device file may be 16 MB)",
    )
    a = ap.parse_args()
    out = Path(a.out)
    if a.self_check:
        self_check(out, a.size, a.alpha)
        return
    if a.kd_weight > 0 and not a.teacher:
        ap.error("--kd-weight needs --teacher")
    kd_on, aux_on = a.kd_weight > 0, a.aux_weight > 0
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    torch.manual_seed(a.seed)
    dev = torch.device(a.device)
    amp = dev.type == "cuda"
    torch.backends.cudnn.benchmark = True
    d = load_pack(a.pack, a.size, a.limit)
    tr, va = d["part"] == 0, d["part"] == 1
    x_all = torch.from_numpy(d["x"]).permute(0, 3, 1, 2).contiguous()
    ages_all = torch.from_numpy(d["ages"].astype(np.float32))
    x_tr, x_va = x_all[tr].to(dev), x_all[va].to(dev)
    age_tr = ages_all[tr].to(dev)
    hi_tr = torch.from_numpy(d["hires"][tr]).to(dev)
    gen_tr = torch.from_numpy(d["gender"][tr]).to(dev)
    race_tr = torch.from_numpy(d["race"][tr]).to(dev)
    if aux_on and (gen_tr >= 0).sum() == 0:
        raise SystemExit(f"{a.pack}: no gender labels in its names; --aux-weight needs them")
    y_tr = to_group(age_tr)
    y_va = to_group(ages_all[va]).numpy()
    counts = torch.bincount(y_tr, minlength=3).float()
    cw = (counts.sum() / counts) ** a.class_weight_power
    cw = cw / cw.mean()
    grid = torch.arange(MAX_AGE + 1, device=dev, dtype=torch.float32)
    print(
        f"[{a.name}] {len(x_tr)} train ({int(hi_tr.sum())} hires) {len(x_va)} val,"
        f" load {time.time() - t0:.0f}s",
        flush=True,
    )

    model = AgeNet(dropout=a.dropout, bn_momentum=a.bn_momentum, alpha=a.alpha, aux=aux_on)
    model = model.to(dev).to(memory_format=torch.channels_last)
    if a.init:
        load_keras_weights(model, a.init)
    teacher = None
    if kd_on:
        with torch.random.fork_rng(devices=[]):  # the student's random stream stays the control's
            teacher = AgeNet(alpha=a.teacher_alpha)
        teacher = teacher.to(dev).to(memory_format=torch.channels_last)
        load_keras_weights(teacher, a.teacher)
        teacher.eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
        if len(x_va):
            t_acc, t_f1 = evaluate(teacher, x_va, y_va, amp)
            print(f"[{a.name}] teacher {a.teacher}: val acc {t_acc:.4f} macro-F1 {t_f1:.4f}", flush=True)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    # Pairs the moving average follows (weights and BatchNorm statistics), listed once:
    # BatchNorm updates its buffers in place, so the references stay valid.
    pairs = [
        (e, m)
        for e, m in zip(
            [*ema.parameters(), *ema.buffers()], [*model.parameters(), *model.buffers()], strict=True
        )
        if e.dtype.is_floating_point
    ]
    ema_t, model_t = [e for e, _ in pairs], [m for _, m in pairs]
    decay_params = [p for n, p in model.named_parameters() if p.ndim > 1]
    other = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.AdamW(
        [{"params": decay_params, "weight_decay": a.wd}, {"params": other, "weight_decay": 0.0}],
        lr=a.lr,
        fused=dev.type == "cuda",
    )
    g = torch.Generator(device=dev)
    g.manual_seed(a.seed)
    steps_per_epoch = len(x_tr) // a.batch
    warm = a.warmup * steps_per_epoch
    total = a.max_epochs * steps_per_epoch
    epochs = a.max_epochs
    step = 0
    history, best = [], (-1.0, None, 0)
    t_train = time.time()
    ep = 0
    while ep < epochs:
        model.train()
        t = time.time()
        perm = torch.randperm(len(x_tr), device=dev, generator=g)
        run_loss = torch.zeros((), device=dev)
        run_hit = torch.zeros((), device=dev)
        run_kd = torch.zeros((), device=dev)
        run_aux = torch.zeros((), device=dev)
        for b in range(steps_per_epoch):
            idx = perm[b * a.batch : (b + 1) * a.batch]
            lr = (
                a.lr * (step + 1) / warm
                if step < warm
                else 0.5 * a.lr * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(total - warm, 1))))
            )
            for grp in opt.param_groups:
                grp["lr"] = lr
            xb = augment(x_tr[idx].float(), hi_tr[idx], a, g).contiguous(memory_format=torch.channels_last)
            age = age_tr[idx]
            yb = y_tr[idx]
            tgt = F.one_hot(yb, 3).float() * (1 - a.smoothing) + a.smoothing / 3
            dist = torch.exp(-0.5 * ((grid[None] - age.clamp(0, MAX_AGE)[:, None]) / a.sigma) ** 2)
            dist = dist / dist.sum(1, keepdim=True)
            w = cw[yb]
            lam, j = 1.0, None
            if a.mixup > 0:
                lam = float(np.random.default_rng(step + 7919 * a.seed).beta(a.mixup, a.mixup))
                j = torch.randperm(len(idx), device=dev, generator=g)
                xb = lam * xb + (1 - lam) * xb[j]
                tgt = lam * tgt + (1 - lam) * tgt[j]
                dist = lam * dist + (1 - lam) * dist[j]
                age = lam * age + (1 - lam) * age[j]
                w = lam * w + (1 - lam) * w[j]
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                if aux_on:
                    logits, age_logits, g_logits, r_logits = model(xb, with_aux=True)
                else:
                    logits, age_logits = model(xb)
            logp = F.log_softmax(logits.float(), 1)
            alogp = F.log_softmax(age_logits.float(), 1)
            ce = -(tgt * logp).sum(1)
            kl = (dist * (torch.log(dist.clamp_min(1e-12)) - alogp)).sum(1)
            l1 = (alogp.exp() @ grid - age).abs()
            per = ce + a.age_weight * kl + 0.02 * l1
            if teacher is not None:  # same (augmented, mixed) batch, same autocast, no gradients
                with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp):
                    t_logits, t_age_logits = teacher(xb)
                temp = a.kd_temp
                kd = temp**2 * soft_kl(t_logits, F.log_softmax(logits.float() / temp, 1), temp)
                kd = kd + a.age_weight * soft_kl(t_age_logits, alogp)
                per = (1 - a.kd_weight) * per + a.kd_weight * kd
                run_kd += kd.mean().detach()
            loss = (w * per).mean()
            if aux_on:
                gb, rb = gen_tr[idx], race_tr[idx]
                aux = ce_ignore(g_logits, gb) + ce_ignore(r_logits, rb)
                if j is not None:  # mixup: mix the losses as the group targets are mixed
                    aux = lam * aux + (1 - lam) * (ce_ignore(g_logits, gb[j]) + ce_ignore(r_logits, rb[j]))
                loss = loss + a.aux_weight * aux
                run_aux += aux.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            opt.step()
            step += 1
            decay = min(a.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                torch._foreach_lerp_(ema_t, model_t, 1 - decay)
            run_loss += loss.detach()
            run_hit += (logits.detach().argmax(1) == yb).float().mean()
        ep += 1
        if dev.type == "cuda":
            torch.cuda.synchronize()
        sec = time.time() - t
        if ep == 2:  # fit the schedule to the budget from the second (warm) epoch
            epochs = max(3, min(a.max_epochs, int((a.budget - (time.time() - t_train)) / (sec * 1.04)) + 2))
            total = epochs * steps_per_epoch
            print(f"[{a.name}] epoch {sec:.1f}s -> {epochs} epochs", flush=True)
        rec = {
            "epoch": ep,
            "lr": lr,
            "s": round(sec, 2),
            "loss": float(run_loss) / steps_per_epoch,
            "train_acc": float(run_hit) / steps_per_epoch,
        }
        if kd_on:
            rec["kd_loss"] = float(run_kd) / steps_per_epoch
        if aux_on:
            rec["aux_loss"] = float(run_aux) / steps_per_epoch
        if ep % a.eval_every == 0 or ep == epochs:
            acc, f1 = evaluate(ema, x_va, y_va, amp)
            rec.update(val_acc=acc, val_f1=f1)
            if ep > epochs // 2 and acc + f1 > best[0]:
                best = (acc + f1, keras_weights(ema), ep)
        history.append(rec)
        print(f"[{a.name}] " + json.dumps(rec), flush=True)
    final = keras_weights(ema)
    if best[1] is not None:
        save_weights(out / f"{a.name}.best.npz", best[1], a.half)
    save_weights(out / f"{a.name}.final.npz", final, a.half)
    summary = {
        "args": vars(a),
        "epochs": epochs,
        "best_epoch": best[2],
        "best_val": best[0] / 2 if best[1] is not None else None,
        "final_val": history[-1].get("val_acc"),
        "history": history,
        "train_wall_s": time.time() - t_train,
        "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
        "torch": torch.__version__,
    }
    (out / f"{a.name}.json").write_text(json.dumps(summary, indent=1))
    print(f"[{a.name}] done: best epoch {best[2]} val (acc+f1)/2 {summary['best_val']}", flush=True)


if __name__ == "__main__":
    main()
