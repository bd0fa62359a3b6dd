"""The one figure style of the project: every PNG that a claim or the ``attack`` command writes is made here,
or with these helpers.

Rules (checked by :func:`style_problems`, which the tests run on every figure made here):

- every axes has a title, and x and y labels that end in parentheses: the unit, or for a dimensionless
  quantity what kind of number it is, e.g. ``"width m (hidden units)"``, ``"training points (count)"``,
  ``"||K - Theta|| / ||Theta|| (ratio)"``, ``"digits revealed (fraction)"``;
- every axes with plotted data has a legend, and every legend entry is drawn (a reference value named in a
  legend is a visible line: :func:`reference_line`, :func:`reference_slope`);
- axes that count things have integer ticks (:func:`count_axis`);
- log axes carry at least two labelled ticks even when the data span less than a decade
  (:func:`readable_log_ticks`);
- every title lies inside the figure: :func:`save` wraps a long one to its axes' width (a figure's suptitle to
  the figure's).

Figures are drawn with matplotlib's Agg backend (no display needed). Typical use::

    fig, ax = new_figure(title="K1(c): empirical NTK -> analytic NTK", xlabel="width m (hidden units)",
                         ylabel="relative error (ratio)")
    ax.loglog(widths, errors, "o", label="relu:2")
    reference_slope(ax, widths, errors, -0.5, label="predicted slope -0.5")
    readable_log_ticks(ax)
    save(fig, path)
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from proofs_check.registry import Context, fit_loglog_slope

UNIT = re.compile(r"\([^()]+\)\s*$")
"""An axis label ends in its unit in parentheses ("(hidden units)", "(count)", "(ratio)", "(fraction)")."""
DPI = 120
RECONSTRUCTION_COLUMNS = 10
"""Originals per row of :func:`reconstruction_grid` (each over its reconstruction)."""
CAPTION_INCHES = 0.15
"""The height an image's caption in :func:`image_grid` takes above it: 6 pt text (0.083 in) and its gap."""
FRAME_COLOR = "red"
"""The frame :func:`image_grid` draws around a marked image (:func:`reconstruction_grid`: a revealed private point)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def new_figure(*, title: str | Sequence[str], xlabel: str | Sequence[str], ylabel: str | Sequence[str],
               ncols: int = 1, size: tuple[float, float] | None = None, suptitle: str | None = None):
    """A figure with ``ncols`` axes side by side, titled and labelled (one string, or one per axes).

    Returns (fig, ax) for one axes, (fig, [axes...]) for several.
    """
    plt = _pyplot()
    size = size or (5.0 * ncols, 3.8)
    fig, axes = plt.subplots(1, ncols, figsize=size, squeeze=False)
    axes = list(axes[0])

    def each(value):
        return [value] * ncols if isinstance(value, str) else list(value)

    for ax, t, xl, yl in zip(axes, each(title), each(xlabel), each(ylabel)):
        ax.set_title(t, fontsize=10)
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig, (axes[0] if ncols == 1 else axes)


def reference_line(ax, *, y: float | None = None, x: float | None = None, label: str, **style) -> None:
    """A horizontal (``y=``) or vertical (``x=``) reference line that the legend names."""
    style = {"color": "0.4", "linestyle": "--", "linewidth": 1.0, **style}
    if (y is None) == (x is None):
        raise ValueError("give exactly one of x and y")
    if y is not None:
        ax.axhline(y, label=label, **style)
    else:
        ax.axvline(x, label=label, **style)


def reference_slope(ax, x: Sequence[float], y: Sequence[float], slope: float, *, label: str, offset: float = 0.6,
                    **style) -> None:
    """The line y = c x**slope on log-log axes, through ``offset`` times the geometric mean of the points (x, y)
    (only its slope is predicted; the offset keeps it from hiding a fitted line)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = (x > 0) & (y > 0) & np.isfinite(y)
    if not keep.any():
        return
    centre_x, centre_y = np.exp(np.mean(np.log(x[keep]))), np.exp(np.mean(np.log(y[keep])))
    span = np.geomspace(x[keep].min(), x[keep].max(), 50)
    style = {"color": "0.4", "linestyle": "--", "linewidth": 1.0, **style}
    ax.loglog(span, offset * centre_y * (span / centre_x) ** slope, label=label, **style)


