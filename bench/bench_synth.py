"""Benchmark: `make synth` wall time (both environments; goal <= 20 s) and the size of every Lambda asset.

Run from the repository root: `.venv/bin/python bench/bench_synth.py [--compare-validation]`.
The machine is shared and noisy, so besides absolute times it prints ratios measured side by side in this
run: the CLI's share of `make synth` (vs. the same synthesis in-process), and with `--compare-validation`
what CDK's built-in CloudFormation validation (off in app.py; cfn-lint gates instead) would cost.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 20.0
ENVIRONMENTS = ("dev", "prod")


def _in_process_synth(env: str, builtin_validation: bool) -> float:
    """Seconds for one `app.build` + synth in a fresh interpreter (jsii start-up included, CLI excluded)."""
    script = f"""
import json, os, sys, tempfile, time
sys.path.insert(0, {str(ROOT)!r})
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
start = time.perf_counter()
import aws_cdk as cdk
import app as cdk_app
context = json.loads(open({str(ROOT / 'cdk.json')!r}).read())["context"]
context["env"] = {env!r}
with tempfile.TemporaryDirectory() as out:
    application = cdk.App(context=context, outdir=out, builtin_cloud_formation_validation={builtin_validation})
    cdk_app.build(application, {{}})
    application.synth()
print(time.perf_counter() - start)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def _make_synth() -> float:
    start = time.perf_counter()
    subprocess.run(["make", "--no-print-directory", "synth"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return time.perf_counter() - start


def _zipped_size(directory: Path) -> int:
    """What Lambda receives: the asset directory deflated into one zip (as the CDK CLI uploads it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(directory))
    return buffer.tell()


def lambda_assets(cdk_out: Path) -> list[dict[str, object]]:
    """Every Lambda function's code asset in each synthesized environment under cdk_out/<env>/."""
    rows = []
    for template_path in sorted(cdk_out.glob("*/*.template.json")):
        assembly = template_path.parent
        manifest_path = assembly / template_path.name.replace(".template.json", ".assets.json")
        files = json.loads(manifest_path.read_text()).get("files", {}) if manifest_path.exists() else {}
        template = json.loads(template_path.read_text())
        for logical_id, resource in template.get("Resources", {}).items():
            if resource.get("Type") != "AWS::Lambda::Function":
                continue
            key = json.dumps(resource.get("Properties", {}).get("Code", {}).get("S3Key", ""))
            asset_hash = next((h for h in files if h in key), None)
            if asset_hash is None:
                continue  # inline code or an image: no file asset
            directory = assembly / files[asset_hash]["source"]["path"]
            raw = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else (
                directory.stat().st_size)
            zipped = _zipped_size(directory) if directory.is_dir() else raw
            rows.append({"environment": assembly.name, "function": logical_id, "asset": directory.name,
                         "files": sum(1 for p in directory.rglob("*") if p.is_file()) if directory.is_dir() else 1,
                         "bytes": raw, "zipped_bytes": zipped})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare-validation", action="store_true",
                        help="also time one synthesis with CDK's built-in CloudFormation validation on")
    args = parser.parse_args()
    os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

    load_before = os.getloadavg()[0]
    make_seconds = _make_synth()
    in_process = {env: _in_process_synth(env, builtin_validation=False) for env in ENVIRONMENTS}
    in_process_total = sum(in_process.values())
    print(f"make synth (dev + prod, CLI, offline, no Docker): {make_seconds:6.2f} s   goal <= {GOAL_SECONDS:.0f} s"
          f"   {'OK' if make_seconds <= GOAL_SECONDS else 'OVER GOAL'}   (1-min load average {load_before:.1f})")
    for env, seconds in in_process.items():
        print(f"  in-process synth {env:<5}: {seconds:6.2f} s")
    print(f"  ratio make synth / in-process synth: {make_seconds / in_process_total:4.2f}x  (CDK CLI overhead)")
    if args.compare_validation:
        with_validation = _in_process_synth("dev", builtin_validation=True)
        print(f"  dev with CDK built-in CloudFormation validation: {with_validation:6.2f} s   ratio vs off: "
              f"{with_validation / in_process['dev']:4.2f}x")

    rows = lambda_assets(ROOT / "cdk.out")
    print(f"Lambda assets in cdk.out: {len(rows)}")
    for row in rows:
        print(f"  {row['environment']:<5} {row['function']:<58} {row['files']:>4} files "
              f"{row['bytes'] / 1024:9.1f} KiB  zipped {row['zipped_bytes'] / 1024:8.1f} KiB  ({row['asset']})")
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False, prefix="bench_synth_") as handle:
        json.dump({"make_synth_seconds": make_seconds, "in_process_seconds": in_process, "lambda_assets": rows},
                  handle, indent=2)
    print(f"results: {handle.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
