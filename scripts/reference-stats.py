#!/usr/bin/env python3
"""
Dev-only: computes reference values for src/stats with scipy / scikit-learn / numpy and writes
test/fixtures/stats/reference.json (inputs and expected outputs). The project runtime stays
TypeScript; this script only produces test fixtures. Regenerate with:

    apt-get install -y python3-scipy python3-sklearn python3-numpy
    /usr/bin/python3 scripts/reference-stats.py
"""
import json
import math
import os

import numpy as np
import scipy
import sklearn
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn import metrics

rng = np.random.default_rng(20261127)
out = {"generator": {"scipy": scipy.__version__, "sklearn": sklearn.__version__, "numpy": np.__version__}}


def fl(a):
    return [float(x) for x in a]


# Binary classification: scores with signal and ties (rounded to 3 decimals).
n = 2000
labels = (rng.random(n) < 0.3).astype(int)
logit = rng.normal(0, 1, n) + 1.4 * labels - 0.8
scores = np.round(1 / (1 + np.exp(-logit)), 3)
pred = (scores > 0.5).astype(int)
out["classification"] = {
    "labels": labels.tolist(),
    "scores": fl(scores),
    "expected": {
        "auc": metrics.roc_auc_score(labels, scores),
        "ks": stats.ks_2samp(scores[labels == 1], scores[labels == 0]).statistic,
        "gini": 2 * metrics.roc_auc_score(labels, scores) - 1,
        "log_loss": metrics.log_loss(labels, scores),
        "brier": metrics.brier_score_loss(labels, scores),
        "accuracy": metrics.accuracy_score(labels, pred),
        "precision": metrics.precision_score(labels, pred),
        "recall": metrics.recall_score(labels, pred),
        "f1": metrics.f1_score(labels, pred),
    },
}

# Multiclass: macro precision / recall / F1 and accuracy on predicted labels.
y_true = rng.integers(0, 3, 600)
y_pred = np.where(rng.random(600) < 0.7, y_true, rng.integers(0, 3, 600))
out["multiclass"] = {
    "actual": y_true.tolist(),
    "predicted": y_pred.tolist(),
    "expected": {
        "accuracy": metrics.accuracy_score(y_true, y_pred),
        "precision_macro": metrics.precision_score(y_true, y_pred, average="macro"),
        "recall_macro": metrics.recall_score(y_true, y_pred, average="macro"),
        "f1_macro": metrics.f1_score(y_true, y_pred, average="macro"),
    },
}

# Regression.
y = rng.normal(50, 10, 1000)
yhat = y + rng.normal(0, 4, 1000)
out["regression"] = {
    "actual": fl(y),
    "predicted": fl(yhat),
    "expected": {
        "rmse": math.sqrt(metrics.mean_squared_error(y, yhat)),
        "mae": metrics.mean_absolute_error(y, yhat),
        "r2": metrics.r2_score(y, yhat),
    },
}

# Two-sample Kolmogorov-Smirnov.
ks_cases = []
for name, a, b in [
    ("shifted normals", rng.normal(0, 1, 500), rng.normal(0.2, 1, 800)),
    ("same distribution", rng.normal(0, 1, 1000), rng.normal(0, 1, 1000)),
    ("integers with ties", rng.integers(0, 20, 700).astype(float), rng.integers(1, 21, 900).astype(float)),
    ("large shift", rng.exponential(1, 1000), rng.exponential(1.6, 1200)),
    ("small samples", rng.normal(0, 1, 40), rng.normal(0.5, 1, 60)),
]:
    asymp = stats.ks_2samp(a, b, method="asymp")
    exact = stats.ks_2samp(a, b, method="exact")
    m, k = sorted([len(a), len(b)], reverse=True)
    en = m * k / (m + k)
    lam = (math.sqrt(en) + 0.12 + 0.11 / math.sqrt(en)) * asymp.statistic
    ks_cases.append({
        "name": name,
        "a": fl(a),
        "b": fl(b),
        "statistic": float(asymp.statistic),
        "pvalue_asymp": float(asymp.pvalue),
        "pvalue_exact": float(exact.pvalue),
        "kolmogorov_sf_stephens": float(stats.kstwobign.sf(lam)),
    })
out["ks_2samp"] = ks_cases

# Kolmogorov limiting distribution survival function on a grid.
grid = [0.05, 0.2, 0.4, 0.6, 0.8, 1.0, 1.18, 1.2, 1.5, 2.0, 3.0]
out["kolmogorov_sf"] = [{"x": x, "sf": float(stats.kstwobign.sf(x))} for x in grid]

# Chi-square survival function.
out["chi2_sf"] = [{"x": x, "df": df, "sf": float(stats.chi2.sf(x, df))} for x, df in [(0.5, 1), (3.84, 1), (10, 3), (2, 5), (30, 10), (100, 50), (7.5, 2), (0.01, 4)]]

# Chi-square test of homogeneity (2 x k contingency table, no continuity correction).
chi_cases = []
for name, ref, cur in [
    ("no shift", [763, 1676, 199, 13, 646, 260], [150, 340, 38, 3, 131, 49]),
    ("shift", [763, 1676, 199, 13, 646, 260], [300, 250, 40, 5, 100, 60]),
    ("two categories", [2935, 628], [400, 140]),
]:
    stat, p, dof, _ = stats.chi2_contingency(np.array([ref, cur]), correction=False)
    chi_cases.append({"name": name, "reference": ref, "current": cur, "statistic": float(stat), "pvalue": float(p), "dof": int(dof)})
out["chi2_contingency"] = chi_cases

# Jensen-Shannon distance (base 2) between count vectors (normalised by scipy).
js_cases = []
for p, q in [([10, 20, 30, 40], [40, 30, 20, 10]), ([763, 1676, 199, 13, 646, 260], [300, 250, 40, 5, 100, 60]), ([1, 0, 0], [0, 0, 1]), ([5, 5], [5, 5])]:
    js_cases.append({"p": p, "q": q, "distance": float(jensenshannon(p, q, base=2))})
out["jensen_shannon"] = js_cases


# PSI: the formula in src/stats/drift.ts (shares, empty bins floored at 1e-4), computed with numpy.
def psi(ref, cur, eps=1e-4):
    e = np.maximum(np.asarray(ref, float) / np.sum(ref), eps)
    a = np.maximum(np.asarray(cur, float) / np.sum(cur), eps)
    return float(np.sum((a - e) * np.log(a / e)))


psi_cases = []
for ref, cur in [([100] * 10, [100] * 10), ([356, 356, 357, 356, 356, 357, 356, 356, 357, 356], [120, 80, 90, 100, 110, 95, 105, 100, 90, 110]), ([50, 0, 30, 20], [10, 40, 30, 20]), ([10, 20, 30, 40], [40, 30, 20, 10])]:
    psi_cases.append({"reference": ref, "current": cur, "psi": psi(ref, cur)})
out["psi"] = psi_cases

# DDSketch quantiles are checked against exact sorted quantiles inside the TypeScript test (100k values).

path = os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "stats", "reference.json")
with open(path, "w") as f:
    json.dump(out, f)
print(f"wrote {os.path.normpath(path)}")