def count_axis(ax, axis: str = "x") -> None:
    """Integer ticks on an axis that counts things."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True))


def readable_log_ticks(ax, axis: str = "both", values: Sequence[float] | None = None) -> None:
    """Labelled ticks on log axes whatever their span, as plain numbers: on x the given ``values`` (e.g. the
    widths measured; a single one gets the axis ends beside it); otherwise, when the axis spans under two decades
    (matplotlib would label at most one tick), 1-2-5 ticks, or where not even two of those fall inside (an axis
    narrower than one step) its two ends, printed with the digits that tell them apart."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    def plain(value, _):
        return f"{value:g}"

    for name in (("x", "y") if axis == "both" else (axis,)):
        target = ax.xaxis if name == "x" else ax.yaxis
        if (ax.get_xscale() if name == "x" else ax.get_yscale()) != "log":
            continue
        low, high = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        if values is not None and name == "x":
            ticks = sorted({float(v) for v in values if low <= v <= high})
            if len(ticks) < 2:  # one measured value: the axis ends beside it
                ticks = sorted({low, *ticks, high})
            ax.set_xticks(ticks, _distinct_labels(ticks))
            target.set_minor_formatter(NullFormatter())
            continue
        if not low > 0 or math.log10(high / low) >= 2:  # two decades or more: matplotlib labels two powers of 10
            continue
        locator = LogLocator(base=10, subs=(1.0, 2.0, 5.0))
        inside = [t for t in locator.tick_values(low, high) if low <= t <= high]
        if len(inside) >= 2:
            target.set_major_locator(locator)
            target.set_major_formatter(FuncFormatter(plain))
        else:
            ends = [low, high]
            labels = dict(zip(ends, _distinct_labels(ends)))
            target.set_major_locator(FixedLocator(ends))
            target.set_major_formatter(FuncFormatter(lambda value, _: labels.get(value, f"{value:g}")))
        target.set_minor_formatter(NullFormatter())


def _distinct_labels(values: Sequence[float]) -> list[str]:
    """Plain-number labels of ``values`` with the fewest significant digits (from 3) that tell them apart; whole
    numbers below 1e7 in full (widths and step counts: 1024, not 1.02e+03)."""
    if all(float(v).is_integer() and abs(v) < 1e7 for v in values):
        return [str(int(v)) for v in values]
    for digits in range(3, 17):
        labels = [f"{v:.{digits}g}" for v in values]
        if len(set(labels)) == len(set(values)):
            return labels
    return [repr(float(v)) for v in values]


def style_problems(fig) -> list[str]:
    """What a figure lacks of the rules in the module docstring (empty when it follows them)."""
    fig.canvas.draw()
    problems = []
    for index, ax in enumerate(fig.axes):
        if not ax.get_visible() or not ax.axison:
            continue
        where = f"axes {index} ({ax.get_title() or 'untitled'})"
        if not ax.get_title():
            problems.append(f"{where}: no title")
        for name, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
            if not label:
                problems.append(f"{where}: no {name} label")
            elif not UNIT.search(label):
                problems.append(f"{where}: {name} label {label!r} names no unit in parentheses")
            elif label.rstrip().endswith("(relative)"):
                problems.append(f"{where}: {name} label {label!r} says (relative), not what kind of number it is")
        has_data = bool(ax.lines or ax.collections or ax.patches or ax.images)
        legend = ax.get_legend()
        if has_data and not ax.images and legend is None:
            problems.append(f"{where}: no legend")
        if legend is not None:
            for handle, text in zip(legend.legend_handles, legend.get_texts()):
                drawn = handle is not None and handle.get_visible() and (
                    not hasattr(handle, "get_linestyle") or handle.get_linestyle() not in ("None", " ", "")
                    or (hasattr(handle, "get_marker") and handle.get_marker() not in (None, "None", " ", "")))
                if not drawn:
                    problems.append(f"{where}: legend entry {text.get_text()!r} has nothing drawn")
        problems += _clipped_title(fig, ax.title, where)
        for name in ("x", "y"):
            if (ax.get_xscale() if name == "x" else ax.get_yscale()) != "log":
                continue
            low, high = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
            labels = ax.get_xticklabels() if name == "x" else ax.get_yticklabels()
            ticks = ax.get_xticks() if name == "x" else ax.get_yticks()
            shown = [t for t, lab in zip(ticks, labels) if lab.get_text() and low <= t <= high]
            if len(shown) < 2:
                problems.append(f"{where}: log {name} axis has {len(shown)} labelled tick(s)")
    if fig._suptitle is not None:
        problems += _clipped_title(fig, fig._suptitle, "figure")
    return problems


def _clipped_title(fig, text, where: str) -> list[str]:
    """A problem when a drawn title runs past the figure's edges (matplotlib cuts it there)."""
    if not text.get_visible() or not text.get_text():
        return []
    box, edges = text.get_window_extent(), fig.bbox
    if box.x0 < edges.x0 - 1 or box.x1 > edges.x1 + 1 or box.y1 > edges.y1 + 1:
        return [f"{where}: title {text.get_text()!r} runs past the figure's edge (clipped)"]
    return []


