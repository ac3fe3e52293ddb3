"""convert_mnist's accuracy-vs-steps plot: step counts as tick labels, units on the axes, the legend
off the data."""

from biosim.experiments.convert_runner import _figure
from biosim.files import atomic_savefig


def test_accuracy_vs_steps_names_the_step_counts_and_keeps_the_legend_off_the_data(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    steps = [10, 20, 50, 100, 200]
    fig = _figure(steps, {s: 0.9 for s in steps}, 0.9, "convert_mnist")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ["10", "20", "50", "100", "200"]
    assert ax.get_xlabel().endswith("(count)") and ax.get_ylabel() == "test accuracy (%)"
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    legend, area = ax.get_legend().get_window_extent(canvas.get_renderer()), ax.get_window_extent()
    assert legend.y1 <= area.y0  # below the axes: the SNN's points at 100 and 200 steps stay visible
    atomic_savefig(fig, tmp_path / "accuracy_vs_steps.png")
    assert (tmp_path / "accuracy_vs_steps.png").stat().st_size > 1000
