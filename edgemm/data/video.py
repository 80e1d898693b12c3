"""The video-folder data format: ``root/<label>/*.mp4|mkv|mov|webm`` with an audio track (PyAV).

Each clip gives ``samples_per_clip`` samples: a frame and the audio window that goes with its
timestamp (``AudioConfig.align``: by default the window *ends* at the frame, which is what a live
microphone can provide, so training sees what the runtime will see). All samples of one clip land
in the same split, so no clip leaks from train into test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgemm._av import import_av
from edgemm.atomic import atomic_path
from edgemm.data.errors import DataError
from edgemm.data.media import check_audio
from edgemm.data.preprocess import AudioAlign, PreprocessConfig, preprocess_image, window_at, window_positions
from edgemm.data.splits import Split, stratified_split
from edgemm.vocab import UNLABELLED

UNLABELLED_DIR = "unlabelled"  # root/unlabelled/*.mp4: clips without a label

VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".webm")


@dataclass
class DecodedClip:
    """A whole clip decoded: RGB frames with their times, and mono audio at the target rate."""

    path: Path
    frames: list[np.ndarray]
    times: np.ndarray
    audio: np.ndarray
    audio_start: float
    sample_rate: int


def rgb_frames(frames: Iterable[Any]) -> Iterator[tuple[float, np.ndarray]]:
    """Turns decoded PyAV video frames into ``(time in s, HxWx3 uint8 RGB)``.

    Every decoder in edgemm (training clips here, the runtime's video source) converts through
    this one function, so both see identical pixels. It keeps one libswscale context for the whole
    stream: ``frame.to_ndarray(format="rgb24")`` sets one up per frame, which made colour
    conversion 6x slower than decoding a 96x96 H.264 stream (0.42 vs 0.07 ms per frame, same
    pixels).
    """
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    for fr in frames:
        yield float(fr.time or 0.0), reformatter.reformat(fr, format="rgb24").to_ndarray()


def decode_clip(path: Path, sample_rate: int) -> DecodedClip:
    """Decodes every frame and the first audio track of a video file.

    Audio is resampled to ``sample_rate`` mono float32 by PyAV and placed on the video's time axis
    by the first audio frame's timestamp.

    Raises:
        DataError: If the file cannot be opened or decoded, has no video or no audio track, or
            its audio is empty or silent.
    """
    av = import_av()

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise DataError(path, f"cannot open video ({e})") from None
    with container:
        if not container.streams.video:
            raise DataError(path, "has no video stream")
        if not container.streams.audio:
            raise DataError(path, "has no audio track; the video format needs clips with sound")
        try:
            frames, times = [], []
            for t, rgb in rgb_frames(container.decode(video=0)):
                frames.append(rgb)
                times.append(t)
            container.seek(0)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            chunks, start = [], None
            for fr in container.decode(audio=0):
                if start is None:
                    start = float(fr.time or 0.0)
                chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(fr))
            chunks.extend(o.to_ndarray().reshape(-1) for o in resampler.resample(None))
        except av.error.FFmpegError as e:
            raise DataError(path, f"cannot decode video ({e})") from None
    if not frames:
        raise DataError(path, "has no video frames")
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    check_audio(audio, path)
    return DecodedClip(path, frames, np.asarray(times), audio, start or 0.0, sample_rate)


def sample_times(clip: DecodedClip, n: int, window_seconds: float, align: AudioAlign) -> list[int]:
    """Picks ``n`` frame indices spread over the clip, preferring frames with a full audio window."""
    t = clip.times
    lead = window_seconds if align is AudioAlign.END else window_seconds / 2
    lo = t[0] + lead if t[-1] - t[0] >= lead else t[-1]
    targets = np.linspace(lo, t[-1], n) if n > 1 else np.asarray([(lo + t[-1]) / 2])
    return [int(np.argmin(np.abs(t - x))) for x in targets]


def frame_window(clip: DecodedClip, k: int, preprocess: PreprocessConfig) -> dict[str, np.ndarray]:
    """The model inputs for frame ``k`` of a clip: its image and the audio window that goes with it,
    or, for a temporal model (``preprocess.frames`` = K > 1, ``frame_stride`` = s), those of the K
    frames ``window_positions`` picks, stacked oldest first: frames k-(K-1)s, ..., k-s, k of a clip at
    ``preprocess.frame_rate`` (or when it is None); the same seconds apart at another rate (before the
    clip's first frame, the first frame and its window repeat)."""
    a = preprocess.audio

    def one(i: int) -> tuple[np.ndarray, np.ndarray]:
        return preprocess_image(clip.frames[i], preprocess.image), window_at(clip.audio, clip.times[i] - clip.audio_start, a)

    if preprocess.frames == 1:
        image, audio = one(k)
        return {"image": image, "audio": audio}
    images, audios = zip(*(one(i) for i in window_positions(clip.times, k + 1, preprocess)))
    return {"image": np.stack(images), "audio": np.stack(audios)}


@dataclass
class VideoFolder:
    """A scanned video folder: its clips with labels and splits, and the files it skipped."""

    root: Path
    clips: list[tuple[Path, str, Split]]
    labels: list[str]
    skipped: list[DataError] = field(default_factory=list)


def scan_video_folder(root: str | Path) -> VideoFolder:
    """Lists ``root/<label>/*`` clips and assigns a deterministic stratified split per clip.

    Raises:
        DataError: If ``root`` is not a directory or holds no label folders with videos.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "video folder does not exist")
    found, unlabelled = [], []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(label_dir.iterdir()):
            if f.suffix.lower() in VIDEO_SUFFIXES:
                (unlabelled if label_dir.name == UNLABELLED_DIR else found).append((f, label_dir.name))
    if not found:
        raise DataError(root, f"no videos found; expected root/<label>/*{{{','.join(VIDEO_SUFFIXES)}}}")
    splits = stratified_split([str(f.relative_to(root)) for f, _ in found], [lab for _, lab in found])
    # Clips in root/unlabelled/ are transfer data for distillation: train split, no label.
    clips = [(f, lab, s) for (f, lab), s in zip(found, splits)] + [(f, "", Split.TRAIN) for f, _ in unlabelled]
    labels = sorted({lab for _, lab, s in clips if s is Split.TRAIN and lab})
    return VideoFolder(root, clips, labels)


def folder_frame_rate(folder: VideoFolder) -> float | None:
    """The median frame rate of a folder's training clips, as their video streams declare it
    (None when none does; a clip that cannot be opened is left to decoding to report)."""
    av = import_av()
    rates = []
    for path, _, split in folder.clips:
        if split is not Split.TRAIN:
            continue
        try:
            with av.open(str(path)) as container:
                rate = container.streams.video[0].average_rate if container.streams.video else None
        except (av.error.FFmpegError, OSError):
            continue
        if rate:
            rates.append(float(rate))
    return round(float(np.median(rates)), 3) if rates else None


class VideoDataset:
    """Samples of one split of a video folder, decoded once and held in memory.

    Items are dicts ``{"image", "audio", "label"}`` exactly as ``ManifestDataset`` gives them.
    """

    def __init__(
        self,
        folder: VideoFolder,
        split: Split,
        preprocess: PreprocessConfig,
        *,
        samples_per_clip: int = 3,
        skip_bad: bool = False,
    ) -> None:
        if samples_per_clip < 1:
            raise ValueError(f"samples_per_clip must be >= 1, got {samples_per_clip}")
        self.labels = list(folder.labels)
        self.preprocess = preprocess
        self.skipped: list[DataError] = []
        self.items: list[dict[str, Any]] = []
        self._clips: list[int] = []  # the clip (index in folder.clips) each item was cut from
        index = {name: i for i, name in enumerate(self.labels)}
        a = preprocess.audio
        for clip_index, (path, label, s) in enumerate(folder.clips):
            if s is not split:
                continue
            try:
                clip = decode_clip(path, a.sample_rate)
            except DataError as e:
                if not skip_bad:
                    raise
                self.skipped.append(e)
                continue
            for k in sample_times(clip, samples_per_clip, a.clip_seconds, a.align):
                self.items.append({**frame_window(clip, k, preprocess), "label": index.get(label, UNLABELLED)})
                self._clips.append(clip_index)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]

    def targets(self) -> np.ndarray:
        return np.asarray([it["label"] for it in self.items], np.int64)

    def clip_ids(self) -> np.ndarray:
        """The clip each item was cut from (for clip-level accuracy)."""
        return np.asarray(self._clips, np.int64)


def write_clip(
    path: str | Path, frames: list[np.ndarray], fps: int, audio: np.ndarray, sample_rate: int
) -> Path:
    """Writes RGB frames and mono float audio as H.264 + AAC (what phones and cameras produce).

    The file is written beside its destination and renamed into place when complete.
    """

    av = import_av()

    path = Path(path)
    h, w = frames[0].shape[:2]
    with atomic_path(path) as tmp, av.open(str(tmp), "w") as c:
        v = c.add_stream("libx264", rate=fps, options={"crf": "18", "preset": "veryfast"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        a = c.add_stream("aac", rate=sample_rate, layout="mono")
        for fr in frames:
            c.mux(v.encode(av.VideoFrame.from_ndarray(fr, format="rgb24")))
        hop = sample_rate // 10
        for s in range(0, len(audio), hop):
            chunk = np.ascontiguousarray(audio[s : s + hop], np.float32)[None, :]
            af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
            af.sample_rate, af.pts = sample_rate, s
            c.mux(a.encode(af))
        c.mux(v.encode())
        c.mux(a.encode())
    return path
