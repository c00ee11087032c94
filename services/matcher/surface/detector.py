"""Training OpenCV's PPF detector on a checked model, after checking what it will cost."""

from __future__ import annotations

import hashlib

import cv2
import msgspec
import numpy as np

from contracts.params import SurfaceParams
from services.matcher.errors import InputError
from services.matcher.surface.clouds import Cloud
from services.matcher.surface.geometry import rotate, transform
from services.matcher.surface.ppf_cost import PpfCost, ppf_cost

# Measured: a trained detector holds ~72 bytes per stored point pair (hash nodes, features,
# buckets); 80 is the estimate the limits and the cache use.
BYTES_PER_PAIR = 80
# One detector at most this large (the model's sampled points squared × 80 B): 400 MiB is the
# sample model at relative_sampling_step 0.025 with room to spare; 0.01 (3,079 points) is refused.
MAX_TRAINING_BYTES = 400 * 2**20
# Hash-chain nodes walked while training: ~10–100 ns each, so 1e9 is one to two minutes at worst.
MAX_TRAINING_STEPS = 1e9

# A fixed, generic rotation applied to both clouds before OpenCV sees them: OpenCV divides by each
# axis' extent when it samples, and a cloud flat along an axis (a plate, a synthetic plane) would
# make that 0/0 and crash the process. Rotated this way no real surface is flat along an axis.
GENERIC_TURN = cv2.Rodrigues(np.array([0.5377, -0.4143, 0.7349]))[0]


class Trained(msgspec.Struct, frozen=True):
    """A detector trained on the model as seen in its OpenCV frame (``frame``: model → that frame)."""

    detector: object  # cv2.ppf_match_3d.PPF3DDetector
    frame: np.ndarray
    cost: PpfCost
    bytes: int


def opencv_frame(xyz: np.ndarray) -> np.ndarray:
    """The pose taking a cloud to where OpenCV gets it: centred at the origin, then turned generically."""
    frame = np.eye(4)
    frame[:3, :3] = GENERIC_TURN
    frame[:3, 3] = -GENERIC_TURN @ xyz.mean(axis=0)
    return frame


def as_opencv(xyz: np.ndarray, normals: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """An N×6 float32 cloud (points and normals moved by ``frame``) as OpenCV's PPF and ICP take it."""
    moved = np.hstack([transform(frame, xyz), rotate(frame, normals)])
    return np.ascontiguousarray(moved, dtype=np.float32)


def model_key(model: Cloud, params: SurfaceParams) -> str:
    """The cache key: the model's content (points and normals, whatever file format brought them)
    and the three training parameters."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(model.xyz, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(model.normals, dtype="<f8").tobytes())
    digest.update(repr((params.relative_sampling_step, params.relative_distance_step, params.num_angles)).encode())
    return digest.hexdigest()


def check_training_cost(model: Cloud, params: SurfaceParams) -> tuple[np.ndarray, PpfCost]:
    """The model's OpenCV frame and its training cost; InputError when it is beyond the limits."""
    frame = opencv_frame(model.xyz)
    cost = ppf_cost(transform(frame, model.xyz), rotate(frame, model.normals), params.relative_sampling_step, params.num_angles)
    step = params.relative_sampling_step
    size = cost.samples**2 * BYTES_PER_PAIR
    if size > MAX_TRAINING_BYTES:
        raise InputError(
            f"the model sampled at relative_sampling_step={step} keeps {cost.samples:,} points; training would need "
            f"~{size / 2**20:,.0f} MB (at most {MAX_TRAINING_BYTES // 2**20} MB): use a larger relative_sampling_step"
        )
    if cost.chain_steps > MAX_TRAINING_STEPS:
        raise InputError(
            "the model's point-pair features repeat too much for PPF (a flat, spherical or cylindrical shape?): "
            f"training at relative_sampling_step={step} would take minutes to hours "
            f"({cost.chain_steps:.2g} hash steps, at most {MAX_TRAINING_STEPS:.0g}); a larger relative_sampling_step reduces it"
        )
    return frame, cost


def train(model: Cloud, params: SurfaceParams) -> Trained:
    """Train ``PPF3DDetector(relative_sampling_step, relative_distance_step, num_angles)`` on the model."""
    frame, cost = check_training_cost(model, params)
    detector = cv2.ppf_match_3d_PPF3DDetector(params.relative_sampling_step, params.relative_distance_step, params.num_angles)
    detector.trainModel(as_opencv(model.xyz, model.normals, frame))
    return Trained(detector=detector, frame=frame, cost=cost, bytes=cost.samples**2 * BYTES_PER_PAIR)
