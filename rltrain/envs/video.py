"""MP4 video of RGB frames (imageio with the PyAV plugin; both are in the `atari` extra)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rltrain.errors import UserError


def _imageio() -> object:
    try:
        import av  # noqa: F401  (the pyav plugin needs it)
        import imageio.v3 as iio
    except ImportError:
        raise UserError("videos need imageio and av: pip install 'rltrain[atari]'") from None
    return iio


def _even(frame: np.ndarray) -> np.ndarray:
    """H.264 in yuv420p needs even sides: pad odd ones by one edge row/column."""
    pad_h, pad_w = frame.shape[0] % 2, frame.shape[1] % 2
    if pad_h or pad_w:
        frame = np.pad(frame, ((0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return frame


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30) -> Path:
    """Writes uint8 HxWx3 RGB frames as H.264 MP4 (odd sides padded to even); returns the path.

    Frames are streamed to the encoder one at a time, so a generator keeps memory flat.
    """
    iio = _imageio()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with iio.imopen(path, "w", plugin="pyav") as file:  # type: ignore[attr-defined]
        file.init_video_stream("libx264", fps=fps)
        for frame in frames:
            frame = np.asarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be uint8 HxWx3, got {frame.dtype} {frame.shape}")
            file.write_frame(_even(np.ascontiguousarray(frame)))
            count += 1
    if count == 0:
        path.unlink(missing_ok=True)
        raise ValueError("write_mp4 needs at least one frame")
    return path


def read_video_frames(path: str | Path, max_frames: int | None = None) -> np.ndarray:
    """Decodes a video into uint8 [T, H, W, 3] RGB frames, the first `max_frames` of it when
    given (decoded one by one: a whole Atari game can be tens of thousands of frames)."""
    iio = _imageio()
    if max_frames is None:
        return np.asarray(iio.imread(Path(path), plugin="pyav"))  # type: ignore[attr-defined]
    frames = iio.imiter(Path(path), plugin="pyav")  # type: ignore[attr-defined]
    return np.stack([frame for _, frame in zip(range(max_frames), frames, strict=False)])
