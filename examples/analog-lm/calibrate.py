"""How large is each training method's perturbation next to a PCM chip, for this language model?

Reads the `standard` checkpoint of a finished run (default runs/analog-lm) and, on the first 32
validation windows, prints for each perturbation the size of the weight error on the chip (its
std over the on-chip weights divided by the layer's max|W|, averaged over layers), the mean
weight scale it leaves (sum|W'| / sum|W|), and what it does to the outputs: the KL divergence
from the clean next-token distribution (nats per token) and the perplexity, mean over 5 draws.

    OMP_NUM_THREADS=1 .venv/bin/python examples/analog-lm/calibrate.py [RUN_FOLDER]
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.func import functional_call

import noiseproof as nf
from noiseproof.ascent import sign_ascent

DRAWS = 5
WINDOWS = 32


def main(run: Path) -> None:
    torch.set_num_threads(1)
    state, meta = nf.load_checkpoint(run / "checkpoints" / "standard-seed0.pt")
    model = nf.build_model(meta["model"], tuple(meta["input_shape"]), meta["num_outputs"])
    model.load_state_dict(state)
    model.eval()
    data = nf.load_dataset(meta["dataset"])
    x, y = data.x_val[:WINDOWS], data.y_val[:WINDOWS]
    params = dict(model.named_parameters())
    names = nf.ChipSelection(**meta["chip"]).names(model)
    clean = {name: params[name].detach() for name in names}

    def logits(weights):
        return functional_call(model, {**params, **weights}, (x,))

    with torch.no_grad():
        reference = F.log_softmax(logits(clean), -1)

    def kl(weights):
        return (reference.exp() * (reference - F.log_softmax(logits(weights), -1))).sum(-1).mean()

    def describe(label, draws):
        error = sum(
            sum((d[n] - clean[n]).std() / clean[n].abs().max() for n in names) / len(names)
            for d in draws
        )
        scale = sum(
            sum(d[n].abs().sum() / clean[n].abs().sum() for n in names) / len(names) for d in draws
        )
        with torch.no_grad():
            divergence = sum(kl(d) for d in draws) / len(draws)
            nll = sum(F.cross_entropy(logits(d).flatten(0, 1), y.flatten()) for d in draws)
        print(
            f"{label:<34} error/max|W| {float(error) / len(draws):.4f}  "
            f"scale {float(scale) / len(draws):.3f}  KL {float(divergence):.4f}  "
            f"perplexity {float((nll / len(draws)).exp()):.2f}"
        )

    with torch.no_grad():
        nll = F.cross_entropy(logits(clean).flatten(0, 1), y.flatten())
    print(f"clean perplexity on {WINDOWS} validation windows: {float(nll.exp()):.2f}")
    specs = [
        ("pcm, compensated, 1 s", {"name": "pcm", "drift_compensation": True, "t_inference": 1}),
        (
            "pcm, compensated, 1 year",
            {"name": "pcm", "drift_compensation": True, "t_inference": 31536000},
        ),
        ("pcm, not compensated, 1 year", {"name": "pcm", "t_inference": 31536000}),
        ("additive_gaussian eta 0.05", {"name": "additive_gaussian", "eta": 0.05}),
        ("relative_gaussian zeta 0.2", {"name": "relative_gaussian", "zeta": 0.2}),
    ]
    for label, spec in specs:
        noise = nf.create_noise(spec)
        draws = [noise.sample(clean, nf.generator(0, "calibrate", label, k)) for k in range(DRAWS)]
        describe(label, draws)
    for zeta in (0.1, 0.02):  # adversarial's default box and ours, one sign step each
        draws = []
        for k in range(DRAWS):
            offset = sign_ascent(
                clean,
                kl,
                zeta=zeta,
                n_steps=1,
                initial_std=0.001,
                generator=nf.generator(0, "calibrate", "attack", k),
            )
            draws.append({n: clean[n] + clean[n].abs() * offset[n] for n in names})
        describe(f"attack, 1 sign step, zeta {zeta}", draws)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("runs/analog-lm"))
