"""Every figure kind, rendered on small synthetic data: labels with their units, categorical axes
named by category, confusion matrices with every class and a colour bar, legends that hide no data,
files that are not empty; and the comparison report's text (percentages, units on numbers)."""

import re
from types import SimpleNamespace

import numpy as np
import pytest

from biosim.files import atomic_savefig
from biosim.reports import comparison
from biosim.reports.figures import RATE_SMOOTH_MS, raster_figure, rate_figure, smoothed_rate
from biosim.reports.learn_figures import confusion_figure, hidden_raster_figure, learning_curves_figure
from biosim.reports.stdp_figures import receptive_fields_figure, threshold_figure
from biosim.reports.sweep_figures import heatmap_figure, trend_figure

UNIT = re.compile(r"\([^)]*\)")  # a unit in parentheses: "(ms)", "(Hz)", "(%)", "(count)"


def _main_axes(fig):
    """The figure's axes without its colour bars."""
    bars = {id(im.colorbar.ax) for ax in fig.axes for im in ax.images if im.colorbar is not None}
    return [ax for ax in fig.axes if id(ax) not in bars]


def _colorbars(fig):
    return [im.colorbar for ax in fig.axes for im in ax.images if im.colorbar is not None]


def _labelled(ax, x=True, y=True):
    if x:
        assert ax.get_xlabel().strip() and UNIT.search(ax.get_xlabel()), f"x label {ax.get_xlabel()!r}"
    if y:
        assert ax.get_ylabel().strip() and UNIT.search(ax.get_ylabel()), f"y label {ax.get_ylabel()!r}"


def _ticks(axis):
    return [t.get_text() for t in axis.get_ticklabels()]


def _saved(fig, path):
    atomic_savefig(fig, path)
    assert path.stat().st_size > 1000
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"


