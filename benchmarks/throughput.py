"""Training and inference throughput (images/s) of each preset on this machine's best device.

Each preset is timed twice in the same run: through ibinn (``prepare_batch`` with dequantisation,
noise and label smoothing, the IB loss, gradient clipping, the optimiser step; ``IBINN.infer`` for
inference) and through a plain reference loop on the very same FrEIA network (pre-made inputs, the
textbook NLL ``‖z‖²/2 − log|det J|``, Adam; a bare forward pass for inference). The ratio shows
what ibinn's extras cost.

    python benchmarks/throughput.py [--presets tiny,small] [--shape 1,28,28] [--steps 20]
"""

from __future__ import annotations

import argparse
import time

import torch

import ibinn
from ibinn.train import TrainConfig, _optimizer, prepare_batch


def _timed(fn, steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench(preset: str, shape: tuple[int, int, int], batch: int, steps: int, device) -> dict:
    config = ibinn.ModelConfig.from_preset(preset, shape, 10)
    model = ibinn.IBINN(config).to(device)
    train_cfg = TrainConfig(batch_size=batch)
    images = torch.randint(0, 256, (batch, *shape), dtype=torch.uint8)
    labels = torch.randint(0, 10, (batch,))
    gen = torch.Generator().manual_seed(0)

    opt = _optimizer(model, train_cfg)

    def ibinn_step():
        x, y = prepare_batch(images, labels, model, train_cfg, gen)
        z, log_det = model(x)
        loss = model.loss(z, log_det, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train_cfg.grad_clip)
        opt.step()

    ref_inn = ibinn.model.build_inn(config).to(device)
    ref_opt = torch.optim.Adam(ref_inn.parameters(), lr=1e-3)
    x_ref = torch.randn(batch, *shape, device=device)

    def reference_step():
        z, log_det = ref_inn(x_ref)
        loss = (0.5 * z.pow(2).sum(1) - log_det).mean()
        ref_opt.zero_grad(set_to_none=True)
        loss.backward()
        ref_opt.step()

    infer_images = torch.randint(0, 256, (4 * batch, *shape), dtype=torch.uint8)
    x_infer = torch.randn(4 * batch, *shape, device=device)

    def reference_infer():
        with torch.no_grad():
            ref_inn(x_infer)

    t_train, t_ref = _timed(ibinn_step, steps), _timed(reference_step, steps)
    t_inf = _timed(lambda: model.infer(infer_images, batch_size=4 * batch), max(3, steps // 4))
    t_inf_ref = _timed(reference_infer, max(3, steps // 4))
    return {"preset": preset, "params": model.num_parameters(),
            "train": batch / t_train, "train_ref": batch / t_ref,
            "infer": 4 * batch / t_inf, "infer_ref": 4 * batch / t_inf_ref}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="tiny,small")
    parser.add_argument("--shape", default="1,28,28", help="C,H,W (3,32,32 for CIFAR)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = ibinn.resolve_device(args.device)
    shape = tuple(int(s) for s in args.shape.split(","))
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, image shape {shape}, "
          f"batch {args.batch}")
    print(f"{'preset':8} {'params':>8} {'train img/s':>12} {'reference':>10} {'ratio':>6} "
          f"{'infer img/s':>12} {'reference':>10} {'ratio':>6}")
    for preset in args.presets.split(","):
        r = bench(preset, shape, args.batch, args.steps, device)
        print(f"{r['preset']:8} {r['params'] / 1e6:7.2f}M {r['train']:12.0f} {r['train_ref']:10.0f} "
              f"{r['train'] / r['train_ref']:6.2f} {r['infer']:12.0f} {r['infer_ref']:10.0f} "
              f"{r['infer'] / r['infer_ref']:6.2f}")


if __name__ == "__main__":
    main()
