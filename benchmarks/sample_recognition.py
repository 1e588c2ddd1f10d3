"""Do the zoo's samples look like their class? The share the family's ResNet recognises.

For every IB-INN of every family in the zoo that has a ResNet baseline, the script draws
``--n`` samples per class (independent noise, ``--seed``) at each temperature, once around the
model's class means ``μ_y`` (the model's own generative distribution) and once around the mean
latent of each class's demo images (``explore.class_centroids``, shipped as
``latent/centroids`` in derived.npz: what the Sampling page draws around by default), and prints
the share of samples the ResNet classifies as the class they were drawn from
(``explore.sample_recognition``). The ResNet, not the model itself, is the judge: a sample a
separate classifier recognises is one a person is likely to recognise too. 10 % is chance.

    python benchmarks/sample_recognition.py                     # every family, markdown tables
    python benchmarks/sample_recognition.py --families cifar10 --temperatures 0.6
"""

from __future__ import annotations

import argparse
import time

import torch

from ibinn import explore, zoo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default="", help="comma-separated families (default: all)")
    parser.add_argument("--temperatures", default="0,0.3,0.6,0.8,1", help="comma-separated")
    parser.add_argument("--n", type=int, default=20, help="samples per class and temperature")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    temperatures = [float(t) for t in args.temperatures.split(",")]
    cards = zoo.list_models()
    families = args.families.split(",") if args.families else sorted({c.family for c in cards})
    head = " | ".join(f"T = {t:g}" for t in temperatures)
    for family in families:
        judges = [c for c in cards if c.family == family and c.kind == "resnet"]
        if not judges:
            print(f"{family}: no ResNet baseline in the zoo, skipped")
            continue
        resnet = zoo.load(judges[0].name, device="cpu")
        print(f"\n#### {family}: share of samples the ResNet recognises as their class "
              f"({args.n} per class, seed {args.seed})\n")
        print(f"| model | around | {head} |")
        print("|---" * (2 + len(temperatures)) + "|")
        for card in (c for c in cards if c.family == family and c.kind == "ibinn"):
            start = time.perf_counter()
            model = zoo.load(card.name, device="cpu")
            centroids = zoo.derived(card.name).get("latent/centroids")
            for around, centres in (("μ_y", None), ("data centroid", centroids)):
                if around != "μ_y" and centres is None:
                    continue  # an older derived.npz: `ibinn zoo` rebuilds it with the centroids
                shares = explore.sample_recognition(model, resnet, temperatures, centres, args.n, args.seed)
                cells = " | ".join(f"{100 * s:.0f} %" for s in shares)
                print(f"| {card.label} | {around} | {cells} |", flush=True)
            print(f"<!-- {card.name}: {time.perf_counter() - start:.0f} s -->", flush=True)


if __name__ == "__main__":
    main()
