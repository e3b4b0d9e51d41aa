"""The reliability diagram of a calibration (needs matplotlib: pip install '.[plot]')."""

from __future__ import annotations

from pathlib import Path

from ..loadtest.plot import pyplot
from .fitting import Quality


def plot_reliability(quality: Quality, title: str, path: str | Path) -> None:
    """Fraction relevant against mean probability per bin, for the sigmoid of the raw score and for the
    calibration (held out), with the pairs in each bin underneath; a calibrated model lies on the diagonal."""
    plt = pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    width = 1.0 / len(quality.after.counts)
    centres = [(i + 0.5) * width for i in range(len(quality.after.counts))]
    for name, shown, marker in (("sigmoid of the raw score", quality.before, "s"), ("calibrated", quality.after, "o")):
        points = [(p, o) for p, o, n in zip(shown.predicted, shown.observed, shown.counts) if n]
        top.plot([p for p, _ in points], [o for _, o in points], marker=marker, label=f"{name} (ECE {shown.ece:.3f}, Brier {shown.brier:.3f})")
        bottom.bar(centres, shown.counts, width=width * 0.9, alpha=0.5, label=name)
    top.set(ylabel="fraction relevant", xlim=(0, 1), ylim=(0, 1), title=f"{title}: {quality.evaluation}")
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="predicted P(relevant)", ylabel="pairs")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