def wrap_titles(fig) -> None:
    """Wrap every axes title wider than its axes to the axes' width, and a suptitle wider than the figure to the
    figure's (matplotlib cut a long title of a single panel at both edges), at spaces; lines already broken stay
    broken."""
    renderer = fig.canvas.get_renderer()
    texts = [(ax.title, ax.get_window_extent(renderer).width) for ax in fig.axes if ax.get_visible()]
    if fig._suptitle is not None:
        texts.append((fig._suptitle, 0.96 * fig.bbox.width))
    for text, room in texts:
        lines = text.get_text().split("\n")
        measured = text.get_window_extent(renderer).width if text.get_text() else 0.0
        if measured <= room:
            continue
        characters = int(max(map(len, lines)) * room / measured)
        while characters >= 8:
            text.set_text("\n".join(textwrap.fill(line, characters) for line in lines))
            if text.get_window_extent(renderer).width <= room:
                break
            characters -= 2


STYLE_LOG_VARIABLE = "RECON_NTK_FIGURE_STYLE_LOG"
"""When this environment variable names a file, :func:`save` appends each figure's :func:`style_problems` to it, one
line per problem: the test suite sets it for every test, so that figures drawn in subprocesses are checked too."""


def save(fig, path: str | Path) -> Path:
    """Wrap long titles (:func:`wrap_titles`), lay out, write (PNG, 120 dpi) and close a figure; returns the
    path."""
    import os

    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrap_titles(fig)
    fig.tight_layout()
    log = os.environ.get(STYLE_LOG_VARIABLE)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.writelines(f"{path.name}: {problem}\n" for problem in style_problems(fig))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def save_figure(ctx: Context, fig: Any, filename: str, outcomes: Sequence = ()) -> str:
    """Save a claim's figure under the report's figures folder, attach it to ``outcomes``; return its path
    relative to the report folder."""
    path = save(fig, ctx.figure_path(filename))
    relative = str(path.relative_to(ctx.out_dir))
    for outcome in outcomes:
        outcome.figures.append(relative)
    return relative


def loglog_rate_figure(ctx: Context, filename: str, series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *,
                       xlabel: str, ylabel: str, title: str, reference_slope: float | None = None
                       ) -> tuple[str, dict[str, float]]:
    """Plot each (x, y) series on log-log axes with its least-squares line (and, with ``reference_slope``, the
    predicted power law as a dashed line); return the figure's path (relative to the report folder) and the
    fitted slope of each series."""
    fig, ax = loglog_rate_axes(series, xlabel=xlabel, ylabel=ylabel, title=title, reference=reference_slope)
    slopes = {label: fit_loglog_slope(x, y)[0] for label, (x, y) in series.items()}
    return save_figure(ctx, fig, filename), slopes


def loglog_rate_axes(series: Mapping[str, tuple[Sequence[float], Sequence[float]]], *, xlabel: str, ylabel: str,
                     title: str, reference: float | None = None):
    """The figure of :func:`loglog_rate_figure`, unsaved: (fig, ax)."""
    fig, ax = new_figure(title=title, xlabel=xlabel, ylabel=ylabel, size=(5.2, 4.0))
    all_x: list[float] = []
    for label, (x, y) in series.items():
        slope, intercept = fit_loglog_slope(x, y)
        (points,) = ax.loglog(x, y, "o", label=f"{label} (fitted slope {slope:.2f})")
        ax.loglog(x, np.exp(intercept) * np.asarray(x, float) ** slope, "-", color=points.get_color())
        all_x += list(x)
    if reference is not None and series:
        first_x, first_y = next(iter(series.values()))
        reference_slope(ax, first_x, first_y, reference, label=f"predicted slope {reference:g} (offset)")
    ax.legend(fontsize=8)
    readable_log_ticks(ax, "x", values=sorted(set(all_x)))
    readable_log_ticks(ax, "y")
    return fig, ax


# ---------------------------------------------------------------------------------------------------------
# The attack command's figures
# ---------------------------------------------------------------------------------------------------------

RATIO_CAP = 1e3
"""Closeness ratios above this (a reconstruction on top of its private point gives infinity) are drawn at it."""


def leakage_figure(path: str | Path, curves: Mapping[str, Mapping[str, np.ndarray]], *, factor: float,
                   ssim_thresholds: Sequence[float] = (), title: str) -> Path:
    """Draw :func:`leakage_axes` and save it to ``path``."""
    return save(leakage_axes(curves, factor=factor, ssim_thresholds=ssim_thresholds, title=title), path)


