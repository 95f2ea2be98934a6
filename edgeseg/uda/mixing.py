"""ClassMix / DACS cross-domain mixing and the strong augmentation applied to mixed images.

ClassMix (DACS, Tranheden et al. 2021): for each source image choose ceil(n/2) of the n classes present
in its label (the ignore id is never chosen: pasting unlabelled pixels would carry no supervision), and
paste those pixels onto a target image:
    M = [y_src in chosen],   x_mix = M * x_src + (1 - M) * x_tgt,   y_mix = M * y_src + (1 - M) * y_pseudo
The pasted part is supervised with weight 1, the target part with the pseudo-label weight.

Strong augmentation (DACS/DAFormer `strong_transform`): with probability p a colour jitter (brightness,
contrast, saturation, hue, each of strength s), and with probability 1/2 a Gaussian blur with
sigma ~ U(0.15, 1.15) and a kernel of ~10% of the image size. Implemented on de-normalised [0, 1] RGB in
torch (no kornia); every random draw comes from a `torch.Generator` so runs and resumes are reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F


def classmix_masks(labels: torch.Tensor, generator: torch.Generator, ignore_index: int = 255) -> torch.Tensor:
    """(B, H, W) integer labels -> (B, H, W) float {0, 1} masks of ceil(n/2) randomly chosen present classes."""
    masks = torch.zeros(labels.shape, dtype=torch.float32, device=labels.device)
    for b in range(labels.shape[0]):
        classes = torch.unique(labels[b])
        classes = classes[classes != ignore_index]
        n = int(classes.numel())
        if n == 0:
            continue
        order = torch.randperm(n, generator=generator)
        chosen = classes[order[: (n + 1) // 2].to(classes.device)]
        masks[b] = torch.isin(labels[b], chosen).float()
    return masks


def mix(mask: torch.Tensor, pasted: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """mask * pasted + (1 - mask) * background; mask (B,H,W) broadcasts over channels of (B,C,H,W)."""
    m = mask if pasted.dim() == mask.dim() else mask.unsqueeze(1)
    m = m.to(pasted.dtype)
    return m * pasted + (1 - m) * background


def mix_labels(mask: torch.Tensor, source_labels: torch.Tensor, pseudo_labels: torch.Tensor) -> torch.Tensor:
    return torch.where(mask > 0.5, source_labels, pseudo_labels)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _rgb_to_gray(x: torch.Tensor) -> torch.Tensor:
    return 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]


def _rotate_hue(x: torch.Tensor, turns: float) -> torch.Tensor:
    """Rotate hue by `turns` of a full circle in YIQ space (a linear stand-in for an HSV hue shift)."""
    theta = 2 * math.pi * turns
    c, s = math.cos(theta), math.sin(theta)
    to_yiq = x.new_tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    rot = x.new_tensor([[1, 0, 0], [0, c, -s], [0, s, c]])
    m = torch.linalg.inv(to_yiq) @ rot @ to_yiq
    return torch.einsum("ij,bjhw->bihw", m, x)


def color_jitter(x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
    """One image (1,3,H,W) in [0,1]: brightness, contrast, saturation and hue jitter, in random order."""
    ops = torch.randperm(4, generator=generator).tolist()
    for op in ops:
        if op == 0:
            x = x * _uniform(generator, 1 - strength, 1 + strength)
        elif op == 1:
            mean = _rgb_to_gray(x).mean()
            x = (x - mean) * _uniform(generator, 1 - strength, 1 + strength) + mean
        elif op == 2:
            gray = _rgb_to_gray(x)
            x = (x - gray) * _uniform(generator, 1 - strength, 1 + strength) + gray
        else:
            x = _rotate_hue(x, _uniform(generator, -strength, strength) / 2)
        x = x.clamp(0, 1)
    return x


def gaussian_blur(x: torch.Tensor, sigma: float, kernel: tuple[int, int]) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding; x (B,C,H,W)."""
    out = x
    for dim, k in ((2, kernel[0]), (3, kernel[1])):
        r = torch.arange(k, dtype=x.dtype, device=x.device) - (k - 1) / 2
        w = torch.exp(-(r**2) / (2 * sigma**2))
        w = (w / w.sum()).view(1, 1, -1, 1) if dim == 2 else (w / w.sum()).view(1, 1, 1, -1)
        pad = (0, 0, k // 2, k // 2) if dim == 2 else (k // 2, k // 2, 0, 0)
        c = out.shape[1]
        out = F.conv2d(F.pad(out, pad, mode="reflect"), w.expand(c, 1, *w.shape[2:]), groups=c)
    return out


def blur_kernel_size(size: int) -> int:
    """DAFormer's kernel: the odd number nearest ceil(0.1 * size)."""
    k = int(math.ceil(0.1 * size))
    return k if k % 2 else k + 1


def strong_augment(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator,
    jitter_p: float = 0.2,
    jitter_strength: float = 0.2,
    blur: bool = True,
) -> torch.Tensor:
    """Per-image colour jitter (prob `jitter_p`) and Gaussian blur (prob 1/2) on normalised (B,3,H,W) images."""
    m = images.new_tensor(mean).view(1, 3, 1, 1) / 255.0
    s = images.new_tensor(std).view(1, 3, 1, 1) / 255.0
    out = []
    for b in range(images.shape[0]):
        x = images[b : b + 1] * s + m  # back to [0, 1] RGB
        if jitter_strength > 0 and float(torch.rand((), generator=generator)) < jitter_p:
            x = color_jitter(x.clamp(0, 1), jitter_strength, generator)
        if blur and float(torch.rand((), generator=generator)) < 0.5:
            sigma = _uniform(generator, 0.15, 1.15)
            h, w = x.shape[-2:]
            x = gaussian_blur(x, sigma, (blur_kernel_size(h), blur_kernel_size(w)))
        out.append((x - m) / s)
    return torch.cat(out, dim=0)


def photometric_augment(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator,
    jitter_p: float = 0.8,
    jitter_strength: float = 0.4,
    gray_p: float = 0.2,
    blur_p: float = 0.5,
) -> torch.Tensor:
    """SimCLR-style appearance augmentation on normalised (B,3,H,W) images (pretraining, not UDA).

    Per image: colour jitter (brightness, contrast, saturation, hue of strength s) with probability
    `jitter_p`, greyscale with `gray_p`, Gaussian blur (sigma ~ U(0.1, 1.5)) with `blur_p`. It makes
    pretrained features less dependent on absolute colour, as ImageNet recipes do; it adds no lighting
    model, haze, rain or sensor noise.
    """
    m = images.new_tensor(mean).view(1, 3, 1, 1) / 255.0
    s = images.new_tensor(std).view(1, 3, 1, 1) / 255.0
    out = []
    for b in range(images.shape[0]):
        x = (images[b : b + 1] * s + m).clamp(0, 1)
        if float(torch.rand((), generator=generator)) < jitter_p:
            x = color_jitter(x, jitter_strength, generator)
        if float(torch.rand((), generator=generator)) < gray_p:
            x = _rgb_to_gray(x).expand(-1, 3, -1, -1)
        if float(torch.rand((), generator=generator)) < blur_p:
            h, w = x.shape[-2:]
            x = gaussian_blur(x, _uniform(generator, 0.1, 1.5), (blur_kernel_size(h), blur_kernel_size(w)))
        out.append((x - m) / s)
    return torch.cat(out, dim=0)


def appearance_randomize(
    images: torch.Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    generator: torch.Generator,
    gray_p: float = 0.2,
) -> torch.Tensor:
    """Domain-randomised appearance for labelled source images, on normalised (B,3,H,W) images.

    Per image, in this order: a hue rotation drawn from the whole circle, saturation x U(0.3, 1.5),
    per-channel gains U(0.8, 1.2) (white balance), brightness x U(0.6, 1.3), contrast x U(0.6, 1.3),
    greyscale with probability `gray_p`. Unlike `photometric_augment` (small hue shifts, blur) it removes
    absolute colour as a cue altogether: a class's hue carries no information, its shape, texture and
    context do. It draws nothing from any target domain's look and adds no blur, noise, fog or lighting.
    """
    m = images.new_tensor(mean).view(1, 3, 1, 1) / 255.0
    s = images.new_tensor(std).view(1, 3, 1, 1) / 255.0
    out = []
    for b in range(images.shape[0]):
        x = (images[b : b + 1] * s + m).clamp(0, 1)
        x = _rotate_hue(x, _uniform(generator, -0.5, 0.5)).clamp(0, 1)
        gray = _rgb_to_gray(x)
        x = ((x - gray) * _uniform(generator, 0.3, 1.5) + gray).clamp(0, 1)
        gains = x.new_tensor([_uniform(generator, 0.8, 1.2) for _ in range(3)]).view(1, 3, 1, 1)
        x = (x * gains * _uniform(generator, 0.6, 1.3)).clamp(0, 1)
        level = _rgb_to_gray(x).mean()
        x = ((x - level) * _uniform(generator, 0.6, 1.3) + level).clamp(0, 1)
        if float(torch.rand((), generator=generator)) < gray_p:
            x = _rgb_to_gray(x).expand(-1, 3, -1, -1)
        out.append((x - m) / s)
    return torch.cat(out, dim=0)


def augment_source(
    kind: str, images: torch.Tensor, mean: Sequence[float], std: Sequence[float], generator: torch.Generator
) -> torch.Tensor:
    """The labelled source batch's appearance augmentation (`data.source_augment`): none | photometric | randomize."""
    if kind == "none":
        return images
    if kind == "photometric":
        return photometric_augment(images, mean, std, generator)
    if kind == "randomize":
        return appearance_randomize(images, mean, std, generator)
    raise ValueError(f"unknown source augmentation '{kind}'")


def block_mask(
    batch: int,
    size: tuple[int, int],
    block: int,
    ratio: float,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """MIC patch mask (B,1,H,W): each block x block patch is kept with probability 1 - ratio."""
    h, w = size
    gh, gw = math.ceil(h / block), math.ceil(w / block)
    keep = (torch.rand((batch, 1, gh, gw), generator=generator) > ratio).float().to(device)
    return F.interpolate(keep, scale_factor=block, mode="nearest")[:, :, :h, :w]
