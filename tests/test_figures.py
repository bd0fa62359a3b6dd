"""proofs_check.figures: the figures made here follow the style rules, and the rule checker can fail."""

import numpy as np
import pytest

from proofs_check import figures


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_leakage_figure_follows_the_style():
    rng = np.random.default_rng(0)
    curves = {"attack": {"ratio": np.array([np.inf, 5.0, 2.5, 1.1]), "ssim": np.array([0.99, 0.95, 0.7, 0.3])},
              "mean image": {"ratio": rng.uniform(0.5, 1.0, 4), "ssim": rng.uniform(0.4, 0.6, 4)}}
    fig = figures.leakage_axes(curves, factor=2.0, ssim_thresholds=(0.4, 0.9), title="attack vs baselines")
    assert figures.style_problems(fig) == []
    for ax in fig.axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert all(float(t).is_integer() for t in ticks)  # counts have integer ticks
    legend_texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "revealed at ratio >= 2" in legend_texts
    _close(fig)


def test_rate_figure_draws_its_reference_slope_and_labels_narrow_log_axes():
    widths = [64, 128, 256, 512]
    series = {"relu:2": (widths, [0.30, 0.22, 0.16, 0.11])}  # under one decade on y
    fig, ax = figures.loglog_rate_axes(series, xlabel="width m (hidden units)", ylabel="error (ratio)", title="rate",
                                       reference=-0.5)
    assert figures.style_problems(fig) == []
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "predicted slope -0.5 (offset)" in labels
    (reference,) = [line for line in ax.lines if line.get_label() == "predicted slope -0.5 (offset)"]
    x, y = reference.get_data()
    assert np.polyfit(np.log(x), np.log(y), 1)[0] == pytest.approx(-0.5)
    _close(fig)


def test_style_checker_finds_what_is_missing():
    fig, ax = figures.new_figure(title="t", xlabel="width", ylabel="error (ratio)")
    ax.semilogy([1, 2, 3], [0.30, 0.25, 0.20], "o")
    ax.plot([], [], " ", label="predicted slope -0.5")  # a legend entry with nothing drawn
    ax.legend()
    problems = " ".join(figures.style_problems(fig))
    assert "x label 'width' names no unit" in problems
    assert "legend entry 'predicted slope -0.5' has nothing drawn" in problems
    assert "log y axis has" in problems  # matplotlib labels no tick on a log axis spanning under a decade
    figures.readable_log_ticks(ax, "y")
    assert "log y axis" not in " ".join(figures.style_problems(fig))
    _close(fig)
    fig, ax = figures.new_figure(title="", xlabel="a (count)", ylabel="b (relative)")
    ax.plot([1, 2], [1, 2])
    problems = figures.style_problems(fig)
    assert any("no title" in p for p in problems) and any("no legend" in p for p in problems)
    assert any("says (relative)" in p for p in problems)
    _close(fig)


def test_reconstruction_grid_is_written(tmp_path):
    originals = np.random.default_rng(0).uniform(0, 1, (3, 64))
    path = figures.reconstruction_grid(tmp_path / "grid.png", originals, [originals[0], None, originals[2]],
                                       [0.9, -1.0, 0.5], image_shape=(8, 8), value_range=(0.0, 1.0), title="grid")
    assert path.stat().st_size > 0


def test_an_image_grid_is_as_tall_as_its_mosaic(tmp_path, monkeypatch):
    """The figure's height follows the mosaic and the title (a fixed height left a third of it blank under the
    title), and the reconstruction title names the rows it has: "top row" for up to 10 originals (it said "rows 1,
    3, ..." over two rows)."""
    sizes, titles = [], []
    real_save = figures.save

    def save(fig, path):
        sizes.append(tuple(fig.get_size_inches()))
        titles.append(fig._suptitle.get_text())
        return real_save(fig, path)

    monkeypatch.setattr(figures, "save", save)
    originals = np.random.default_rng(0).uniform(0, 1, (4, 64))
    figures.reconstruction_grid(tmp_path / "grid.png", originals, list(originals), [0.5] * 4, image_shape=(8, 8),
                                value_range=(0.0, 1.0), title="grid")
    (width, height), = sizes
    # 4 images across 35 pixels, 2 + 8 + 1 + 8 pixel rows (a caption is 2 rows at 0.137 in a pixel), one title line
    assert width == 4.8 and height == pytest.approx(4.8 * 19 / 35 + 0.35, abs=1e-9)
    from numerics.audit import load_dataset

    dataset = load_dataset("digits-odd-even", 4, seed=0)
    figures.matched_reconstruction_grid(tmp_path / "matched.png", dataset.x, dataset, "a label")
    assert titles[-1].startswith("originals (top row) over their matched reconstructions")


