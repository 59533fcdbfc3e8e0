"""Unlabeled hand images for HandCLR pre-training and pair mining: one reader for image folders, `datasets`
objects on disk or on the Hub, streams, and the built-in synthetic hands.

A source is a table of rows with an image column and three optional ones:

- `box`: the hand box (x0, y0, x1, y1) in pixels of the upright image (EXIF orientation applied), with the extent
  of the data sets' boxes (the tight box of the hand, no margin); missing or None: the whole image is the hand;
- `is_left`: a left hand (its crop is mirrored into a right hand, as the image processor does); missing: right;
- `group`: the video or sequence the image comes from (any string or integer); mining never pairs two rows of one
  group. Missing or None: the row is a group of its own.

The crop of a row is the image processor's (`CLIPHand3DImageProcessor.crop_transform` and `.crop`): a square of
`DEFAULT_CROP_MARGIN` (1.3) x the box's longer side around the box's centre, mirrored for left hands, resized to the
crop size; without a box, the square around the whole image.

`load_unlabeled(SPEC)` reads, by SPEC:

- `folder:PATH`, or `PATH` of a folder of images: .jpg/.jpeg/.png files under PATH (recursive, sorted); the group
  of an image is its folder relative to PATH (frames of one video in one folder), none for images directly in PATH;
- `disk:PATH`, or `PATH` of a folder written by `save_to_disk`: `datasets.load_from_disk` (a `DatasetDict`: the
  split `split`);
- `hub:NAME`: `datasets.load_dataset(NAME, split=split)`;
- `stream:PATH_OR_NAME`: streamed, never in memory: an image folder, a `save_to_disk` folder, or anything
  `datasets.load_dataset(..., streaming=True)` reads (a folder of parquet / json / csv files, a Hub name);
- `synthetic:N`: the built-in synthetic hands (`render_sample`), every row its own group;
- `synthetic-video:N[xF]`: N synthetic sequences of F frames (default 16, `synthetic.sequences`), grouped by
  sequence.

Both synthetic sources render on access (nothing is cached) and carry their labels' `joints_uv` (pixels of the
image), e.g. for `--keypoints column:joints_uv`. A `datasets.Dataset` or `IterableDataset` may be given instead of
a SPEC. Bad input fails with a `UnlabeledDataError` naming the source, the row and the column or file.
"""

import functools
import hashlib
import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import PIL.Image
from datasets import Dataset, DatasetDict, Features, Image, IterableDataset, IterableDatasetDict, Value

from clip_hand3d.data.streaming import iter_image_paths
from clip_hand3d.image_processing import DEFAULT_CROP_MARGIN, CLIPHand3DImageProcessor
from clip_hand3d.image_utils import open_image, rgb_image

IMAGE_COLUMN, BOX_COLUMN, IS_LEFT_COLUMN, GROUP_COLUMN = "image", "box", "is_left", "group"
DEFAULT_FRAMES_PER_SEQUENCE = 16
FOLDER_FEATURES = Features({"image": Image(), "group": Value("string")})
# Rows read at a time from a map-style dataset.
READ_BATCH_SIZE = 256


class UnlabeledDataError(ValueError):
    """An unlabeled source cannot be read as asked: the message names the source, row, column or file."""


@dataclass
class UnlabeledRow:
    """One row of an unlabeled source.

    `index` is its position in the source (the order of iteration), `image` the raw cell (a PIL image, an array,
    a path, or `datasets`' undecoded {"bytes", "path"}), `box` (4,) float64 pixels or None (the whole image),
    `is_left`, `group` (a string, None: its own group), `columns` any other columns asked for by name.
    """

    index: int
    image: object
    box: np.ndarray | None = None
    is_left: bool = False
    group: str | None = None
    columns: dict = field(default_factory=dict)
    source: str = "unlabeled data"

    @property
    def name(self) -> str:
        """The row in error messages: its index, source and file when it has one."""
        path = _image_path(self.image)
        return f"row {self.index} of {self.source}" + (f" (image file {path!r})" if path else "")

    def load_image(self) -> PIL.Image.Image:
        """The row's image as an upright RGB PIL image; `UnlabeledDataError` naming the file when it cannot be read."""
        image = self.image
        try:
            if isinstance(image, dict):
                if image.get("bytes") is not None:
                    image = open_image(io.BytesIO(image["bytes"]), name=self.name)
                elif image.get("path"):
                    image = open_image(image["path"], name=self.name)
                else:
                    raise ValueError(f"{self.name}: the image cell holds neither bytes nor a path")
            elif isinstance(image, str | os.PathLike):
                image = open_image(image, name=self.name)
            elif image is None:
                raise ValueError(f"{self.name}: the image is missing (None)")
            return rgb_image(image, self.name)
        except ValueError as error:
            raise UnlabeledDataError(str(error)) from error