def leakage_axes(curves: Mapping[str, Mapping[str, np.ndarray]], *, factor: float,
                 ssim_thresholds: Sequence[float] = (), title: str):
    """The attack's sorted per-point scores beside the trivial baselines'.

    ``curves[name]`` holds ``ratio``: each private point's closeness ratio (the success measure of
    :func:`numerics.privacy.revealed`; revealed at >= ``factor``) and optionally ``ssim`` (its matched SSIM).
    Left: the ratios, best first, on a log axis, with the ``factor`` line; right (when SSIM is given): the
    SSIM curves with a line at each of ``ssim_thresholds``.
    """
    with_ssim = any("ssim" in c for c in curves.values())
    fig, axes = new_figure(
        title=["closeness ratio: nearest public / private distance", "SSIM of the matched reconstruction"][
            : 1 + with_ssim],
        xlabel="private points, best first (count)",
        ylabel=["closeness ratio (public / private distance)", "SSIM (index, 1 = identical)"][: 1 + with_ssim],
        ncols=1 + with_ssim, size=(5.2 * (1 + with_ssim), 4.0), suptitle=title)
    axes = axes if with_ssim else [axes]
    styles = {}
    for index, (name, curve) in enumerate(curves.items()):
        trivial = index > 0
        styles[name] = dict(marker="." if trivial else "o", linestyle=":" if trivial else "-",
                            linewidth=1.0 if trivial else 1.8, markersize=4 if trivial else 5)
    for name, curve in curves.items():
        ratio = np.sort(np.minimum(np.asarray(curve["ratio"], dtype=float), RATIO_CAP))[::-1]
        axes[0].semilogy(np.arange(1, ratio.size + 1), ratio, label=name, **styles[name])
    reference_line(axes[0], y=factor, label=f"revealed at ratio >= {factor:g}")
    axes[0].legend(fontsize=7)
    count_axis(axes[0])
    readable_log_ticks(axes[0], "y")
    if with_ssim:
        for name, curve in curves.items():
            if "ssim" in curve:
                ssim = np.sort(np.asarray(curve["ssim"], dtype=float))[::-1]
                axes[1].plot(np.arange(1, ssim.size + 1), ssim, label=name, **styles[name])
        for threshold, style in zip(ssim_thresholds, ("--", "-.", ":")):
            reference_line(axes[1], y=threshold, label=f"SSIM {threshold:g}", linestyle=style)
        axes[1].set_ylim(-0.2, 1.02)
        axes[1].legend(fontsize=7)
        count_axis(axes[1])
    return fig


def image_grid(path: str | Path, rows: Sequence[Sequence[np.ndarray | None]],
               captions: Sequence[Sequence[str | None]], *, image_shape: tuple[int, ...],
               value_range: tuple[float, float], title: str, inches_wide: float,
               framed: Sequence[Sequence[bool]] | None = None) -> Path:
    """Images in a grid (``rows`` of flat images, None for an empty cell), each with its caption above it, drawn as
    one mosaic on one axes: one subplot per image took 5 s for 100 images (their layout), the mosaic 0.3 s.
    ``framed`` (True per cell, in the shape of ``rows``) draws a FRAME_COLOR frame around those images; the title
    says what it means.

    Values are clipped to ``value_range`` (the gray scale's ends); cells are separated by a one-pixel gap, and a row
    with captions leaves room above it for them. The figure is ``inches_wide`` wide and as tall as the mosaic's
    shape and the title's lines need (a fixed height left a blank band between the title and a wide mosaic)."""
    plt = _pyplot()
    height, width = image_shape[:2]
    columns = max(len(row) for row in rows)
    pixel_inches = inches_wide / (columns * (width + 1) - 1)  # the mosaic fills the figure's width
    # a caption (6 pt, 0.083 in) and its gap take 0.15 in, in whole pixel rows (0.7 of an image's height was a
    # band of white above a few wide images, 2 in above a single one)
    caption_rows = math.ceil(CAPTION_INCHES / pixel_inches)
    caption_room = [caption_rows if any(caption for caption in row) else 0.0 for row in captions]
    tops = np.cumsum([0.0] + [room + height + 1 for room in caption_room])[:-1] + np.asarray(caption_room)
    tops = np.round(tops).astype(int)
    mosaic = np.full((int(tops[-1]) + height, columns * (width + 1) - 1, *image_shape[2:]), np.nan)
    lo, hi = value_range
    title = textwrap.fill(title, width=max(40, 16 * columns))
    title_room = 0.2 + 0.15 * (title.count("\n") + 1)  # inches: 8 pt lines and tight_layout's padding
    image_inches = inches_wide * mosaic.shape[0] / mosaic.shape[1]
    fig, ax = plt.subplots(figsize=(inches_wide, image_inches + title_room))
    ax.axis("off")
    from matplotlib.patches import Rectangle

    frames = framed if framed is not None else [[False] * len(row) for row in rows]
    for top, row, row_captions, row_frames in zip(tops, rows, captions, frames):
        for column, (image, caption, frame) in enumerate(zip(row, row_captions, row_frames)):
            left = column * (width + 1)
            if frame:  # around the image: imshow draws pixel k over k - 0.5 .. k + 0.5
                ax.add_patch(Rectangle((left - 0.5, top - 0.5), width, height, fill=False, edgecolor=FRAME_COLOR,
                                       linewidth=1.5, clip_on=False))
            if image is not None:
                mosaic[top:top + height, left:left + width] = np.clip(np.asarray(image, dtype=float), lo, hi).reshape(
                    image_shape)
            if caption:
                ax.text(left + (width - 1) / 2, top - 0.6, caption, ha="center", va="bottom", fontsize=6)
    colormap = plt.get_cmap("gray").with_extremes(bad="white")
    ax.imshow(np.ma.masked_invalid(mosaic), cmap=colormap, vmin=lo, vmax=hi, interpolation="nearest")
    fig.suptitle(title, fontsize=8)
    return save(fig, path)


