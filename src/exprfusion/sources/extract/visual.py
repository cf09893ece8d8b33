"""Face features: any Hugging Face image model, one vector per frame, the images decoded beside the model.

Worker processes (a ``DataLoader``) decode each batch of JPEG files and run the model's own image processor while
the model embeds the previous batches; on CUDA the batches arrive in pinned memory and the forward pass runs under
bf16/fp16 autocast. A batch never mixes two videos, so a video's features do not depend on which videos ran with it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from exprfusion.core.errors import InputError
from exprfusion.sources.extract.checkpoints import autocast, check_layer, load_pretrained
from exprfusion.sources.extract.media import MediaError, load_face
from exprfusion.sources.extract.settings import VisualSettings


@dataclass(frozen=True)
class FaceVideo:
    """One video's face images: ``images[i]`` is frame ``i``'s file, None where no face was kept."""

    name: str
    images: Sequence[Path | None]


@dataclass(frozen=True)
class FaceFeatures:
    """A video's face features: ``features`` float16 ``[n, D]`` (zeros without a face), ``face_mask`` bool ``[n]``.

    ``failures`` names each image that could not be decoded (its frame counts as having no face).
    """

    name: str
    features: np.ndarray
    face_mask: np.ndarray
    failures: tuple[str, ...]


class FaceBatches(torch.utils.data.Dataset):
    """Batches of face images, each decoded and preprocessed by the model's own image processor."""

    def __init__(self, batches: Sequence[Sequence[Path]], processor: Any) -> None:
        self.batches = batches
        self.processor = processor

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[torch.Tensor | None, np.ndarray, list[str]]:
        """``(pixel_values of the decodable images or None, decodable flags, one message per failure)``."""
        images, decodable, failures = [], [], []
        for path in self.batches[index]:
            try:
                images.append(load_face(path))
                decodable.append(True)
            except MediaError as error:
                decodable.append(False)
                failures.append(str(error))
        pixels = self.processor(images=images, return_tensors="pt")["pixel_values"] if images else None
        return pixels, np.asarray(decodable, dtype=bool), failures


def _unbatched(item: Any) -> Any:
    """The DataLoader's collate function: each dataset item already is a batch."""
    return item


class FaceEncoder:
    """An image model with its image processor, pooled to one vector per image."""

    def __init__(
        self,
        settings: VisualSettings,
        checkpoint: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype | None,
        compile: bool = False,
    ) -> None:
        from transformers import AutoImageProcessor, AutoModel

        self.settings = settings
        self.device = device
        self.dtype = dtype
        self.compiled = compile
        self.processor = load_pretrained(AutoImageProcessor, checkpoint)
        self.model = load_pretrained(AutoModel, checkpoint).eval().to(device)
        check_layer(self.model, settings.layer, "visual")
        self._forward = torch.compile(self.model) if compile else self.model
        self.patch_size = getattr(self.model.config, "patch_size", None)
        blank = self.processor(images=[Image.new("RGB", (112, 112))], return_tensors="pt")["pixel_values"]
        self.dim = int(self.embed(blank).shape[1])

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Float16 features ``[b, D]`` of a batch of preprocessed images, left on the model's device."""
        n = pixels.shape[0]
        if self.compiled and n < self.settings.batch_size:  # one shape for the compiled graph
            padding = pixels.new_zeros((self.settings.batch_size - n, *pixels.shape[1:]))
            pixels = torch.cat([pixels, padding])
        want_layers = self.settings.pooling == "mean" and self.settings.layer is not None
        with torch.inference_mode(), autocast(self.device, self.dtype):
            outputs = self._forward(
                pixel_values=pixels.to(self.device, non_blocking=True), output_hidden_states=want_layers
            )
        if self.settings.pooling == "pooler":
            pooled = getattr(outputs, "pooler_output", None)
            if pooled is None:
                raise InputError(f"{self.settings.model} has no pooler output; use pooling: mean")
            pooled = pooled.flatten(1)
        else:
            hidden = outputs.hidden_states[self.settings.layer] if want_layers else outputs.last_hidden_state
            pooled = self._mean_of_patches(hidden, pixels)
        return pooled[:n].to(torch.float16)

    def _mean_of_patches(self, hidden: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
        """Mean over the patch tokens (class and other special tokens left out), or over space for a feature map."""
        if hidden.ndim == 4:  # convolutional models: [b, C, H, W]
            return hidden.float().mean(dim=(2, 3))
        tokens = hidden.shape[1]
        if self.patch_size:
            size = self.patch_size if isinstance(self.patch_size, int) else self.patch_size[0]
            patches = (pixels.shape[-2] // size) * (pixels.shape[-1] // size)
            if 0 < patches <= tokens:
                hidden = hidden[:, tokens - patches :]  # the patch tokens follow the special tokens
        return hidden.float().mean(dim=1)

    def encode_videos(self, videos: Sequence[FaceVideo], workers: int = 0) -> Iterator[FaceFeatures]:
        """Embed every face image of ``videos``, video by video, in the given order.

        Args:
            videos: the videos and their per-frame image files.
            workers: decoding processes beside the model (0: decode in this process, between forward passes).

        Yields:
            One :class:`FaceFeatures` per video, as soon as its last batch is embedded.
        """
        size = self.settings.batch_size
        plans = []  # per video: the frame indices of each of its batches
        batches: list[list[Path]] = []
        for video in videos:
            present = [i for i, path in enumerate(video.images) if path is not None]
            frames = [present[start : start + size] for start in range(0, len(present), size)]
            plans.append(frames)
            batches.extend([video.images[i] for i in chunk] for chunk in frames)
        loader = torch.utils.data.DataLoader(
            FaceBatches(batches, self.processor),
            batch_size=None,
            collate_fn=_unbatched,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
        )
        items = iter(loader)
        for video, frames in zip(videos, plans, strict=True):
            n = len(video.images)
            features = np.zeros((n, self.dim), dtype=np.float16)
            face_mask = np.zeros(n, dtype=bool)
            failures: list[str] = []
            pending: deque[tuple[np.ndarray, torch.Tensor]] = deque()
            for chunk in frames:
                pixels, decodable, errors = next(items)
                failures.extend(errors)
                rows = np.asarray(chunk)[decodable]
                face_mask[rows] = True
                if pixels is not None:
                    pending.append((rows, self.embed(pixels)))
                if len(pending) > 1:  # copy a batch back only once the next one is queued on the device
                    done_rows, output = pending.popleft()
                    features[done_rows] = output.cpu().numpy()
            for done_rows, output in pending:
                features[done_rows] = output.cpu().numpy()
            yield FaceFeatures(video.name, features, face_mask, tuple(failures))