def _image_path(image: object) -> str | None:
    if isinstance(image, dict):
        return image.get("path") or None
    if isinstance(image, str | os.PathLike):
        return os.fspath(image)
    return None


def crop_processor(crop_size: int = 224, crop_margin: float = DEFAULT_CROP_MARGIN) -> CLIPHand3DImageProcessor:
    """The image processor whose crop path makes the unlabeled crops: `crop_size` pixels, `crop_margin` x the box."""
    return CLIPHand3DImageProcessor(image_size=crop_size, crop_margin=crop_margin)


def crop_transform(row: UnlabeledRow, processor: CLIPHand3DImageProcessor, image: PIL.Image.Image | None = None):
    """The (2, 3) similarity from the row's image pixels to its crop's (mirrored for left hands). The image is
    only opened when the row has no box (its size is needed then); pass it when it is already loaded."""
    if row.box is None:
        image = row.load_image() if image is None else image
        return processor.crop_transform(None, image.height, image.width, row.is_left)
    return processor.crop_transform(row.box, 0, 0, row.is_left)


def crop_row(row: UnlabeledRow, processor: CLIPHand3DImageProcessor) -> tuple[np.ndarray, np.ndarray]:
    """The row's crop (S, S, 3) uint8 (a right hand) and its (2, 3) transform from image pixels to crop pixels."""
    image = row.load_image()
    affine = crop_transform(row, processor, image)
    return processor.crop(image, affine), affine


def normalize_keypoints(keypoints_crop: np.ndarray, crop_size: int) -> np.ndarray:
    """Keypoints in crop pixels (pixel centres at integers) -> [0, 1] of the crop: (0, 0) its top-left corner,
    (1, 1) its bottom-right one."""
    return (np.asarray(keypoints_crop, dtype=np.float64) + 0.5) / crop_size


class _RenderedRows:
    """A random-access table whose rows are computed on access: `num_rows` and `row(index) -> dict`."""

    def __init__(self, num_rows: int, row: Callable[[int], dict], column_names: Sequence[str], name: str):
        self.num_rows, self.row, self.column_names, self.name = num_rows, row, list(column_names), name


