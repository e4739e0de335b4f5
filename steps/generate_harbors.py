"""Step ``generate-harbors``: synthesise a ship-image dataset in the seed's file format.

The seed example trains on a downloaded photo dataset. This step draws one instead, so the project
runs anywhere without network: for every harbor, ``images_per_class`` labelled ships of each of the 5
categories plus ``test_images_per_harbor`` unlabelled ones.

Outputs (the seed's format, so the real dataset can be swapped in without code changes):

- ``images.zip``: every image, flat, ``<harbor>_<5 digits>.jpg``. Numbers are shuffled, so a name
  tells neither the category nor whether the image is labelled.
- ``train_<harbor>.csv``: ``image,category`` for the labelled images (categories 1-5).
- ``test_labels_<harbor>.csv``: the answers for that harbor's unlabelled images, same columns; only
  ``predict-models`` reads them (to score predictions), never training.

What a harbor looks like (water and sky colour, light level and direction, sensor noise, wave
strength) is derived from its name, so ``harbor_A`` always looks like ``harbor_A``. Ship position,
scale, direction and colours are random per image. Everything is deterministic for a given
``seed``: the same parameters give byte-identical files (zip timestamps are fixed).
"""

from __future__ import annotations

import io
import os
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np
import valohai
from common import (
    CATEGORIES,
    StepError,
    as_int,
    as_list,
    check_harbor_name,
    output_path,
    parameter,
    print_metadata,
    run_step,
    yaml_defaults,
)
from PIL import Image, ImageDraw

DEFAULTS = yaml_defaults("generate-harbors")
SUPERSAMPLE = 2  # ships are drawn at twice the size and shrunk: smooth edges even at 32 px
TALL = 1.5  # silhouettes are drawn taller than life: details stay visible at 32-64 px
CHUNK = 64  # images rendered per NumPy batch (bounds memory for large sets)
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed timestamps make images.zip byte-identical across runs


@dataclass(frozen=True)
class HarborStyle:
    """The look of one harbor, derived from its name."""

    sky: np.ndarray  # RGB at the horizon
    water: np.ndarray  # RGB just below the horizon
    light: float  # overall brightness factor
    light_slope: float  # brightness change from left to right edge
    tint: np.ndarray  # RGB offset (warm/cold light)
    noise: float  # sensor noise sigma, in 0-255 units
    waves: float  # wave contrast

    @classmethod
    def for_harbor(cls, harbor: str) -> HarborStyle:
        rng = np.random.default_rng(zlib.crc32(harbor.encode()))
        warm = rng.uniform(-18, 18)
        return cls(
            sky=rng.uniform([120, 140, 165], [235, 235, 250]),
            water=rng.uniform([10, 35, 55], [80, 135, 160]),
            light=float(rng.uniform(0.8, 1.15)),
            light_slope=float(rng.uniform(-0.35, 0.35)),
            tint=np.array([warm, 0.0, -warm]),
            noise=float(rng.uniform(3, 11)),
            waves=float(rng.uniform(8, 26)),
        )


# --- ship silhouettes -----------------------------------------------------------------------------
# Shapes are in ship coordinates: u from stern (0) to bow (1) along the length, v upwards from the
# waterline in units of the length. ``Ship`` maps them to pixels, mirrored when the ship faces left.


class Ship:
    def __init__(self, draw: ImageDraw.ImageDraw, x_center: float, waterline: float, length: float, flip: bool):
        self.draw, self.x0, self.wl, self.length, self.flip = draw, x_center, waterline, length, flip

    def xy(self, u: float, v: float) -> tuple[float, float]:
        u = 1.0 - u if self.flip else u
        return self.x0 + (u - 0.5) * self.length, self.wl - v * self.length * TALL

    def poly(self, points: list[tuple[float, float]], fill: tuple[int, ...]) -> None:
        self.draw.polygon([self.xy(u, v) for u, v in points], fill=fill)

    def rect(self, u0: float, v0: float, u1: float, v1: float, fill: tuple[int, ...]) -> None:
        self.poly([(u0, v0), (u1, v0), (u1, v1), (u0, v1)], fill)

    def ellipse(self, u: float, v: float, ru: float, rv: float, fill: tuple[int, ...]) -> None:
        (xa, ya), (xb, yb) = self.xy(u - ru, v + rv), self.xy(u + ru, v - rv)
        self.draw.ellipse([min(xa, xb), ya, max(xa, xb), yb], fill=fill)