def test_reconstructions_frame_the_points_the_success_measure_counts_as_revealed(tmp_path, monkeypatch):
    """reconstructions.png frames each original that numerics.audit.Leakage counts as revealed (a trial saw 10 images
    at SSIM 0.69-0.98 with only 1 revealed and nothing telling which), and its title says what a frame means; the
    frames follow the SSIM order of the originals, not the dataset's."""
    from matplotlib.patches import Rectangle

    from numerics import audit, privacy

    drawn = []
    monkeypatch.setattr(figures, "save", lambda fig, path: drawn.append(fig))
    dataset = audit.load_dataset("digits-odd-even", 6, seed=0)
    x_recon = dataset.x[:4] + 0.3 * np.random.default_rng(1).standard_normal((4, dataset.d))  # the last 2 unmatched
    ratios = np.array([1.0, 3.0, privacy.DEFAULT_FACTOR, 0.5, 9.0, 1.9])
    leakage = audit.Leakage(rows={}, ratios={audit.ATTACK_ROW: ratios}, factor=privacy.DEFAULT_FACTOR)
    figures.matched_reconstruction_grid(tmp_path / "grid.png", x_recon, dataset, "a label", leakage=leakage)
    fig, = drawn
    frames = [p for p in fig.axes[0].patches if isinstance(p, Rectangle)]
    order = np.argsort(-audit.score(x_recon, dataset).original_scores, kind="stable")
    columns = sorted(round((p.get_x() + 0.5) / 9) for p in frames)  # 8-pixel images, one-pixel gaps
    assert columns == sorted(np.flatnonzero(ratios[order] >= 2.0).tolist()) and len(columns) == 3
    assert all(p.get_y() == frames[0].get_y() for p in frames)  # on the originals' row
    title = fig._suptitle.get_text().replace("\n", " ")
    assert f"framed in {figures.FRAME_COLOR}: revealed (3 of 6: some reconstruction is 2 times closer" in title
    _close(fig)


def _labels(fig, axis):
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = sorted(ax.get_xlim() if axis == "x" else ax.get_ylim())
    ticks = ax.xaxis.get_major_ticks() if axis == "x" else ax.yaxis.get_major_ticks()
    return [t.label1.get_text() for t in ticks if t.label1.get_text() and low <= t.get_loc() <= high]


def test_narrow_log_axes_get_distinct_readable_labels():
    """A single measured width is labelled (with the axis ends beside it); an axis holding one 1-2-5 tick gets its
    two ends; a narrow or inverted axis gets distinct plain labels (no repeats, no 1e+03)."""
    def figure(limits=None, values=None, axis="x"):
        fig, ax = figures.new_figure(title="t", xlabel="width m (hidden units)", ylabel="y (fraction)")
        ax.plot([64], [0.5], "o", label="N = 4")
        ax.set_xscale("log")
        ax.set_yscale("log" if axis == "y" else "linear")
        ax.legend()
        if limits is not None:
            (ax.set_xlim if axis == "x" else ax.set_ylim)(*limits)
        figures.readable_log_ticks(ax, axis, values=values)
        assert figures.style_problems(fig) == []
        labels = _labels(fig, axis)
        _close(fig)
        assert len(set(labels)) == len(labels), labels
        return labels

    assert "64" in figure(values=[64])
    assert figure(limits=(50, 5000), values=[64, 256, 1024, 4096]) == ["64", "256", "1024", "4096"]  # not 1.02e+03
    assert figure(limits=(9.5, 10.5)) == ["9.5", "10.5"]  # only 10 is a 1-2-5 tick inside: the ends
    assert figure(limits=(0.0123, 0.0124), axis="y")  # distinct digits, not 0.0123 three times
    assert not any("e+" in label for label in figure(limits=(300, 3000)))
    assert len(figure(limits=(70, 60))) >= 2  # inverted


