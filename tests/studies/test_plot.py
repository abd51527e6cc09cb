"""``plot`` through the real worker: every figure kind, as plotly JSON, PNG and SVG."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from bridge_worker.client import Worker, WorkerError
from bridge_worker.studies.figures import FOR_ONE_OBJECTIVE
from tests.helpers import make_endpoint

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _fill(worker: Worker) -> None:
    worker.create(
        "s",
        sampler={"type": "random", "seed": 1},
        metric_names=["val_loss"],
        search_space={
            "x": {"type": "float", "low": -3, "high": 3},
            "y": {"type": "int", "low": 0, "high": 5},
        },
    )
    for _ in range(12):
        (trial,) = worker.ask("s")
        x, y = float(trial.params["x"]), int(trial.params["y"])  # type: ignore[arg-type]
        for step in range(3):
            worker.call(
                "report",
                {"study": "s", "number": trial.number, "step": step, "value": x * x + step},
            )
        worker.tell("s", trial.number, x * x + y)
    worker.create(
        "m",
        directions=["minimize", "minimize"],
        metric_names=["error", "latency"],
        sampler={"type": "random", "seed": 1},
        search_space={"x": {"type": "float", "low": -3, "high": 3}},
    )
    for _ in range(10):
        (trial,) = worker.ask("m")
        x = float(trial.params["x"])  # type: ignore[arg-type]
        worker.tell("m", trial.number, values=[x * x, (x - 1) ** 2])


@pytest.fixture(scope="module")
def plotting() -> Iterator[Worker]:
    with Worker.spawn() as worker:
        _fill(worker)
        yield worker


@pytest.mark.parametrize("kind", FOR_ONE_OBJECTIVE)
def test_every_kind_as_plotly_carries_data_traces(plotting: Worker, kind: str) -> None:
    figure = plotting.plot("s", kind, "plotly")
    assert isinstance(figure, dict)
    assert figure["data"], kind
    assert all("type" in trace for trace in figure["data"])
    assert figure["layout"]["width"] == 900 and figure["layout"]["height"] == 600


@pytest.mark.parametrize("kind", FOR_ONE_OBJECTIVE)
def test_every_kind_as_png_is_a_png_of_the_asked_size(plotting: Worker, kind: str) -> None:
    image = plotting.plot("s", kind, "png", width=640, height=480)
    assert isinstance(image, bytes)
    assert image[:8] == PNG_SIGNATURE
    assert image[12:16] == b"IHDR"
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (640, 480)
    assert len(image) > 5_000  # a drawn figure, not an empty canvas


@pytest.mark.parametrize("kind", ["optimization_history", "slice", "contour"])
def test_svg(plotting: Worker, kind: str) -> None:
    image = plotting.plot("s", kind, "svg", width=500, height=400)
    assert isinstance(image, bytes)
    assert image.startswith(b"<?xml")
    assert b"<svg" in image and image.rstrip().endswith(b"</svg>")
    assert b'width="360pt" height="288pt"' in image  # 500 x 400 px at 100 dpi
    assert b"<dc:date>" not in image  # reproducible: no timestamp
    assert plotting.plot("s", kind, "svg", width=500, height=400) == image


def test_metric_names_are_axis_titles(plotting: Worker) -> None:
    history = plotting.plot("s", "optimization_history", "plotly")
    assert isinstance(history, dict)
    assert history["layout"]["yaxis"]["title"]["text"] == "val_loss"
    front = plotting.plot("m", "pareto_front", "plotly")
    assert isinstance(front, dict)
    assert front["layout"]["xaxis"]["title"]["text"] == "error"
    assert front["layout"]["yaxis"]["title"]["text"] == "latency"
    latency = plotting.plot("m", "optimization_history", "plotly", objective=1)
    assert isinstance(latency, dict)
    assert latency["layout"]["yaxis"]["title"]["text"] == "latency"


@pytest.mark.parametrize(
    ("kind", "extra"),
    [
        ("pareto_front", {}),
        ("hypervolume_history", {"reference_point": [10.0, 10.0]}),
        ("param_importances", {}),
        ("slice", {"objective": 0}),
    ],
)
def test_multi_objective_figures(plotting: Worker, kind: str, extra: dict[str, Any]) -> None:
    figure = plotting.plot("m", kind, "plotly", **extra)
    assert isinstance(figure, dict) and figure["data"]
    image = plotting.plot("m", kind, "png", **extra)
    assert isinstance(image, bytes) and image[:8] == PNG_SIGNATURE


def test_params_restrict_the_figure(plotting: Worker) -> None:
    figure = plotting.plot("s", "slice", "plotly", params=["y"])
    assert isinstance(figure, dict)
    assert len(figure["data"]) == 1


@pytest.mark.parametrize(
    ("study", "request_", "field"),
    [
        ("s", {"kind": "pareto_front"}, "$.params.kind"),
        ("m", {"kind": "intermediate_values"}, "$.params.kind"),
        ("m", {"kind": "slice"}, "$.params.objective"),
        ("m", {"kind": "slice", "objective": 2}, "$.params.objective"),
        ("m", {"kind": "hypervolume_history"}, "$.params.reference_point"),
        (
            "m",
            {"kind": "hypervolume_history", "reference_point": [1.0, 2.0, 3.0]},
            "$.params.reference_point",
        ),
        ("s", {"kind": "timeline", "params": ["x"]}, "$.params.params"),
        ("s", {"kind": "slice", "params": ["x", "nope"]}, "$.params.params[1]"),
        ("s", {"kind": "edf", "reference_point": [1.0, 2.0]}, "$.params.reference_point"),
        ("s", {"kind": "bar_chart"}, "$.params.kind"),
        ("s", {"kind": "slice", "format": "jpeg"}, "$.params.format"),
        ("s", {"kind": "slice", "width": 50}, "$.params.width"),
        ("s", {"kind": "slice", "height": 5000}, "$.params.height"),
    ],
)
def test_plot_errors_name_the_field(
    plotting: Worker, study: str, request_: dict[str, Any], field: str
) -> None:
    with pytest.raises(WorkerError) as caught:
        plotting.call("plot", {"study": study, "format": "png", **request_})
    assert caught.value.kind == "invalid_params"
    assert caught.value.data["field"] == field


def test_plot_of_a_missing_study(plotting: Worker) -> None:
    with pytest.raises(WorkerError) as caught:
        plotting.plot("nope", "slice")
    assert caught.value.kind == "study_not_found"


def test_plot_limits() -> None:
    with Worker.spawn(args=["--max-plot-trials", "5", "--max-frame-bytes", "30000"]) as worker:
        worker.create("few", search_space={"x": {"type": "float", "low": 0, "high": 1}})
        worker.add_trials("few", [{"params": {"x": i / 10}, "value": i} for i in range(4)])
        with pytest.raises(WorkerError) as too_big:
            worker.plot("few", "parallel_coordinate", "png", width=3000, height=3000)
        assert too_big.value.kind == "limit_exceeded"
        assert too_big.value.data["limit"] == "max_frame_bytes"
        assert isinstance(worker.plot("few", "slice", "png", width=300, height=200), bytes)
        worker.add_trials("few", [{"params": {"x": 0.5}, "value": 1.0}] * 2)
        with pytest.raises(WorkerError) as too_many:
            worker.plot("few", "slice", "png")
        assert too_many.value.kind == "limit_exceeded"
        assert too_many.value.data == {
            "kind": "limit_exceeded",
            "limit": "max_plot_trials",
            "value": 6,
            "max": 5,
        }
        assert worker.ping()


@pytest.mark.parametrize(
    ("fmt", "package"), [("plotly", "plotly"), ("png", "matplotlib"), ("svg", "matplotlib")]
)
def test_without_the_extra_plot_is_missing_dependency(
    monkeypatch: pytest.MonkeyPatch, fmt: str, package: str
) -> None:
    """The handler as the worker runs it, with the package's import made to fail."""
    endpoint = make_endpoint()
    create = {"id": 1, "method": "create", "params": {"study": "s"}}
    endpoint.handle(orjson.dumps(create))
    monkeypatch.setitem(sys.modules, package, None)  # `import plotly` raises ImportError
    request = {
        "id": 2,
        "method": "plot",
        "params": {"study": "s", "kind": "optimization_history", "format": fmt},
    }
    (reply,) = endpoint.handle(orjson.dumps(request))
    error = orjson.loads(reply)["error"]
    assert error["code"] == -32010
    assert error["data"] == {"kind": "missing_dependency", "package": package, "extra": "plots"}
    assert "pip install 'optuna-bridge[plots]'" in error["message"]
