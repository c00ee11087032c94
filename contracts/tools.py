"""The tools AeroVision runs, each described once: its params, its two files, its result.

The gateway's routes, validation, settings and error messages, the matcher's dispatch, the typed
events and views (``events.py``, ``view.py``) and the API documents all read this registry.
Adding a tool is one ``Tool`` here plus one runner in the matcher; a tool that may be a chain
step (``in_chains``) becomes one automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union

import msgspec
from msgspec import Meta

from contracts.params import FeatureParams, SurfaceParams, TemplateParams
from contracts.results import FeatureResult, NoResult, SurfaceResult, TemplateResult

FileKind = Literal["image", "point_cloud"]
Lane = Literal["fast", "slow"]
IMAGE_FORMATS = "PNG, JPEG, BMP or TIFF"


@dataclass(frozen=True)
class FileSlot:
    """One of a tool's two uploads: its form field and what it must hold."""

    field: str
    kind: FileKind
    description: str


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    params: type[msgspec.Struct]  # defaults and ranges, as the API's tables give them
    files: tuple[FileSlot, FileSlot]
    result: type[msgspec.Struct]  # result_data of a finished task
    found: Callable[[Any], bool]  # what "found something" means, for chains
    # result_data while the task runs and when it fails ({} for most tools; a chain's steps so far).
    progress: type[msgspec.Struct] = NoResult
    # Slow tools (seconds per task) run in their own lane so fast ones never wait behind them.
    lane: Lane = "fast"
    has_settings: bool = True
    in_chains: bool = True


TEMPLATE = Tool(
    name="template",
    summary="Find a template in an image (cv2.matchTemplate, thresholded, non-maximum suppression)",
    params=TemplateParams,
    files=(FileSlot("image", "image", "the image to search"), FileSlot("template", "image", "the template to find")),
    result=TemplateResult,
    found=lambda result: result.filtered_matches > 0,
)

FEATURE = Tool(
    name="feature",
    summary="Match keypoints between two images (SIFT, ORB, AKAZE, BRISK; FLANN or brute force), with a homography",
    params=FeatureParams,
    files=(FileSlot("query_image", "image", "the object to look for"),
           FileSlot("train_image", "image", "the scene to look in")),
    result=FeatureResult,
    found=lambda result: result.good_matches > 0,
)

SURFACE = Tool(
    name="surface",
    summary="Find a 3D model's pose in a scan (point pair features, ICP, verified by overlap)",
    params=SurfaceParams,
    files=(FileSlot("model_file", "point_cloud", "the model (PLY)"),
           FileSlot("scene_file", "point_cloud", "the scene (PLY)")),
    result=SurfaceResult,
    found=lambda result: result.poses_found > 0,
    lane="slow",
)

_STEP_TOOLS = (TEMPLATE, FEATURE, SURFACE)


# --- chains ------------------------------------------------------------------------------------
# A step names its tool in "tool": a tagged union per chainable tool, generated from the registry,
# so a step's params and result are typed and the JSON is the original's ({"tool", "params"}).

StepStatus = Literal["done", "error", "skipped"]


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _generated(name: str, fields: list, **options: Any) -> type[msgspec.Struct]:
    # Registered as module attributes under their own names: pickle (the matcher's worker pipe)
    # finds classes by module and name.
    cls = msgspec.defstruct(name, fields, module=__name__, frozen=True, kw_only=True, **options)
    globals()[name] = cls
    return cls


def _step_spec(tool: Tool) -> type[msgspec.Struct]:
    return _generated(f"{_camel(tool.name)}StepSpec", [("params", tool.params)], tag_field="tool", tag=tool.name)


def _step_record(tool: Tool) -> type[msgspec.Struct]:
    return _generated(
        f"{_camel(tool.name)}Step",
        [
            ("step", Annotated[int, Meta(ge=1)]),
            ("params", tool.params),
            ("status", StepStatus),
            ("found", bool),
            ("result_data", Union[tool.result, None], None),  # done steps only
            ("result_files", list[str]),
            ("error", Union[str, None], None),  # error steps only
        ],
        tag_field="tool", tag=tool.name, omit_defaults=True,
    )


STEP_SPECS: dict[str, type[msgspec.Struct]] = {t.name: _step_spec(t) for t in _STEP_TOOLS if t.in_chains}
STEP_RECORDS: dict[str, type[msgspec.Struct]] = {t.name: _step_record(t) for t in _STEP_TOOLS if t.in_chains}
StepSpec = Union[tuple(STEP_SPECS.values())]  # type: ignore[valid-type]
ChainStep = Union[tuple(STEP_RECORDS.values())]  # type: ignore[valid-type]
MAX_CHAIN_STEPS = 10


class ChainParams(msgspec.Struct, frozen=True, kw_only=True):
    """A chain's steps with their params resolved (completed from each tool's settings)."""

    steps: Annotated[list[StepSpec], Meta(min_length=1, max_length=MAX_CHAIN_STEPS)]  # type: ignore[valid-type]


class ChainProgress(msgspec.Struct, frozen=True, kw_only=True):
    """A chain's result_data while it runs, or when it failed: the steps completed so far."""

    completed_step: int = 0
    total_steps: int = 0
    steps: list[ChainStep] = []  # type: ignore[valid-type]


class ChainResult(msgspec.Struct, frozen=True, kw_only=True):
    chain_result: Literal["found", "not_found"]
    completed_step: Annotated[int, Meta(description="the step that found something, else the last one run")]
    total_steps: int
    steps: list[ChainStep]  # type: ignore[valid-type]


CHAIN = Tool(
    name="chain",
    summary="Run several tools in order on the same two files; stop at the first that finds something",
    params=ChainParams,
    files=(FileSlot("image", "image", "first file (image / query_image / model_file)"),
           FileSlot("template", "image", "second file (template / train_image / scene_file)")),
    result=ChainResult,
    found=lambda result: result.chain_result == "found",
    progress=ChainProgress,
    has_settings=False,
    in_chains=False,
    # Every chain in the slow lane: the consumer that fetches a task is the lane that runs it, so a
    # chain waiting for a surface worker never holds a slot of the fast lane's consumer.
    lane="slow",
)

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (*_STEP_TOOLS, CHAIN)}
SETTINGS_TOOLS: tuple[str, ...] = tuple(name for name, tool in TOOLS.items() if tool.has_settings)


def tag_of(step: msgspec.Struct) -> str:
    """The tool a step spec or record is for (its tag: a class attribute, not a field)."""
    return type(step).__struct_config__.tag  # type: ignore[return-value]


def step_tools(params: ChainParams) -> list[Tool]:
    return [TOOLS[tag_of(step)] for step in params.steps]


def file_kind(tool: Tool, params: msgspec.Struct) -> FileKind | None:
    """What the uploads must be: the tool's kind, or for a chain the kind all its steps share
    (None when they disagree: a chain can't run on images and point clouds at once)."""
    if isinstance(params, ChainParams):
        kinds = {t.files[0].kind for t in step_tools(params)}
        return kinds.pop() if len(kinds) == 1 else None
    return tool.files[0].kind




def result_type(tool: Tool, status: str) -> type[msgspec.Struct]:
    """The type of ``result_data`` for a task of ``tool`` in ``status``."""
    if status == "done":
        return tool.result
    return tool.progress if status in ("processing", "error") else NoResult


def no_result(tool: Tool, status: str) -> msgspec.Struct:
    """``result_data`` of a task of ``tool`` in ``status`` that has nothing to show yet."""
    return result_type(tool, status)()
