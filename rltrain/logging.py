"""Metric recorder: algorithms hand it numbers or tensors; it writes TensorBoard at log time.

Scalars given as tensors stay on their device and are averaged over the log window, so an
algorithm can record every update without a host sync; the recorder converts them all at once
when it flushes. Tags follow the contract in the README (charts/, eval/, values/, losses/, policy/).
"""

from __future__ import annotations

import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from rltrain.errors import write_failure

_Method = TypeVar("_Method", bound=Callable[..., Any])
HParam = bool | int | float | str  # a value in the HParams tab


def _event_io(method: _Method) -> _Method:
    """A failed write of the event files (full disk, the run directory gone) becomes one line.

    TensorBoard writes from a thread of its own and re-raises its OSError at the next call here;
    after the first failure the writer is not used again (closing it would raise once more)."""

    @functools.wraps(method)
    def guarded(self: Recorder, *args: Any, **kwargs: Any) -> Any:
        if self._failed:
            return None
        try:
            return method(self, *args, **kwargs)
        except OSError as error:
            self._failed = True
            failure = write_failure(f"the event files in {self._run_dir}", error)
            if failure is None:
                raise
            raise failure from error

    return guarded  # type: ignore[return-value]


def _quiet_writer_threads(previous: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A threading.excepthook that leaves TensorBoard's writer thread's OSError to the main
    thread (which reports it in one line) instead of printing its traceback."""

    def hook(args: Any) -> None:
        writer_thread = type(args.thread).__name__ == "_AsyncWriterThread"
        if writer_thread and isinstance(args.exc_value, OSError):
            return
        previous(args)

    hook.quiet_writer_threads = True  # type: ignore[attr-defined]
    return hook


class Recorder:
    """`enabled`: write TensorBoard events; `trackers` (rltrain/trackers.py) get every scalar
    written too, sent at each flush."""

    def __init__(
        self,
        run_dir: Path | None,
        enabled: bool,
        purge_step: int | None = None,
        trackers: Sequence[Any] = (),
    ) -> None:
        self.trackers = list(trackers)
        self._run_dir = run_dir
        self._failed = False
        if not getattr(threading.excepthook, "quiet_writer_threads", False):
            threading.excepthook = _quiet_writer_threads(threading.excepthook)
        self._scalars: dict[str, list[Any]] = defaultdict(list)
        self._histograms: dict[str, Any] = {}
        self._images: dict[str, np.ndarray] = {}
        self._texts: dict[str, str] = {}
        self.latest: dict[str, float] = {}  # last flushed value of each scalar, for summaries
        self.writer = None
        if enabled and run_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops events at or after the resume step that a killed run left behind,
            # so resumed curves have neither duplicated nor missing points.
            self.writer = SummaryWriter(str(run_dir), purge_step=purge_step, flush_secs=10)

    def scalar(self, tag: str, value: float | torch.Tensor) -> None:
        """Record a value; the mean over the log window is written at the next flush."""
        self._scalars[tag].append(value.detach() if isinstance(value, torch.Tensor) else value)

    def histogram(self, tag: str, values: torch.Tensor | np.ndarray) -> None:
        """Keep the latest batch of values; written at the next flush."""
        if isinstance(values, torch.Tensor):
            values = values.detach()
        self._histograms[tag] = values

    def image(self, tag: str, image: np.ndarray) -> None:
        """An HxWx3 uint8 image, written at the next flush."""
        self._images[tag] = image

    def text(self, tag: str, text: str) -> None:
        """Markdown for TensorBoard's Text tab, written at the next flush (with the images)."""
        self._texts[tag] = text

    @_event_io
    def video(self, tag: str, frames: np.ndarray, step: int, fps: float) -> None:
        """Write uint8 [T, H, W, 3] frames now, as an animated GIF in TensorBoard's Images tab.

        GIF rather than torch's add_video, which needs moviepy; Pillow comes with imageio.
        """
        if self.writer is None or len(frames) == 0:
            return
        import io

        from PIL import Image
        from tensorboard.compat.proto.summary_pb2 import Summary

        pictures = [Image.fromarray(np.ascontiguousarray(frame)) for frame in frames]
        buffer = io.BytesIO()
        pictures[0].save(
            buffer, format="GIF", save_all=True, append_images=pictures[1:],
            duration=max(20, round(1000 / fps)), loop=0,
        )  # fmt: skip
        height, width = frames.shape[1:3]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=buffer.getvalue()
        )
        # the file writer is how SummaryWriter's own add_* methods write a prepared summary
        self.writer._get_file_writer().add_summary(
            Summary(value=[Summary.Value(tag=tag, image=image)]), step
        )

    @_event_io
    def custom_scalars(self, layout: dict[str, Any]) -> None:
        """Write a Custom Scalars layout ({category: {title: ["Multiline", [tags]]}}) now.

        TensorBoard reads each run's first layout; a resumed run writes the same one again."""
        if self.writer is not None and layout:
            self.writer.add_custom_scalars(layout)

    @_event_io
    def write(self, tag: str, value: float, step: int) -> None:
        """Write one host-side number now (episode returns, eval results)."""
        self.latest[tag] = float(value)
        if self.writer is not None:
            self.writer.add_scalar(tag, float(value), step)
        for tracker in self.trackers:
            tracker.scalar(tag, float(value), step)

    def first_non_finite(self) -> str | None:
        """The first recorded tag whose pending values hold a NaN or inf (one host sync)."""
        tags = [t for t, vs in self._scalars.items() if isinstance(vs[0], torch.Tensor)]
        if tags:
            finite = torch.stack(
                [
                    torch.isfinite(torch.stack([v.float() for v in self._scalars[t]])).all()
                    for t in tags
                ]
            ).cpu()
            for tag, ok in zip(tags, finite.tolist(), strict=True):
                if not ok:
                    return tag
        for tag, values in self._scalars.items():
            if (
                not isinstance(values[0], torch.Tensor)
                and not np.isfinite(np.asarray(values, dtype=float)).all()
            ):
                return tag
        return None

    def state_dict(self) -> dict[str, Any]:
        """Values recorded since the last flush: a resumed run averages the same window."""
        return {tag: list(values) for tag, values in self._scalars.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._scalars.clear()
        for tag, values in state.items():
            self._scalars[tag].extend(values)

    def pending(self) -> bool:
        return bool(self._scalars or self._histograms or self._images or self._texts)

    @_event_io
    def flush(self, step: int, histograms: bool = True, images: bool = True) -> dict[str, float]:
        """Average and write everything recorded since the last flush; returns the scalars."""
        means: dict[str, float] = {}
        tensor_tags = [t for t, vs in self._scalars.items() if isinstance(vs[0], torch.Tensor)]
        if tensor_tags:
            # One host transfer for every tensor-valued tag.
            stacked = torch.stack(
                [torch.stack([v.float() for v in self._scalars[t]]).mean() for t in tensor_tags]
            ).cpu()
            means.update(zip(tensor_tags, stacked.tolist(), strict=True))
        for tag, values in self._scalars.items():
            if tag not in means:
                means[tag] = float(np.mean([float(v) for v in values]))
        self._scalars.clear()
        self.latest.update(means)
        if self.writer is not None:
            for tag, value in means.items():
                self.writer.add_scalar(tag, value, step)
            if histograms:
                for tag, values in self._histograms.items():
                    array = (
                        values.float().cpu().numpy() if isinstance(values, torch.Tensor) else values
                    )
                    if np.isfinite(array).all() and array.size:
                        self.writer.add_histogram(tag, array, step)
            if images:
                for tag, image in self._images.items():
                    self.writer.add_image(tag, image, step, dataformats="HWC")
                for tag, text in self._texts.items():
                    self.writer.add_text(tag, text, step)
        self._histograms.clear()
        self._images.clear()
        self._texts.clear()
        for tracker in self.trackers:
            for tag, value in means.items():
                tracker.scalar(tag, value, step)
            tracker.flush()
        return means

    @_event_io
    def flush_events(self) -> None:
        """Push what the TensorBoard writer has queued to disk now (it does so every 10 s)."""
        if self.writer is not None:
            self.writer.flush()

    @_event_io
    def hparams(self, params: dict[str, HParam], metrics: Sequence[str]) -> None:
        """The run as one row of the HParams tab: `params` with their own types (a bool stays a
        bool; torch's add_hparams makes it 1.0), and as metrics the last value of the scalar
        tags `metrics`, which the run logs anyway (add_hparams writes a copy at step 0)."""
        if self.writer is None or self.writer.file_writer is None:
            return
        file_writer = self.writer.file_writer
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
        from tensorboard.plugins.hparams import summary_v2 as hp

        config = hp.hparams_config_pb([hp.HParam(name) for name in params], map(hp.Metric, metrics))
        end = plugin_data_pb2.HParamsPluginData(
            session_end_info=plugin_data_pb2.SessionEndInfo(status=api_pb2.STATUS_SUCCESS)
        )
        end_summary = Summary(
            value=[
                Summary.Value(
                    tag=metadata.SESSION_END_INFO_TAG,
                    metadata=metadata.create_summary_metadata(end),
                )
            ]
        )
        for summary in (config, hp.hparams_pb(params), end_summary):
            file_writer.add_summary(summary)

    def finish(self, metrics: dict[str, float], step: int, run_dir: Path) -> None:
        """The run's final metrics to the trackers, which then mark their runs finished."""
        for tracker in self.trackers:
            tracker.finish(metrics, step, run_dir)

    @_event_io
    def close(self) -> None:
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
        for tracker in self.trackers:
            tracker.close()