def reconstruction_grid(path: str | Path, originals: np.ndarray, matched: Sequence[np.ndarray | None],
                        scores: Sequence[float], *, image_shape: tuple[int, ...], value_range: tuple[float, float],
                        title: str, score_name: str = "SSIM", framed: Sequence[bool] | None = None) -> Path:
    """Images: each original (best scored first) above its matched reconstruction, the score above each pair.

    ``originals`` (N x d) and ``matched`` (N entries, None where nothing was matched) are raw images
    (the dataset mean added back); ``framed`` (N entries) frames those originals (the title says why).
    """
    n = len(originals)
    columns = min(n, RECONSTRUCTION_COLUMNS)
    marked = [False] * n if framed is None else [bool(f) for f in framed]
    rows, captions, frames = [], [], []
    for start in range(0, n, columns):
        block = range(start, min(start + columns, n))
        rows += [[originals[k] for k in block], [matched[k] for k in block]]
        captions += [[f"{score_name} {scores[k]:.2f}" for k in block], [None] * len(block)]
        frames += [[marked[k] for k in block], [False] * len(block)]
    return image_grid(path, rows, captions, image_shape=image_shape, value_range=value_range, title=title,
                      inches_wide=max(1.2 * columns, 3.0), framed=frames)


def matched_reconstruction_grid(path: str | Path, x_recon: np.ndarray, dataset, label: str, *,
                                leakage=None) -> Path:
    """:func:`reconstruction_grid` of an image dataset (numerics.audit.Dataset) and reconstructions in its centred
    coordinates, matched one to one by SSIM (:func:`numerics.audit.score`), best scored first. With ``leakage``
    (numerics.audit.leakage of the same reconstructions) the originals its attack row counts as revealed are framed
    and the title says so: a revealed point need not be the best SSIM match (the success measure asks for some
    reconstruction closer to it than to every public point), so the frames and the order can disagree."""
    from numerics import audit

    scored = audit.score(x_recon, dataset)
    order = np.argsort(-scored.original_scores, kind="stable")
    recon_of = dict(zip(scored.original_index.tolist(), scored.recon_index.tolist()))
    raw = dataset.x + dataset.mean
    matched = [x_recon[recon_of[i]] + dataset.mean if i in recon_of else None for i in order]
    rows = "top row" if len(order) <= RECONSTRUCTION_COLUMNS else "rows 1, 3, ..."  # reconstruction_grid's layout
    framed, frames = None, ""
    if leakage is not None:
        framed = leakage.revealed(audit.ATTACK_ROW)[order]
        frames = (f"; framed in {FRAME_COLOR}: revealed ({int(framed.sum())} of {framed.size}: some reconstruction is "
                  f"{leakage.factor:g} times closer to it than to every public point)")
    return reconstruction_grid(path, raw[order], matched, scored.original_scores[order],
                               image_shape=dataset.image_shape, value_range=(float(raw.min()), float(raw.max())),
                               title=f"originals ({rows}) over their matched reconstructions (SSIM above each)"
                                     f"{frames}; {label}", framed=framed)