class UnlabeledHands:
    """An unlabeled source read as `UnlabeledRow`s.

    Args:
        data: a `datasets.Dataset` (random access), a `datasets.IterableDataset` (streamed) or rows rendered on
            access (the synthetic sources of `load_unlabeled`).
        name: the source in messages (its SPEC).
        image_column: the image column (PIL-decodable `datasets.Image`, a path string, or an array).
        box_column, is_left_column, group_column: None: "box", "is_left", "group" when the source has them; a name:
            that column, which must exist.
        columns: more columns every row must have, read into `UnlabeledRow.columns` (e.g. keypoints).
    """

    def __init__(
        self,
        data,
        name: str | None = None,
        image_column: str = IMAGE_COLUMN,
        box_column: str | None = None,
        is_left_column: str | None = None,
        group_column: str | None = None,
        columns: Sequence[str] = (),
    ):
        if not isinstance(data, Dataset | IterableDataset | _RenderedRows):
            raise UnlabeledDataError(
                f"unlabeled data must be a datasets.Dataset or IterableDataset, got {type(data).__name__}"
            )
        self.name = name or getattr(data, "name", None) or type(data).__name__
        self.streaming = isinstance(data, IterableDataset)
        available = self._column_names(data)
        self.image_column = self._require(image_column, available, "image")
        self.box_column = self._optional(box_column, BOX_COLUMN, available, "box")
        self.is_left_column = self._optional(is_left_column, IS_LEFT_COLUMN, available, "is_left")
        self.group_column = self._optional(group_column, GROUP_COLUMN, available, "group")
        self.extra_columns = [self._require(column, available, "requested") for column in columns]
        needed = [self.image_column, self.box_column, self.is_left_column, self.group_column, *self.extra_columns]
        needed = list(dict.fromkeys(column for column in needed if column is not None))
        if isinstance(data, Dataset | IterableDataset):
            data = data.select_columns(needed)
            features = data.features
            if features is not None and isinstance(features.get(self.image_column), Image):
                # Decoded here, so that a bad file is named and skipped rows cost no decoding.
                data = data.cast_column(self.image_column, Image(decode=False))
        self.data = data

    def _column_names(self, data) -> list[str]:
        names = data.column_names
        if names is None:  # a stream without declared features: look at its first row
            first = next(iter(data), None)
            if first is None:
                raise UnlabeledDataError(f"{self.name} holds no rows")
            names = list(first)
        return list(names)

    def _require(self, column: str, available: list[str], role: str) -> str:
        if column not in available:
            option = "image_column / --image-column" if role == "image" else "the column's name"
            raise UnlabeledDataError(
                f"{self.name} has no {role} column {column!r} (its columns: {', '.join(available) or 'none'}); "
                f"name it with {option}"
            )
        return column

    def _optional(self, column: str | None, default: str, available: list[str], role: str) -> str | None:
        if column is None:
            return default if default in available else None
        return self._require(column, available, role)

    @property
    def num_rows(self) -> int | None:
        """The number of rows, None for a stream that does not say."""
        if isinstance(self.data, Dataset):
            return len(self.data)
        if isinstance(self.data, _RenderedRows):
            return self.data.num_rows
        splits = getattr(self.data.info, "splits", None)
        split = getattr(self.data, "split", None)
        if splits and split is not None and str(split) in splits:
            return splits[str(split)].num_examples or None
        return None

    def __len__(self) -> int:
        if self.num_rows is None:
            raise TypeError(f"{self.name} is a stream of unknown length")
        return self.num_rows

    @property
    def random_access(self) -> bool:
        """Whether `row(index)` works (not for streams)."""
        return not self.streaming

    def row(self, index: int) -> UnlabeledRow:
        """Row `index` of a random-access source."""
        if self.streaming:
            raise TypeError(f"{self.name} is a stream: iterate it with iter_rows")
        if not 0 <= index < len(self):
            raise IndexError(f"row {index} is out of range for {self.name} ({len(self)} rows)")
        raw = self.data.row(index) if isinstance(self.data, _RenderedRows) else self.data[int(index)]
        return self._make_row(index, raw)

    def iter_rows(self, start: int = 0) -> Iterator[UnlabeledRow]:
        """The rows from `start` on, in order."""
        if isinstance(self.data, _RenderedRows):
            for index in range(start, self.data.num_rows):
                yield self._make_row(index, self.data.row(index))
        elif isinstance(self.data, Dataset):
            for batch_start in range(start, len(self.data), READ_BATCH_SIZE):
                batch = self.data[batch_start : batch_start + READ_BATCH_SIZE]
                for offset in range(len(batch[self.image_column])):
                    yield self._make_row(batch_start + offset, {key: values[offset] for key, values in batch.items()})
        else:
            stream = self.data.skip(start) if start else self.data
            for index, raw in enumerate(stream, start):
                yield self._make_row(index, raw)

    def __iter__(self) -> Iterator[UnlabeledRow]:
        return self.iter_rows()

    def _make_row(self, index: int, raw: dict) -> UnlabeledRow:
        row = UnlabeledRow(index=index, image=raw.get(self.image_column), source=self.name)
        for column in self.extra_columns:
            if column not in raw:
                raise UnlabeledDataError(f"{row.name} has no column {column!r}")
        if self.box_column is not None:
            row.box = _check_box(raw.get(self.box_column), row.name, self.box_column)
        if self.is_left_column is not None:
            row.is_left = _check_is_left(raw.get(self.is_left_column), row.name, self.is_left_column)
        if self.group_column is not None:
            group = raw.get(self.group_column)
            row.group = None if group is None or (isinstance(group, str) and not group) else str(group)
        row.columns = {column: raw[column] for column in self.extra_columns}
        return row

    def __repr__(self) -> str:
        return f"UnlabeledHands({self.name!r}, rows={self.num_rows}, streaming={self.streaming})"


