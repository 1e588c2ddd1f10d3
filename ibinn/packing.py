"""A model's state dict as the tensors of a weights file, and back: :func:`pack_state`,
:func:`unpack_state`.

Packing keeps files small (hard permutation matrices become index vectors, inverse permutations
are dropped, weights may go to fp16); unpacking checks what a file holds against a freshly built
model before any of it is loaded, so that a damaged or foreign file is refused with a
:class:`~ibinn.checkpoint.CheckpointError` that says why.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import CheckpointError


def pack_state(state: dict[str, torch.Tensor], half: bool = False,
               keep_fp32: tuple[str, ...] = ()) -> dict[str, torch.Tensor]:
    """A state dict as the tensors of a weights file.

    Hard permutation matrices (FrEIA's ``w_perm``) become index vectors and their inverses are
    dropped (they are transposes), which keeps fully-connected coupling blocks small.
    ``half=True`` stores float weights in fp16, except those named in ``keep_fp32``.
    """
    tensors = {}
    for name, value in state.items():
        if name.endswith("w_perm_inv"):
            continue
        if name.endswith("w_perm"):
            matrix = value.reshape(value.shape[0], value.shape[1])
            if bool(((matrix == 0) | (matrix == 1)).all()):
                tensors[name + "_index"] = matrix.argmax(1)
                continue
        elif half and value.is_floating_point() and name not in keep_fp32:
            value = value.half()
        tensors[name] = value
    return tensors


def unpack_state(tensors: dict[str, torch.Tensor], state: dict[str, torch.Tensor],
                 path: str | Path) -> dict[str, torch.Tensor]:
    """The inverse of :func:`pack_state`, checked against a freshly built model's ``state``.

    Raises :class:`CheckpointError` when names or shapes do not match.
    """
    tensors = dict(tensors)
    from_index = set()
    for name in list(tensors):
        if name.endswith("w_perm_index"):
            key = name[: -len("_index")]
            if key not in state:
                raise CheckpointError(f"{path}: unexpected tensor {name}")
            shape = state[key].shape
            index = tensors.pop(name)
            if (index.dtype.is_floating_point or index.shape != (shape[0],)
                    or not torch.equal(index.sort().values, torch.arange(shape[0]))):
                raise CheckpointError(f"{path}: {name} is not a permutation of {shape[0]} indices")
            matrix = torch.zeros(shape[0], shape[1])
            matrix[torch.arange(shape[0]), index.long()] = 1.0
            tensors[key] = matrix.reshape(shape)
            from_index.add(key)
    for key in state:
        forward = key[: -len("_inv")]
        if key.endswith("w_perm_inv") and forward in tensors:  # always the transpose, never read
            tensors[key] = tensors[forward].transpose(0, 1).contiguous()
    missing = set(state) - set(tensors)
    unexpected = set(tensors) - set(state)
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match its config: missing {sorted(missing)[:5]}"
                              f", unexpected {sorted(unexpected)[:5]}")
    for key, value in tensors.items():
        if value.shape != state[key].shape:
            raise CheckpointError(f"{path}: {key} has shape {tuple(value.shape)}, "
                                  f"expected {tuple(state[key].shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: {key} holds NaN or infinite values")
        if key.endswith("num_batches_tracked"):  # a batch-norm step counter, learned like weights
            pass
        elif not value.is_floating_point() and not state[key].is_floating_point():
            # index buffers (DCT orders, random permutations) are fixed by the config: they must
            # be the built ones
            if not torch.equal(value.long(), state[key].long()):
                raise CheckpointError(f"{path}: {key} differs from the index buffer its config makes")
        elif key.endswith(("w_perm", "dct_h", "dct_w")) and key not in from_index:  # orthogonal
            matrix = value.reshape(value.shape[0], -1).double()
            eye = torch.eye(matrix.shape[0], dtype=torch.float64)
            if matrix.shape[0] != matrix.shape[1] or (matrix @ matrix.T - eye).abs().max() > 1e-2:
                raise CheckpointError(f"{path}: {key} is not an orthogonal (permutation) matrix")
    return {k: v.to(state[k].dtype) for k, v in tensors.items()}
