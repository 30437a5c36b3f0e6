"""Gao et al. (2023, eq. 1-2) over-optimisation curves, fitted with scipy to measured points.

With d = sqrt(KL(policy || SFT)) and R the reward gained since d = 0:
  best-of-n:  R(d) = d (α - β d)          peak at d* = α / (2β),        R* = α² / (4β)
  RL:         R(d) = d (α - β log d)      peak at d* = exp(α/β - 1),    R* = β d*
A peak is reported only for β > 0 and R² ≥ 0.8 (a curve that does not fit has no peak to
read), each parameter with a 95% interval from the fit's covariance. A peak exists only for β > 0 (and, for RL, below √KL = e^50; otherwise the fitted gold never turns down); R² is that of the
fit to the measured gains. Pure functions of lists of numbers: no files, no torch."""

from __future__ import annotations

import math

FORMS = {"bon": "R = d(α − βd)", "rl": "R = d(α − β log d)"}
MIN_POINTS = 3  # two parameters: fewer points fit exactly and say nothing
MIN_R2 = 0.8  # a curve that explains less of the points than this has no peak worth reading


def _model(form: str):
    if form == "bon":
        return lambda d, a, b: d * (a - b * d)
    return lambda d, a, b: d * (a - b * _log(d))


def _log(d):
    import numpy as np
    return np.log(np.maximum(d, 1e-12))  # d log d → 0 as d → 0


def peak(form: str, alpha: float, beta: float) -> tuple[float | None, float | None]:
    """(d*, R*) of the fitted curve, or (None, None) when it has no maximum (β ≤ 0)."""
    if beta <= 0:
        return None, None
    if form == "bon":
        return alpha / (2 * beta), alpha ** 2 / (4 * beta)
    if alpha / beta - 1 > 50:  # a peak at √KL > e^50 is no peak: the curve only rises
        return None, None
    d = math.exp(alpha / beta - 1)
    return d, beta * d


def fit_curve(form: str, d: list[float], gains: list[float]) -> dict:
    """{alpha, beta, r2, peak_sqrt_kl, peak_gain}; r2 is 1 - SS_res/SS_tot over the points."""
    import numpy as np
    from scipy.optimize import curve_fit

    x, y = np.asarray(d, dtype=float), np.asarray(gains, dtype=float)
    (alpha, beta), cov = curve_fit(_model(form), x, y, p0=(1.0, 0.1))
    residual = y - _model(form)(x, alpha, beta)
    total = float(((y - y.mean()) ** 2).sum())
    r2 = 1 - float((residual ** 2).sum()) / total if total > 0 else None
    d_star, r_star = peak(form, float(alpha), float(beta))
    out = {"alpha": float(alpha), "beta": float(beta), "r2": r2, "peak_sqrt_kl": d_star,
           "peak_gain": r_star}
    # 95% intervals of the parameters from the least-squares covariance (normal approximation)
    se = np.sqrt(np.diag(cov)) if np.all(np.isfinite(cov)) else (None, None)
    for name, v, s in (("alpha", alpha, se[0]), ("beta", beta, se[1])):
        out[f"{name}_ci95"] = None if s is None else [float(v - 1.96 * s), float(v + 1.96 * s)]
    if d_star is not None and (r2 is None or r2 < MIN_R2):
        out["peak_sqrt_kl"] = out["peak_gain"] = None
        out["no_peak"] = (f"R² {r2 if r2 is None else round(r2, 2)} < {MIN_R2}: the curve does "
                          "not fit the points, so its peak is not reported")
    return out


def fit_points(form: str, points: list[dict], x_key: str = "kl") -> tuple[dict | None, str | None]:
    """Fit gold and proxy of report points ({kl, reward_gold, reward_proxy, ...}) against
    d = sqrt(max(kl, 0)); gains are measured from the point with the smallest KL (the SFT
    baseline, d ≈ 0). Returns (fit, None) or (None, the reason there is no fit)."""
    usable = [p for p in points if None not in (p.get(x_key), p.get("reward_gold"),
                                                p.get("reward_proxy"))]
    if len(usable) < MIN_POINTS + 1:
        return None, (f"{len(usable)} measured points; the fit needs at least {MIN_POINTS + 1} "
                      "(a baseline and three to fit two parameters)")
    base = min(usable, key=lambda p: p[x_key])
    rest = [p for p in usable if p is not base]
    d = [math.sqrt(max(p[x_key], 0.0)) for p in rest]
    if max(d) - min(d) <= 1e-9:
        return None, "every point is at the same distance from SFT: nothing to fit"
    out = {"form": form, "equation": FORMS[form], "n_points": len(rest), "x": x_key,
           "baseline": {"kl": base[x_key], "reward_gold": base["reward_gold"],
                        "reward_proxy": base["reward_proxy"]}}
    for key, name in (("reward_gold", "gold"), ("reward_proxy", "proxy")):
        try:
            f = fit_curve(form, d, [p[key] - base[key] for p in rest])
        except (RuntimeError, ValueError) as e:  # scipy found no least-squares solution
            out[name] = None
            out.setdefault("notes", {})[name] = f"the fit did not converge ({e})"
            continue
        f["peak"] = None if f["peak_gain"] is None else f["peak_gain"] + base[key]
        out[name] = f
    return out, None