def _legends_clear_of_data(fig):
    """Every legend lies outside its axes' data area (so it hides nothing)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        legend = ax.get_legend()
        if legend is None:
            continue
        box, area = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
        assert box.y1 <= area.y0 + 1 or box.y0 >= area.y1 - 1 or box.x0 >= area.x1 - 1 or box.x1 <= area.x0 + 1, \
            "a legend lies over the data"


# ------------------------------------------------------------------------------------------------
# simulation runs


def _result(duration_ms=200.0):
    rng = np.random.default_rng(0)
    spikes = {}
    for name, n, rate in (("exc", 800, 5.0), ("inh", 200, 20.0)):
        count = rng.poisson(rate * n * duration_ms * 1e-3)
        spikes[name] = (np.sort(rng.uniform(0, duration_ms, count)), rng.integers(0, n, count))
    return SimpleNamespace(spikes=spikes, sizes={"exc": 800, "inh": 200}, duration_ms=duration_ms)


def test_smoothed_rate_keeps_the_mean_and_a_flat_rate_flat_to_the_edges():
    t = np.arange(0.0, 1000.0, 0.25)  # one neuron firing at 4 kHz, perfectly regular
    centres, rate = smoothed_rate(t, 1, 1000.0, bin_ms=0.5, sigma_ms=2.0)
    assert centres[0] == pytest.approx(0.25) and len(rate) == 2000
    assert np.allclose(rate, 4000.0)  # no dip at the start or the end
    rng = np.random.default_rng(1)
    t = rng.uniform(0, 500, 5000)
    _, rate = smoothed_rate(t, 10, 500.0)
    assert rate.mean() == pytest.approx(1000.0, rel=0.02)
    _, raw = smoothed_rate(t, 10, 500.0, sigma_ms=0)
    assert rate.std() < raw.std()  # smoothed


def test_raster_shares_its_time_axis_with_each_populations_smoothed_rate(tmp_path):
    result = _result()
    fig = raster_figure(result, "cuba (numba-cpu, seed 0)")
    raster, *rates = fig.axes
    assert len(rates) == 2  # one rate panel per population: neither hides the other
    for ax in rates:
        assert raster.get_shared_x_axes().joined(raster, ax)
        assert "(Hz)" in ax.get_ylabel() and f"σ = {RATE_SMOOTH_MS:g} ms" in ax.get_ylabel()
        assert len(ax.get_lines()) == 1
    assert rates[0].get_lines()[0].get_color() != rates[1].get_lines()[0].get_color()
    assert [t.split("\n")[0] for t in _ticks(raster.yaxis)] == ["exc", "inh"]  # the blocks are named
    assert "(" in raster.get_ylabel()
    assert rates[-1].get_xlabel() == "time (ms)"
    assert rates[-1].get_xlim() == (0.0, 200.0)
    assert raster.get_legend() is None
    _saved(fig, tmp_path / "raster.png")


def test_rate_figure_one_panel_per_population_with_the_window_stated(tmp_path):
    fig = rate_figure(_result(), "brunel")
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_shared_x_axes().joined(axes[0], axes[1])
    for ax, name in zip(axes, ("exc", "inh")):
        assert "(Hz)" in ax.get_ylabel() and name in ax.get_title(loc="left")
        assert ax.get_ylim()[1] >= ax.get_lines()[0].get_ydata().max()  # the whole curve is inside
    assert f"Gaussian kernel σ = {RATE_SMOOTH_MS:g} ms" in fig.get_suptitle()
    _labelled(axes[-1], y=True)
    _saved(fig, tmp_path / "rate.png")


# ------------------------------------------------------------------------------------------------
# training runs


def _history(epochs=4):
    return {"epoch": list(range(1, epochs + 1)), "train_loss": [1.4, 0.9, 0.7, 0.6][:epochs],
            "val_loss": [1.2, 0.8, 0.75, 0.74][:epochs], "train_accuracy": [0.55, 0.80, 0.86, 0.9][:epochs],
            "val_accuracy": [0.86, 0.92, 0.925, 0.93][:epochs], "test_accuracy": [0.84, 0.91, 0.92, 0.93][:epochs]}


def test_learning_curves_show_training_and_validation_on_axes_holding_every_point(tmp_path):
    fig = learning_curves_figure(_history(), "lif_mnist on mnist5k (seed 0)", best_epoch=4)
    ax_loss, ax_acc = fig.axes
    labels = [line.get_label() for line in ax_loss.get_lines()]
    assert any("training" in x for x in labels) and any("validation" in x for x in labels)
    assert len([x for x in (line.get_label() for line in ax_acc.get_lines()) if not x.startswith("best")]) == 3
    lo, hi = ax_acc.get_ylim()
    for line in ax_acc.get_lines():
        y = np.asarray(line.get_ydata(), dtype=float)
        if y.size > 2:  # a curve, not the best-epoch marker
            assert lo <= y.min() and y.max() <= hi  # 55 % training accuracy is on the axes
    for ax in (ax_loss, ax_acc):
        _labelled(ax)
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks), ticks  # no epoch 1.5
    _legends_clear_of_data(fig)
    _saved(fig, tmp_path / "learning_curves.png")


def test_learning_curves_of_a_run_without_validation_loss_and_of_one_epoch(tmp_path):
    history = _history(1)
    del history["val_loss"]
    fig = learning_curves_figure(history, "one epoch")
    assert len(fig.axes[0].get_lines()) == 1
    _saved(fig, tmp_path / "one.png")


def test_confusion_matrix_names_every_class_and_has_a_colour_bar(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.integers(0, 30, (10, 10)) + np.diag(np.full(10, 90))
    fig = confusion_figure(matrix, "lif_mnist\ntest accuracy 92.80 %")
    (ax,) = _main_axes(fig)
    assert _ticks(ax.xaxis) == [str(c) for c in range(10)] == _ticks(ax.yaxis)
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
    (bar,) = _colorbars(fig)
    assert "count" in bar.ax.get_ylabel()
    names = [f"class {c}" for c in "ABC"]
    fig = confusion_figure(matrix[:3, :3], "named", class_names=names)
    assert _ticks(_main_axes(fig)[0].xaxis) == names
    _saved(fig, tmp_path / "confusion.png")


def test_hidden_raster_keeps_the_callers_title_and_labels_time(tmp_path):
    spikes = (np.random.default_rng(0).random((8, 40)) < 0.2).astype(np.uint8)
    title = "last hidden layer, test sample #0 (true class 2, predicted class 2)"
    fig = hidden_raster_figure(np.zeros((28, 28)), spikes, 1.0, title)
    assert fig._suptitle.get_text() == title
    ax = fig.axes[1]
    assert ax.get_xlabel() == "time (ms)" and ax.get_ylabel()
    assert [float(t) for t in ax.get_xticks()] == [float(t) for t in range(8)]  # a tick per time step
    _saved(fig, tmp_path / "raster.png")
    fig = hidden_raster_figure(np.linspace(0, 1, 40), spikes, 1.0, "a 1-D input")  # MNIST-1D: a curve
    assert len(fig.axes[0].get_lines()) == 1 and "(a.u.)" in fig.axes[0].get_ylabel()
    _saved(fig, tmp_path / "raster_1d.png")


# ------------------------------------------------------------------------------------------------
# STDP runs and sweeps


def test_stdp_figures_have_units(tmp_path):
    w = np.random.default_rng(0).random((10, 64))
    fig = receptive_fields_figure(w, (8, 8), "stdp_mnist")
    (bar,) = _colorbars(fig)
    assert "weight" in bar.ax.get_ylabel() and "dimensionless" in bar.ax.get_ylabel()
    _saved(fig, tmp_path / "rf.png")
    fig = threshold_figure(np.linspace(20, 30, 10), "stdp_mnist")
    _labelled(fig.axes[0])
    assert "(mV)" in fig.axes[0].get_xlabel()
    _saved(fig, tmp_path / "theta.png")


def _summary(grid):
    out = []
    for k, values in enumerate(grid):
        m = 0.8 + 0.01 * k
        out.append({"values": values, "n_ok": 2,
                    "metrics": {"test_accuracy": {"mean": m, "std": 0.01, "min": m - 0.01, "max": m + 0.01, "n": 2},
                                "mean_rate_hz": {"mean": 5.0 + k, "std": 0.5, "min": 4.5 + k, "max": 5.5 + k,
                                                 "n": 2}}})
    return out


def test_sweep_trend_and_heat_map_label_units_and_categories(tmp_path):
    summary = _summary([{"we_mv": 1.2}, {"we_mv": 1.6}, {"we_mv": 2.0}])
    fig = trend_figure(summary, "we_mv", "test_accuracy", "lif", 2)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "we (mV)" and ax.get_ylabel() == "test accuracy (%)"
    assert _ticks(ax.xaxis) == ["1.2", "1.6", "2"]  # a tick at each value run
    (errorbar,) = ax.containers
    assert errorbar.get_label() == "mean ± std"
    assert np.allclose(np.asarray(errorbar.lines[0].get_ydata(), float), [80.0, 81.0, 82.0])  # %, not fractions
    _legends_clear_of_data(fig)
    _saved(fig, tmp_path / "trend.png")

    summary = _summary([{"panel": p, "g": g} for p in ("A", "B", "C") for g in (3, 5)])
    fig = heatmap_figure(summary, "panel", "g", "mean_rate_hz", "brunel", 2)
    (ax,) = _main_axes(fig)
    assert _ticks(ax.xaxis) == ["A", "B", "C"] and _ticks(ax.yaxis) == ["3", "5"]
    (bar,) = _colorbars(fig)
    assert "(Hz)" in bar.ax.get_ylabel()
    fig = trend_figure(summary, "panel", "mean_rate_hz", "brunel", 2, others=["g"])
    assert _ticks(fig.axes[0].xaxis) == ["A", "B", "C"]  # categories by name, not 0.5 steps
    _saved(fig, tmp_path / "heatmap.png")


# ------------------------------------------------------------------------------------------------
# the comparison report


def _comparison_data():
    def row(seed, acc, kind):
        snn = kind == "snn"
        return {"seed": seed, "run_dir": f"runs/x/{seed}", "reused": False, "test_accuracy": acc,
                "best_test_accuracy_seen": acc + 0.005, "val_accuracy": acc + 0.01, "train_seconds": 2.5 + seed,
                "latency_ms_per_sample": 0.5, "n_params": 19210, "footprint_bytes": 76840,
                "connection_sparsity": 0.0, "activation_sparsity": 0.65, "spikes_per_sample": 700.0 + seed,
                "synops_effective_acs": 7000.0 if snn else 0.0, "synops_effective_macs": 66871.0,
                "synops_dense": 151552.0, "energy_estimate_uJ": 0.31 if snn else 0.047,
                "spikes_per_layer": [600.0 + seed, 100.0] if snn else [195.0 + seed]}

    per = {"lif": [row(0, 0.86, "snn"), row(1, 0.90, "snn")], "mlp": [row(0, 0.90, "mlp"), row(1, 0.89, "mlp")]}
    summary = {}
    for name, rows in per.items():
        summary[name] = {}
        for key in comparison.SUMMARY_KEYS:
            v = np.array([r[key] for r in rows], float)
            summary[name][key] = {"mean": float(v.mean()), "std": float(v.std(ddof=1)), "min": float(v.min()),
                                  "max": float(v.max()), "n": len(v)}
    agreement = {"lif": [{"same_class_fraction": 1.0, "identical_spike_counts_fraction": 0.9972144846796658,
                          "n_samples": 359, "engine_accuracy": 0.8161559888579387, "torch_accuracy": 0.8161559888579387,
                          "mean_abs_spike_count_diff": 0.002785515320334262, "dt": 0.001, "dtype": "float32",
                          "engine_setup_s": 0.025078976000031616, "engine_s": 0.23557621700001619}, None]}
    data = {"models": ["lif", "mlp"], "seeds": [0, 1], "sets": [], "kinds": {"lif": "snn", "mlp": "mlp"},
            "descriptions": {"lif": "a spiking net", "mlp": "its ANN twin"}, "notes": {}, "per_seed": per,
            "summary": summary, "engine_agreement": agreement}
    rng = np.random.default_rng(0)
    confusion = {name: [(rng.integers(0, 5, (10, 10)) + np.diag(np.full(10, 60))).tolist() for _ in range(2)]
                 for name in data["models"]}
    return data, confusion


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report of :func:`_comparison_data`, written once: (folder, {plot name: its Figure})."""
    out = tmp_path_factory.mktemp("report")
    drawn = []
    render = comparison._png

    def keep(fig):
        drawn.append(fig)
        return render(fig)

    data, confusion = _comparison_data()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(comparison, "_png", keep)
        comparison.write_reports(out, data, confusion)
    names = ["accuracy_vs_time", "accuracy_vs_synops", "accuracy_vs_energy", "spikes_per_layer", "confusion"]
    assert len(drawn) == len(names)
    return out, dict(zip(names, drawn))


