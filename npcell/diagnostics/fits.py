"""Log-log fits: how a per-step gradient scales with the cell norm it read (eq. 14 vs 21).

A slope is quoted only where the fit can carry it: at least :data:`MIN_FIT_DECADES` of ‖c‖
and R² of at least :data:`MIN_FIT_R2`. Anything else is "no slope", with the reason, so a
figure never shows noise as a power law.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy

from ..backend import to_numpy
from ..errors import ConfigError, ShapeError

MIN_FIT_DECADES = 1.0  # a log-log slope over less than one decade of ‖c‖ says little
MIN_FIT_R2 = 0.95  # below this the points are not on a line: a curve or noise, not a power law


@dataclass(frozen=True)
class LogLogFit:
    """Least-squares line log10 y = slope * log10 x + intercept, over the n points with x, y > 0.

    A slope of 1 means y grows in proportion to x (eq. 21: the peephole's per-step ‖dL/dW_kc‖
    is a gate error times c); a slope near 0 means y does not follow x (eq. 14: WMC's term is
    divided away by the tanh derivative once W_kc c saturates). ``r2`` is the fraction of the
    variance of log10 y the line explains; ``span`` the decades of x the fit covers.
    """

    slope: float
    intercept: float
    r2: float
    n: int
    span: float

    @property
    def quotable(self) -> bool:
        """True when the fit spans enough decades and explains enough of log y to quote."""
        return self.span >= MIN_FIT_DECADES and self.r2 >= MIN_FIT_R2

    def label(self) -> str:
        """'slope 0.97 (R² 1.00, 2.1 decades)', or 'no slope (...)' saying why not."""
        if self.span < MIN_FIT_DECADES:
            return f"no slope (‖c‖ spans {self.span:.1f} decades)"
        if self.r2 < MIN_FIT_R2:
            return f"no slope (R² {self.r2:.2f}: not a line)"
        return f"slope {self.slope:.2f} (R² {self.r2:.2f}, {self.span:.1f} decades)"

    def __str__(self):
        return (f"slope {self.slope:.2f} (R² {self.r2:.2f}, {self.n} points, "
                f"{self.span:.1f} decades)")


def fit_loglog(x, y, *, min_points=3) -> LogLogFit:
    """Fit a power law y ~ x^slope on log-log axes (both (N,) arrays; non-positive points skipped).

    Raises ConfigError when fewer than ``min_points`` positive pairs remain or x spans no range.
    """
    x = numpy.asarray(to_numpy(x), dtype=float).ravel()
    y = numpy.asarray(to_numpy(y), dtype=float).ravel()
    if x.shape != y.shape:
        raise ShapeError(f"fit_loglog needs x and y of one shape; got {x.shape} and {y.shape}")
    keep = (x > 0) & (y > 0) & numpy.isfinite(x) & numpy.isfinite(y)
    lx, ly = numpy.log10(x[keep]), numpy.log10(y[keep])
    if lx.size < min_points or numpy.ptp(lx) == 0.0:
        raise ConfigError(f"fit_loglog needs at least {min_points} positive points over a range "
                          f"of x; got {lx.size}")
    slope, intercept = numpy.polyfit(lx, ly, 1)
    residual = ly - (slope * lx + intercept)
    total = ((ly - ly.mean()) ** 2).sum()
    # a flat y (total ~ rounding) is explained perfectly by the flat line
    flat = total <= 1e-20 * max(1.0, float((ly ** 2).sum()))
    r2 = 1.0 if flat else 1.0 - (residual ** 2).sum() / total
    return LogLogFit(float(slope), float(intercept), float(r2), int(lx.size), float(numpy.ptp(lx)))
