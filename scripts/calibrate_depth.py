"""Write resources/data/depth_model.json: the synthetic-depth model, calibrated on real books.

    python scripts/calibrate_depth.py [--depth resources/data/btcusdt_perp_binance_depth15_2windows.jsonl.gz]

Reads every snapshot of the shipped Binance BTCUSDT depth recording (top 15 levels after each
update) and writes the quantiles of neighbouring-level gaps (bps) and of each level's size.
"""
from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from trading.depth_model import calibrate  # noqa: E402

DEPTH = ROOT / "resources" / "data" / "btcusdt_perp_binance_depth15_2windows.jsonl.gz"
OUT = ROOT / "resources" / "data" / "depth_model.json"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--depth", type=Path, default=DEPTH)
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    with gzip.open(a.depth, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    model = calibrate(rows)
    model["source"] = (f"calibrated on {len(rows):,} Binance USDT-M BTCUSDT perpetual depth "
                       f"snapshots (top 15 levels), {a.depth.name}")
    a.out.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {a.out}: {len(rows):,} snapshots, gap median "
          f"{model['gap_bps'][10]:.4f} bps, level-1 size median {model['sizes'][0][10]:.3f} BTC")


if __name__ == "__main__":
    main()
