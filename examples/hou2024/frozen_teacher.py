"""Consistency with a frozen pre-trained teacher (Hou et al. 2024, one reading of the abstract).

usage: OMP_NUM_THREADS=1 python examples/hou2024/frozen_teacher.py [--seeds 0,1,2]
       [--pretrain-epochs 5] [--epochs 3] [--max-train 4000] [--max-test 500] [--transfers 20]

`noiseproof compare` trains from scratch, where consistency's `teacher: frozen` (a copy of the
network as training starts) would be the random initial network. This script gives it the
pre-trained start it needs: per seed, a ResNet-20 is trained with `standard` (the pre-trained
network), then fine-tuned from that same state under additive noise at eta 0.2 with forward
noise training, consistency with the network's own detached weights as target (the default),
and consistency with the frozen pre-trained copy as teacher, each on the same batches. Each is
evaluated on the same simulated chips (w' = w + eta max|W_layer| N(0,1), eta 0.2). Prints the
per-method accuracy and the paired differences to forward noise training, in points.
"""

from __future__ import annotations

import argparse
import statistics

import torch

import noiseproof as nf
from noiseproof.seeding import derive_seed, generator

METHODS = {
    "noise_injection": {"name": "noise_injection"},
    "consistency": {"name": "consistency"},
    "consistency-frozen": {"name": "consistency", "teacher": "frozen"},
}


def main() -> None:
    """Pre-train per seed, fine-tune with each method, print accuracies and paired gaps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pretrain-epochs", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--max-train", type=int, default=4000)
    parser.add_argument("--max-test", type=int, default=500)
    parser.add_argument("--transfers", type=int, default=20)
    args = parser.parse_args()
    data = nf.load_dataset(
        {
            "name": "fashion-mnist",
            "val_fraction": 0.0,
            "max_train": args.max_train,
            "max_test": args.max_test,
        }
    )
    noise = nf.create_noise({"name": "additive_gaussian", "eta": 0.2, "scale": "layer"})
    config = nf.TrainConfig(epochs=args.epochs, batch_size=32, lr=1e-3, schedule="cosine")
    results: dict[str, dict[int, float]] = {name: {} for name in ["standard", *METHODS]}
    for seed in [int(s) for s in args.seeds.split(",")]:
        torch.manual_seed(derive_seed(seed, "init"))
        model = nf.build_model({"name": "resnet20"}, data.input_shape, data.num_outputs)
        pre = config.model_copy(update={"epochs": args.pretrain_epochs})
        nf.train(model, data, nf.create_method("standard"), pre, seed=seed, progress=False)
        start = {k: v.clone() for k, v in model.state_dict().items()}
        models = {"standard": model}
        for label, spec in METHODS.items():
            tuned = nf.build_model({"name": "resnet20"}, data.input_shape, data.num_outputs)
            tuned.load_state_dict(start)
            method = nf.create_method(spec)
            nf.train(tuned, data, method, config, noise=noise, seed=seed + 1000, progress=False)
            models[label] = tuned
        for label, net in models.items():
            chips = nf.run_transfers(
                net, noise, data.x_test, data.y_test, args.transfers, generator(seed, "chips")
            )
            results[label][seed] = 100 * float(chips.accuracy.mean())
            print(f"seed {seed} {label}: {results[label][seed]:.2f} %", flush=True)
    base = results["noise_injection"]
    print("\naccuracy % at eta 0.2 (mean ± std over seeds) and paired difference to forward noise")
    for label, by_seed in results.items():
        values = list(by_seed.values())
        diffs = [by_seed[s] - base[s] for s in by_seed]
        spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        spread_v = statistics.stdev(values) if len(values) > 1 else 0.0
        per_seed = ", ".join(f"{d:+.2f}" for d in diffs)
        print(
            f"  {label}: {statistics.mean(values):.2f} ± {spread_v:.2f}; "
            f"{statistics.mean(diffs):+.2f} ± {spread:.2f} ({per_seed})"
        )


if __name__ == "__main__":
    main()