def _check_box(value, row_name: str, column: str) -> np.ndarray | None:
    if value is None:
        return None
    try:
        box = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        box = None
    if box is None or box.shape != (4,) or not np.isfinite(box).all() or box[2] <= box[0] or box[3] <= box[1]:
        raise UnlabeledDataError(
            f"{row_name}: column {column!r} must be 4 finite numbers (x0, y0, x1, y1) in pixels with x1 > x0 and "
            f"y1 > y0, got {value!r}"
        )
    return box


def _check_is_left(value, row_name: str, column: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool | np.bool_) or (isinstance(value, int | np.integer) and value in (0, 1)):
        return bool(value)
    raise UnlabeledDataError(f"{row_name}: column {column!r} must be a bool (or 0 / 1), got {value!r}")


# --- sources -----------------------------------------------------------------------------------------------------


def _folder_rows(root: str) -> Iterator[dict]:
    for path in iter_image_paths(root):
        folder = path.parent.relative_to(root).as_posix()
        yield {"image": str(path), "group": None if folder == "." else folder}


def _check_image_folder(root: Path) -> None:
    if not root.is_dir():
        raise UnlabeledDataError(f"image folder {root} does not exist or is not a folder")
    if next(iter_image_paths(root), None) is None:
        raise UnlabeledDataError(f"image folder {root} holds no .jpg / .jpeg / .png images")


