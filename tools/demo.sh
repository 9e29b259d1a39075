#!/usr/bin/env bash
# `make demo`: sample data with PHI everywhere -> the example DAG under `airflow dags test` -> a verified
# release with its lineage record. Everything lives under .demo/ (git-ignored); rerunning starts afresh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD/.demo"
BIN="$PWD/.venv/bin"
rm -rf "$ROOT/data" "$ROOT/airflow"
mkdir -p "$ROOT/data" "$ROOT/airflow"

# A fresh random secret for the demo; real deployments keep theirs in a secrets backend.
if [ ! -s "$ROOT/secret.key" ]; then
  (umask 077 && "$BIN/python" -c "import secrets; print(secrets.token_hex(32))" > "$ROOT/secret.key")
fi

echo "== generating sample DICOM with PHI in every PS3.15 Table E.1-1 attribute"
"$BIN/python" -m privacy_core.samples "$ROOT/data/input" --patients 4 --bad-files

export AIRFLOW_HOME="$ROOT/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$PWD/dags"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__UNIT_TEST_MODE=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$ROOT/airflow/airflow.db"
export IMAGING_PRIVACY_DEMO_ROOT="$ROOT/data"
export AIRFLOW_CONN_IMAGING_PRIVACY_DEFAULT="{\"conn_type\": \"imaging_privacy_key\", \"extra\": {\"secret_file\": \"$ROOT/secret.key\"}}"

echo "== airflow db migrate (SQLite under .demo/airflow)"
"$BIN/airflow" db migrate > "$ROOT/airflow/migrate.log" 2>&1 || { tail -50 "$ROOT/airflow/migrate.log"; exit 1; }

echo "== airflow dags test dicom_deid_example"
"$BIN/airflow" dags test dicom_deid_example > "$ROOT/airflow/dags-test.log" 2>&1 || {
  tail -80 "$ROOT/airflow/dags-test.log"; exit 1; }
grep -q "state=success\|DagRunState.SUCCESS\|success" "$ROOT/airflow/dags-test.log"

release=$(ls -d "$ROOT"/data/releases/release-* | tail -n 1)
echo "== release: $release"
echo "   files:   $(find "$release" -name '*.dcm' | wc -l) de-identified DICOM files"
echo "   lineage: $(ls "$release"/lineage/*.json)"
echo "   summary: $(ls "$ROOT"/data/releases/summary-*.json)"
"$BIN/python" - "$ROOT"/data/releases/summary-*.json <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"   processed {s['processed']}, written {s['written']}, quarantined {s['quarantined']} {s['reasons']}")
print(f"   {s['files_per_second']} files/s, profile {s['profile']}, key fingerprint {s['key_fingerprint']}")
PY
store=$(ls -d "$ROOT"/data/releases/zarr-* | tail -n 1)
dp=$(ls -d "$ROOT"/data/releases/dp-pix-* | tail -n 1)
echo "== zarr:    $store ($(find "$store" -maxdepth 1 -name '2.25.*' | wc -l) series arrays, OME-NGFF 0.5)"
echo "== dp-pix:  $dp ($(find "$dp" -maxdepth 1 -name '2.25.*' | wc -l) arrays)"
"$BIN/python" - "$dp"/lineage/*.json <<'PY'
import json, sys
dp = json.load(open(sys.argv[1]))["privacy"]["pixels"]["dp"]
print(f"   epsilon {dp['epsilon']}, m {dp['m']}, b {dp['block']}, range {dp['value_range']:g}: "
      f"Laplace scale {dp['noise_scale']:.4g} per cell, noise from {dp['noise_source']}")
PY
echo "== independent leak check (imaging-privacy verify)"
"$BIN/imaging-privacy" verify "$ROOT/data/input" "$release" \
  --option retain-long-modified-dates --option retain-patient-characteristics --option clean-descriptors
