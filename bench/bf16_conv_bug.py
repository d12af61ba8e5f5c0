"""A PyTorch bug on this CPU: bf16 backward of a strided 3x3 convolution on a 1x1 input.

    python -m bench.bf16_conv_bug

For a few input shapes and 1 or 2 threads, counts the backward passes (of 30,
random inputs) whose weight gradient is non-finite under bf16 autocast. With
torch 2.14.1 here, 1x1 inputs give some, a different number each run (1 to 15
of 30 for 64 channels in three runs); 2x2 inputs gave none. This is why views are at least
``cxrssl.methods.MIN_VIEW_SIZE`` pixels.
"""

from __future__ import annotations

import torch


def main() -> None:
    torch.manual_seed(0)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for shape in [(16, 256, 1, 1), (16, 256, 2, 2), (8, 256, 1, 1), (16, 64, 1, 1)]:
            conv = torch.nn.Conv2d(shape[1], 2 * shape[1], 3, 2, 1, bias=False)
            bad = 0
            for _ in range(30):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = conv(torch.randn(*shape))
                conv.weight.grad = None
                y.float().pow(2).mean().backward()
                bad += int(not torch.isfinite(conv.weight.grad).all())
            print(f"threads {threads} input {shape}: non-finite weight gradients in {bad} of 30", flush=True)


if __name__ == "__main__":
    main()