def image_folder_dataset(root: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Dataset:
    """The images under `root` as a `Dataset` of {image, group} (group: the folder relative to `root`). Only the
    paths are stored (in the `datasets` cache, keyed by every file's path, size and time), never the pixels."""
    root = Path(root).expanduser().resolve()
    _check_image_folder(root)
    digest = hashlib.sha256(str(root).encode())
    for path in iter_image_paths(root):
        stat = path.stat()
        digest.update(f"\0{path}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return Dataset.from_generator(
        _folder_rows,
        features=FOLDER_FEATURES,
        gen_kwargs={"root": str(root)},
        cache_dir=None if cache_dir is None else str(cache_dir),
        fingerprint=digest.hexdigest()[:32],
    )


def image_folder_stream(root: str | os.PathLike) -> IterableDataset:
    """The images under `root` streamed as {image, group}: the folder is walked while iterating."""
    root = Path(root).expanduser().resolve()
    _check_image_folder(root)
    return IterableDataset.from_generator(_folder_rows, features=FOLDER_FEATURES, gen_kwargs={"root": str(root)})


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def _pick_split(data, split: str, spec: str):
    if isinstance(data, DatasetDict | IterableDatasetDict):
        if split not in data:
            raise UnlabeledDataError(f"{spec} has no split {split!r} (its splits: {', '.join(data)}); choose one")
        return data[split]
    return data


@functools.lru_cache(maxsize=4)
def _sequence_scene(sequence: int, seed: int, split: str, image_size: int, p_left: float):
    from clip_hand3d.data.synthetic.sequences import SequenceScene

    return SequenceScene(sequence, seed, split, image_size, p_left)


def _synthetic_source(spec: str, value: str, video: bool, image_size: int, seed: int, split: str, p_left: float):
    stream = {"train": "train", "training": "train", "test": "test", "evaluation": "test"}.get(split)
    if stream is None:
        raise UnlabeledDataError(f"{spec}: the synthetic hands have the splits 'train' and 'test', got {split!r}")
    count, _, frames = value.partition("x")
    if not count.isdigit() or int(count) <= 0 or (frames and (not frames.isdigit() or int(frames) <= 0)):
        form = "synthetic-video:N[xF], e.g. synthetic-video:100x16" if video else "synthetic:N, e.g. synthetic:1000"
        raise UnlabeledDataError(f"dataset {spec!r}: expected {form}")
    if frames and not video:
        raise UnlabeledDataError(
            f"dataset {spec!r}: synthetic takes a number of images; for sequences use synthetic-video"
        )
    columns = ["image", "box", "is_left", "joints_uv"] + (["group"] if video else [])
    if not video:
        return _RenderedRows(int(count), _SyntheticImage(seed, image_size, stream, p_left), columns, spec)
    frames_per_sequence = int(frames) if frames else DEFAULT_FRAMES_PER_SEQUENCE
    frame_row = _SyntheticFrame(frames_per_sequence, seed, image_size, stream, p_left)
    return _RenderedRows(int(count) * frames_per_sequence, frame_row, columns, spec)


@dataclass(frozen=True)
class _SyntheticImage:
    """Row `index` of `synthetic:N` (a picklable function, so that worker processes can render it)."""

    seed: int
    image_size: int
    split: str
    p_left: float

    def __call__(self, index: int) -> dict:
        from clip_hand3d.data.synthetic import render_sample

        return render_sample(index, self.seed, self.image_size, self.split, self.p_left)


@dataclass(frozen=True)
class _SyntheticFrame:
    """Row `index` of `synthetic-video:NxF`: frame `index % F` of sequence `index // F`."""

    frames_per_sequence: int
    seed: int
    image_size: int
    split: str
    p_left: float

    def __call__(self, index: int) -> dict:
        sequence, frame = divmod(index, self.frames_per_sequence)
        return _sequence_scene(sequence, self.seed, self.split, self.image_size, self.p_left).render_frame(frame)


def load_unlabeled(
    spec,
    split: str = "train",
    image_column: str = IMAGE_COLUMN,
    box_column: str | None = None,
    is_left_column: str | None = None,
    group_column: str | None = None,
    columns: Sequence[str] = (),
    image_size: int = 224,
    seed: int = 0,
    p_left: float = 0.0,
    cache_dir: str | os.PathLike | None = None,
) -> UnlabeledHands:
    """An unlabeled source by SPEC (see the module doc) or a `datasets` object.

    Args:
        spec: the SPEC string, or a `Dataset` / `IterableDataset` / `DatasetDict`.
        split: the split of a `DatasetDict`, a Hub data set or a stream; for the synthetic sources "train" / "test".
        image_column, box_column, is_left_column, group_column, columns: see `UnlabeledHands`.
        image_size, seed, p_left: of the synthetic sources (image side in pixels, seed, share of left hands).
        cache_dir: the `datasets` cache of an image folder's path table (default: the `datasets` cache).
    """
    options = {
        "image_column": image_column,
        "box_column": box_column,
        "is_left_column": is_left_column,
        "group_column": group_column,
        "columns": columns,
    }
    if not isinstance(spec, str):
        data = _pick_split(spec, split, type(spec).__name__)
        return UnlabeledHands(data, name=type(data).__name__, **options)
    kind, separator, value = spec.partition(":")
    if not separator or kind not in ("folder", "disk", "hub", "stream", "synthetic", "synthetic-video"):
        kind, value = "path", spec
    if kind in ("synthetic", "synthetic-video"):
        data = _synthetic_source(spec, value, kind == "synthetic-video", image_size, seed, split, p_left)
    elif kind == "hub":
        from datasets import load_dataset

        data = load_dataset(value, split=split)
    elif kind == "stream":
        path = Path(value).expanduser()
        if _is_saved_dataset(path):
            data = _pick_split(_load_from_disk(path, spec), split, spec).to_iterable_dataset()
        elif path.is_dir() and not any(path.glob("*.parquet")) and next(iter_image_paths(path), None) is not None:
            data = image_folder_stream(path)
        else:
            from datasets import load_dataset

            data = load_dataset(value, split=split, streaming=True)
    else:
        path = Path(value).expanduser()
        if kind == "disk" or (kind == "path" and _is_saved_dataset(path)):
            data = _pick_split(_load_from_disk(path, spec), split, spec)
        elif path.is_dir() or kind == "folder":
            data = image_folder_dataset(path, cache_dir)
        else:
            raise UnlabeledDataError(
                f"dataset {spec!r}: {path} is no folder; use folder:PATH, disk:PATH, hub:NAME, stream:PATH_OR_NAME, "
                "synthetic:N or synthetic-video:N[xF]"
            )
    return UnlabeledHands(data, name=spec, **options)


def _load_from_disk(path: Path, spec: str):
    from datasets import load_from_disk

    if not _is_saved_dataset(path):
        raise UnlabeledDataError(f"dataset {spec!r}: {path} is not a folder written by save_to_disk")
    return load_from_disk(str(path))
