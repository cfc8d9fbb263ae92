"""
The FastAPI peer of `npm run bench:compare`: the stack users leave (FastAPI + scikit-learn + uvicorn),
serving the same model task from the same data with the same JSON body, written the way a careful
engineer would write it (no pandas per request, validation by a pydantic model, one numpy array per
request, one predict_proba call per batch).

- Model: scikit-learn GradientBoostingClassifier trained at start-up on models/credit-risk-train.csv
  (the demo GBDT's training split, made by scripts/train-demo.ts from data/credit_data.csv) with the
  demo's settings where they map: 100 trees, depth 3, learning rate 0.1, min_samples_leaf 20,
  random_state 0 (deterministic). The same columns: numerics as they are, one-hot categoricals in the
  manifest's category order. GradientBoostingClassifier (scikit-learn 1.2) has no learned missing
  direction, so a missing Income/Assets/Debt is imputed with the training median; the demo passes NaN.
- Validation: one pydantic model built from the manifest's feature schema (types, min/max, the
  category sets, which features may be missing and how they are imputed); a bad row is a 422, as
  FastAPI answers.
- Body: {"features": {...}} (one row) or {"instances": [{...}, ...]} (rows), with the optional
  "version"/"alias" fields our API takes (accepted and ignored: one model here).
- Answer: {"model", "version", "prediction": {"label", "probabilities"}} or {"predictions": [...]}.

Run: /usr/bin/python3 scripts/peer/server.py --port 8845 (one uvicorn worker, no access log).
"""
import argparse
import csv
import json
import os
from typing import Dict, List, Literal, Optional

import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel, Extra, confloat, conint, create_model
from sklearn.ensemble import GradientBoostingClassifier

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MANIFEST = json.load(open(os.path.join(ROOT, "models", "credit-risk-gbt.manifest.json")))
FEATURES = MANIFEST["featureSchema"]["features"]
COLUMNS = MANIFEST["featureSchema"]["input"]["columns"]
OPTS = {"n_estimators": 100, "max_depth": 3, "learning_rate": 0.1, "min_samples_leaf": 20, "random_state": 0}


def row_model():
    """A pydantic model of one row, from the manifest's feature schema."""
    fields = {}
    for f in FEATURES:
        if f["type"] == "categorical":
            typ = Literal[tuple(f["categories"])]
        elif f["type"] == "integer":
            typ = conint(ge=f["min"], le=f["max"])
        else:
            typ = confloat(ge=f["min"], le=f["max"])
        required = f["missing"]["policy"] == "reject"
        fields[f["name"]] = (typ, ...) if required else (Optional[typ], None)
    return create_model("Row", __config__=type("Config", (), {"extra": Extra.forbid}), **fields)


Row = row_model()


class PredictBody(BaseModel):
    features: Optional[Row] = None
    instances: Optional[List[Row]] = None
    version: Optional[str] = None
    alias: Optional[str] = None

    class Config:
        extra = Extra.forbid


def load_training():
    with open(os.path.join(ROOT, "models", "credit-risk-train.csv")) as fh:
        rows = list(csv.DictReader(fh))
    y = np.array([int(r["bad"]) for r in rows])
    parsed = []
    for r in rows:
        parsed.append({f["name"]: (None if r[f["name"]] == "" else (r[f["name"]] if f["type"] == "categorical" else float(r[f["name"]]))) for f in FEATURES})
    return parsed, y


TRAIN, Y = load_training()
# Fill values: the manifest's imputation for categoricals, the training median for numerics ("nan" policy).
FILL = {}
for f in FEATURES:
    if f["missing"]["policy"] == "impute":
        FILL[f["name"]] = f["missing"]["value"]
    elif f["missing"]["policy"] == "nan":
        FILL[f["name"]] = float(np.median([r[f["name"]] for r in TRAIN if r[f["name"]] is not None]))
# Column plan: (feature, category or None) in the ONNX input's column order.
PLAN = [(c["feature"], c.get("oneHot")) for c in COLUMNS]


def encode(rows) -> np.ndarray:
    """Rows (dicts) to the dense float matrix the model takes."""
    x = np.empty((len(rows), len(PLAN)), dtype=np.float64)
    for i, r in enumerate(rows):
        for j, (name, cat) in enumerate(PLAN):
            v = r.get(name)
            if v is None:
                v = FILL[name]
            x[i, j] = (1.0 if v == cat else 0.0) if cat is not None else v
    return x


MODEL = GradientBoostingClassifier(**OPTS).fit(encode(TRAIN), Y)
CLASSES = [int(c) for c in MODEL.classes_]
app = FastAPI()


def answer(p) -> Dict:
    return {"label": CLASSES[int(np.argmax(p))], "probabilities": {str(c): float(v) for c, v in zip(CLASSES, p)}}


@app.get("/health")
def health():
    return {"status": "ok"}


@app.post("/v1/models/credit-risk/predict")
def predict(body: PredictBody):
    single = body.features is not None
    rows = [body.features.dict()] if single else [r.dict() for r in (body.instances or [])]
    if not rows:
        return {"detail": "give features or instances"}
    proba = MODEL.predict_proba(encode(rows))
    base = {"model": "credit-risk", "version": "peer"}
    return {**base, "prediction": answer(proba[0])} if single else {**base, "predictions": [answer(p) for p in proba]}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8845)
    args = ap.parse_args()
    uvicorn.run(app, host="127.0.0.1", port=args.port, workers=1, access_log=False, log_level="warning")