def test_a_figure_saved_in_a_subprocess_is_style_checked(tmp_path, monkeypatch):
    """The suite's style guard (tests/conftest.py) reaches figures that commands draw in subprocesses: figures.save
    logs their problems to the file STYLE_LOG_VARIABLE names, which the subprocess inherits."""
    import subprocess
    import sys

    log = tmp_path / "style.txt"
    monkeypatch.setenv(figures.STYLE_LOG_VARIABLE, str(log))  # this test's own log, not the guard's
    code = ("from proofs_check import figures\n"
            "fig, ax = figures.new_figure(title='t', xlabel='width', ylabel='error (ratio)')\n"
            "ax.plot([1, 2], [1, 2], label='a')\nax.legend()\n"
            f"figures.save(fig, {str(tmp_path / 'bad.png')!r})\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert (tmp_path / "bad.png").exists()
    assert "bad.png: " in log.read_text() and "x label 'width' names no unit" in log.read_text()


GUARDED = """
import pytest
from proofs_check import figures


def bad(path):
    fig, ax = figures.new_figure(title="t", xlabel="width", ylabel="error (ratio)")
    ax.plot([1, 2], [1, 2], label="a")
    ax.legend()
    figures.save(fig, path)


@pytest.fixture(scope="module")
def drawn_by_a_module_fixture(tmp_path_factory):
    bad(tmp_path_factory.mktemp("m") / "module.png")


def test_draws_a_bad_figure(tmp_path):
    bad(tmp_path / "in_the_test.png")


def test_uses_the_fixture(drawn_by_a_module_fixture):
    pass
"""


@pytest.mark.parametrize("workers", [[], ["-n", "1"]], ids=["serial", "xdist"])
def test_the_style_guard_fails_what_draws_a_bad_figure(pytester, workers):
    """tests/conftest.py itself, on a throwaway test file: a test drawing a figure that breaks a rule errors at
    teardown, and one drawn by a module-scoped fixture fails the session, also under pytest-xdist (``make test``),
    whose workers report only their tests' outcomes: the session-wide check must happen in the controller."""
    from pathlib import Path

    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_guarded=GUARDED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *workers)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["figures drawn by fixtures break the style rules: module.png: axes 0 (t): x label*",
                                 "*in_the_test.png: axes 0 (t): x label 'width' names no unit*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_long_titles_are_wrapped_inside_the_figure(tmp_path):
    """A single panel's long title lost its end (the kernel-distance scatter its Spearman value), and a suptitle
    over one panel was cut on both sides; the style checker now finds a title that runs off the figure, and save
    wraps it (every word kept)."""
    import matplotlib.pyplot as plt

    title = "attack success against kernel movement, cells whose network fitted (Spearman -0.12)"
    suptitle = "revealed fraction (mean over seeds), digits-odd-even, standard parametrization, every seed"
    fig, ax = figures.new_figure(title=title, xlabel="a (count)", ylabel="b (fraction)", size=(4.6, 3.8),
                                 suptitle=suptitle)
    ax.plot([1, 2], [1, 2], label="data")
    ax.legend()
    problems = " ".join(figures.style_problems(fig))
    assert "axes 0" in problems and "figure: title" in problems and "runs past the figure's edge" in problems
    figures.wrap_titles(fig)
    fig.tight_layout()
    assert figures.style_problems(fig) == []
    assert ax.get_title().split() == title.split() and "\n" in ax.get_title()
    assert fig._suptitle.get_text().split() == suptitle.split()
    plt.close(fig)
    fig, ax = figures.new_figure(title=title, xlabel="a (count)", ylabel="b (fraction)", size=(4.6, 3.8))
    ax.plot([1, 2], [1, 2], label="data")
    ax.legend()
    path = figures.save(fig, tmp_path / "long.png")  # save wraps: the style log would name a clipped title
    assert path.is_file() and ax.get_title().split() == title.split() and "\n" in ax.get_title()
    fig, ax = figures.new_figure(title="short", xlabel="a (count)", ylabel="b (fraction)")
    figures.wrap_titles(fig)
    assert ax.get_title() == "short"
    plt.close(fig)