def test_comparison_figures_name_categories_units_and_every_class(report):
    out, by_name = report
    for name in by_name:
        with open(out / f"{name}.png", "rb") as fh:
            png = fh.read()
        assert png.startswith(b"\x89PNG") and len(png) > 1000
    for key in ("accuracy_vs_time", "accuracy_vs_synops", "accuracy_vs_energy"):
        (ax,) = by_name[key].axes
        _labelled(ax)
        assert "(%)" in ax.get_ylabel()
        _legends_clear_of_data(by_name[key])
    assert "(s)" in by_name["accuracy_vs_time"].axes[0].get_xlabel()
    assert "(µJ)" in by_name["accuracy_vs_energy"].axes[0].get_xlabel()
    (ax,) = by_name["spikes_per_layer"].axes
    assert _ticks(ax.xaxis) == ["layer 1", "layer 2"]  # categories, not fractional positions
    _labelled(ax)
    _legends_clear_of_data(by_name["spikes_per_layer"])
    fig = by_name["confusion"]
    axes = _main_axes(fig)
    assert len(axes) == 2 and len(_colorbars(fig)) == 2
    for ax in axes:
        assert _ticks(ax.xaxis) == [str(c) for c in range(10)] == _ticks(ax.yaxis)
        assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"


def test_comparison_report_writes_percentages_and_units(report):
    out, _ = report
    md = (out / "report.md").read_text()
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    for text in (md, page):
        assert "dt = 1 ms" in text
        assert "99.72 %" in text and "0.997" not in text  # a fraction shown as a percentage
        assert "81.62 %" in text and "0.236 s" in text
        assert "88.00 ± 2.83 %" in text  # the table's accuracy cell, with its unit
        assert "3 ± 0.707 s" in text  # training time: 2.5 s and 3.5 s
        assert "WORSE" in text and "µJ" in text
    assert "| test accuracy, validation-selected (%) |" in md
    assert "test accuracy, validation-selected: 88.00 % vs 89.50 % (-1.50 percentage points)" in md
    assert "latency per sample: 0.5 ms vs 0.5 ms" not in md  # equal: not a finding
    assert "energy ESTIMATE per sample: 0.31 µJ vs 0.047 µJ (6.6 times)" in md