def _shade(rgb, factor: float) -> tuple[int, int, int]:
    r, g, b = (int(max(0, min(255, c * factor))) for c in rgb)
    return r, g, b


CONTAINER_COLOURS = [(200, 40, 35), (35, 80, 170), (40, 140, 60), (230, 130, 20), (225, 200, 40), (120, 120, 125)]


def draw_cargo(s: Ship, rng: np.random.Generator, k: float) -> None:
    hull = [(70, 35, 30), (25, 35, 70), (30, 30, 35)][rng.integers(3)]
    s.poly([(0.0, 0.09), (1.0, 0.09), (0.95, 0.0), (0.04, 0.0)], _shade(hull, k))
    u = 0.22
    while u < 0.88:  # stacks of containers, 2-4 high: a jagged, colourful deck line
        for tier in range(int(rng.integers(2, 5))):
            colour = CONTAINER_COLOURS[rng.integers(len(CONTAINER_COLOURS))]
            s.rect(u, 0.09 + tier * 0.04, u + 0.052, 0.126 + tier * 0.04, _shade(colour, k))
        u += 0.058
    s.rect(0.04, 0.09, 0.15, 0.27, _shade((235, 235, 230), k))  # bridge at the stern
    s.rect(0.05, 0.23, 0.14, 0.25, (30, 35, 45))
    s.rect(0.06, 0.27, 0.10, 0.32, _shade((200, 60, 40), k))


def draw_military(s: Ship, rng: np.random.Generator, k: float) -> None:
    grey = int(rng.integers(120, 160))  # light haze grey; carriers are dark
    hull, top = _shade((grey, grey + 5, grey + 12), k), _shade((grey + 20, grey + 25, grey + 32), k)
    s.poly([(0.0, 0.075), (1.0, 0.095), (0.86, 0.0), (0.03, 0.0)], hull)  # long sharp bow with sheer
    s.rect(0.30, 0.075, 0.62, 0.15, top)  # stepped superstructure
    s.rect(0.36, 0.15, 0.55, 0.21, top)
    s.poly([(0.41, 0.21), (0.50, 0.21), (0.455, 0.40)], top)  # tall pyramid mast amidships
    s.rect(0.73, 0.075, 0.79, 0.112, top)  # forward gun turret and barrel
    s.rect(0.79, 0.093, 0.91, 0.101, top)
    s.rect(0.14, 0.075, 0.20, 0.105, top)  # aft turret


def draw_carrier(s: Ship, rng: np.random.Generator, k: float) -> None:
    grey = int(rng.integers(45, 75))
    hull = _shade((grey, grey + 4, grey + 8), k)
    s.poly([(0.08, 0.06), (0.92, 0.06), (0.86, 0.0), (0.12, 0.0)], hull)  # short hull under a long deck
    s.poly([(-0.04, 0.06), (1.05, 0.06), (1.03, 0.115), (-0.04, 0.115)], hull)  # thick overhanging flight deck
    s.rect(-0.04, 0.105, 1.04, 0.115, _shade((225, 225, 215), k))  # deck edge markings
    for i in range(int(rng.integers(4, 7))):  # parked aircraft along the deck
        u = 0.02 + 0.095 * i
        s.poly([(u, 0.115), (u + 0.06, 0.115), (u + 0.045, 0.135), (u + 0.015, 0.135)], _shade((175, 175, 170), k))
    s.rect(0.76, 0.115, 0.88, 0.2, _shade((grey + 25, grey + 25, grey + 30), k))  # boxy island near the bow
    s.rect(0.80, 0.2, 0.84, 0.26, hull)


