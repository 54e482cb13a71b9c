"""TorchScript modules (scripted by torchscript.py; never imported directly).

torchscript.py compiles this file under a fixed name, so the debug info inside the
saved archives does not depend on where the checkout lives. Argument names follow
Triton's PyTorch convention, so both of its binding rules (`<name>__<index>` and
forward() argument names) map the same tensors.
"""
from typing import Tuple

import torch


class AddSub(torch.nn.Module):
    """OUTPUT__0 = INPUT__0 + INPUT__1, OUTPUT__1 = INPUT__0 - INPUT__1."""

    def forward(self, INPUT__0: torch.Tensor, INPUT__1: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return INPUT__0 + INPUT__1, INPUT__0 - INPUT__1


class MultiDtype(torch.nn.Module):
    """Four inputs and four outputs, each of another dtype.

    INPUT__0 FP32, INPUT__1 INT64, INPUT__2 BOOL, INPUT__3 UINT8 (all [batch, 4]) give
    OUTPUT__0 FP64 = 2 * INPUT__0
    OUTPUT__1 INT32 = INPUT__1 + INPUT__3
    OUTPUT__2 BOOL = INPUT__2 xor (INPUT__1 > 0)
    OUTPUT__3 FP16 = INPUT__0 where INPUT__2 else 0
    """

    def forward(
        self, INPUT__0: torch.Tensor, INPUT__1: torch.Tensor, INPUT__2: torch.Tensor, INPUT__3: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        out0 = INPUT__0.to(torch.float64) * 2.0
        out1 = (INPUT__1 + INPUT__3.to(torch.int64)).to(torch.int32)
        out2 = torch.logical_xor(INPUT__2, INPUT__1 > 0)
        out3 = torch.where(INPUT__2, INPUT__0, torch.zeros_like(INPUT__0)).to(torch.float16)
        return out0, out1, out2, out3


class Identity(torch.nn.Module):
    """Returns its input as a bare tensor, not a tuple (the other way a module can answer)."""

    def forward(self, INPUT__0: torch.Tensor) -> torch.Tensor:
        return INPUT__0.clone()