def test_one_seed_shows_no_spread_and_a_model_without_a_measurement_is_named(monkeypatch):
    assert comparison._fmt("test_accuracy", {"mean": 0.5, "std": 0.0, "n": 1}) == "50.00 %"
    assert comparison._fmt("train_seconds", {"mean": 2.0, "std": 0.0, "n": 1}) == "2 s"
    assert comparison._fmt("train_seconds", {"mean": None, "std": None, "n": 0}) == "n/a"
    data, confusion = _comparison_data()
    for r in data["per_seed"]["mlp"]:
        r["spikes_per_layer"] = None
        r["synops_effective_acs"] = r["synops_effective_macs"] = r["energy_estimate_uJ"] = None
    drawn = []
    render = comparison._png
    monkeypatch.setattr(comparison, "_png", lambda fig: drawn.append(fig) or render(fig))
    comparison.figures(data, {})
    labels = [t.get_text() for fig in drawn for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert labels.count("mlp: not measured") == 1  # the spikes per layer
    assert labels.count("mlp (MLP): not measured") == 2  # synaptic operations and energy


def test_figures_leave_pyplots_backend_alone(tmp_path):
    """A run's figures must not switch pyplot's backend (a notebook's inline figures would vanish)."""
    import matplotlib

    from biosim.reports.figures import _figure

    before = matplotlib.get_backend()
    matplotlib.use("svg")  # stands for a notebook's inline backend: anything but Agg
    try:
        fig = _figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1])
        fig.savefig(tmp_path / "f.png")
        assert matplotlib.get_backend() == "svg" and (tmp_path / "f.png").stat().st_size > 0
    finally:
        matplotlib.use(before)