def draw_cruise(s: Ship, rng: np.random.Generator, k: float) -> None:
    white = _shade((245, 245, 240), k * rng.uniform(0.9, 1.0))
    s.poly([(0.0, 0.11), (1.0, 0.11), (0.93, 0.0), (0.05, 0.0)], white)
    s.poly([(0.035, 0.03), (0.97, 0.03), (0.93, 0.0), (0.05, 0.0)], _shade((20, 40, 110), k))  # hull stripe
    decks = [(0.08, 0.11, 0.90, 0.17), (0.12, 0.17, 0.85, 0.22), (0.18, 0.22, 0.78, 0.265)]
    for u0, v0, u1, v1 in decks:  # tiers of decks with rows of windows
        s.rect(u0, v0, u1, v1, white)
        u = u0 + 0.015
        while u < u1 - 0.03:
            s.rect(u, v0 + 0.02, u + 0.018, v0 + 0.034, (40, 60, 90))
            u += 0.03
    s.poly([(0.30, 0.265), (0.39, 0.265), (0.375, 0.34), (0.315, 0.34)], _shade((200, 40, 40), k))  # funnel
    s.rect(0.315, 0.325, 0.375, 0.34, (25, 25, 25))


def draw_tanker(s: Ship, rng: np.random.Generator, k: float) -> None:
    s.poly([(0.0, 0.065), (1.0, 0.065), (0.96, 0.0), (0.03, 0.0)], _shade((35, 35, 38), k))
    s.poly([(0.022, 0.022), (0.975, 0.022), (0.96, 0.0), (0.03, 0.0)], _shade((150, 40, 35), k))  # red below
    for i in range(4):  # low cargo-tank domes along the deck
        s.ellipse(0.28 + 0.165 * i, 0.065, 0.07, 0.045, _shade((225, 225, 215), k))
    s.rect(0.18, 0.065, 0.94, 0.074, _shade((110, 110, 110), k))  # deck pipeline
    s.rect(0.03, 0.065, 0.12, 0.22, _shade((235, 235, 230), k))  # accommodation block at the stern
    s.rect(0.05, 0.22, 0.09, 0.29, _shade((40, 40, 40), k))


DRAWERS = {1: draw_cargo, 2: draw_military, 3: draw_carrier, 4: draw_cruise, 5: draw_tanker}
assert set(DRAWERS) == set(CATEGORIES)


# --- rendering ------------------------------------------------------------------------------------


def render_backgrounds(
    style: HarborStyle, rng: np.random.Generator, n: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sky gradient, horizon and wavy water for ``n`` images at once: ``(n, size, size, 3)`` uint8 and horizons."""
    y = np.arange(size, dtype=np.float32)[None, :, None]
    x = np.arange(size, dtype=np.float32)[None, None, :]
    horizon = rng.uniform(0.32, 0.5, n).astype(np.float32) * size
    hz = horizon[:, None, None]
    depth = np.clip((y - hz) / size, 0, 1)  # 0 at the horizon, grows downwards
    height = np.clip((hz - y) / size, 0, 1)  # 0 at the horizon, grows upwards
    freq = (rng.uniform(0.25, 0.6, (n, 1, 1)) * 8 * np.pi / size).astype(np.float32)
    phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
    waves = np.sin(y * freq * (1 + 3 * depth) + x * freq * 0.15 + phase) * np.float32(style.waves) * (0.3 + depth)
    sky = style.sky.astype(np.float32) * (1.0 - 0.45 * height[..., None])
    water = style.water.astype(np.float32) * (1.0 - 0.35 * depth[..., None]) + waves[..., None]
    image = np.where((y < hz)[..., None], sky, water)
    return np.clip(image, 0, 255).astype(np.uint8), horizon


def render_chunk(style: HarborStyle, categories: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``len(categories)`` ships on harbor backgrounds; returns ``(n, size, size, 3)`` uint8."""
    n, big = len(categories), size * SUPERSAMPLE
    backgrounds, horizons = render_backgrounds(style, rng, n, size)  # at final size: it is smooth anyway
    backgrounds = backgrounds.repeat(SUPERSAMPLE, axis=1).repeat(SUPERSAMPLE, axis=2)
    horizons = horizons * SUPERSAMPLE
    lengths = rng.uniform(0.62, 0.95, n) * big
    flips = rng.random(n) < 0.5
    tone = rng.uniform(0.85, 1.1, n)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        img = Image.fromarray(backgrounds[i])
        half = lengths[i] / 2
        x_center = rng.uniform(half - 0.08 * big, big - half + 0.08 * big)
        waterline = horizons[i] + rng.uniform(0.15, 0.55) * (big - horizons[i])
        DRAWERS[int(categories[i])](
            Ship(ImageDraw.Draw(img), x_center, waterline, lengths[i], bool(flips[i])), rng, tone[i]
        )
        out[i] = np.asarray(img.reduce(SUPERSAMPLE), dtype=np.float32)
    # Harbor lighting (level, left-right slope, tint) and sensor noise, for the whole chunk at once.
    ramp = 1.0 + style.light_slope * (np.arange(size, dtype=np.float32) / size - 0.5)
    level = style.light * rng.uniform(0.88, 1.12, (n, 1, 1, 1)).astype(np.float32)
    out = out * level * ramp[None, None, :, None] + style.tint.astype(np.float32)
    out += rng.standard_normal(out.shape, dtype=np.float32) * np.float32(style.noise)
    return np.clip(out, 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def generate_harbor(
    harbor: str, size: int, per_class: int, n_test: int, seed: int
) -> tuple[dict[str, bytes], dict[str, int], dict[str, int]]:
    """Images, training labels and test answers for one harbor. Independent of the other harbors listed."""
    rng = np.random.default_rng([seed, zlib.crc32(harbor.encode())])
    style = HarborStyle.for_harbor(harbor)
    labelled = np.repeat(np.array(sorted(CATEGORIES)), per_class)
    unlabelled = rng.integers(1, len(CATEGORIES) + 1, n_test)
    categories = np.concatenate([labelled, unlabelled])
    numbers = rng.permutation(len(categories)) + 10000  # shuffled: names reveal nothing
    names = [f"{harbor}_{number:05d}.jpg" for number in numbers]
    files: dict[str, bytes] = {}
    for start in range(0, len(categories), CHUNK):
        pixels = render_chunk(style, categories[start : start + CHUNK], size, rng)
        for offset, image in enumerate(pixels):
            files[names[start + offset]] = encode_jpeg(image)
    train = {names[i]: int(categories[i]) for i in range(len(labelled))}
    test = {names[i]: int(categories[i]) for i in range(len(labelled), len(categories))}
    return files, train, test


def write_labels(path: str, labels: dict[str, int]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        fh.write("image,category\n")
        fh.writelines(f"{name},{labels[name]}\n" for name in sorted(labels))


def write_zip(path: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:  # JPEGs do not compress
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[name])


def read_parameters() -> tuple[list[str], int, int, int, int]:
    harbors = as_list(parameter("harbors", DEFAULTS["harbors"]))
    if not harbors:
        raise StepError("parameter harbors is empty: pass --harbors=harbor_A,harbor_B")
    for harbor in harbors:
        check_harbor_name(harbor, "harbors")
    if len(set(harbors)) != len(harbors):
        raise StepError(f"parameter harbors lists a harbor twice ({','.join(harbors)}): list each harbor once")
    size = as_int("image_size", parameter("image_size", DEFAULTS["image_size"]), 16)
    per_class = as_int("images_per_class", parameter("images_per_class", DEFAULTS["images_per_class"]), 2)
    n_test = as_int(
        "test_images_per_harbor", parameter("test_images_per_harbor", DEFAULTS["test_images_per_harbor"]), 1
    )
    seed = as_int("seed", parameter("seed", DEFAULTS["seed"]), 0)
    return harbors, size, per_class, n_test, seed


def main() -> None:
    valohai.prepare(step="generate-harbors", default_parameters=DEFAULTS)
    harbors, size, per_class, n_test, seed = read_parameters()
    started = time.perf_counter()
    all_files: dict[str, bytes] = {}
    for harbor in harbors:
        files, train, test = generate_harbor(harbor, size, per_class, n_test, seed)
        all_files.update(files)
        write_labels(output_path(f"train_{harbor}.csv"), train)
        write_labels(output_path(f"test_labels_{harbor}.csv"), test)
        print(f"{harbor}: {len(train)} labelled + {len(test)} test images, {size}x{size}")
    write_zip(output_path("images.zip"), all_files)
    seconds = time.perf_counter() - started
    print(f"wrote images.zip ({len(all_files)} images) in {seconds:.2f} s")
    print_metadata(generated_images=len(all_files), harbors=len(harbors), generate_seconds=round(seconds, 3))


if __name__ == "__main__":
    run_step(main)
