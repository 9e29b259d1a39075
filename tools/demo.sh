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
export AIRFLOW_CONN_IMAGING_PRIVACY_LEDGER_DEFAULT="{\"conn_type\": \"imaging_privacy_ledger\", \"extra\": {\"path\": \"$ROOT/data/ledger.db\"}}"

echo "== privacy-budget ledger: dataset demo-cohort, zCDP cap rho=2 (four releases of rho=0.5)"
"$BIN/imaging-privacy" budget init demo-cohort --accounting zcdp --cap 2 --delta 1e-6 --ledger "sqlite:///$ROOT/data/ledger.db"
"$BIN/imaging-privacy" budget init multi-site-cohort --accounting zcdp --cap 3 --delta 1e-6 --ledger "sqlite:///$ROOT/data/ledger.db"

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
dpr=$(ls -d "$ROOT"/data/releases/dp-release-* | tail -n 1)
echo "== dp release: $dpr/release.json"
"$BIN/python" - "$dpr/release.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
loss = b["loss"]
print(f"   {b['accounting']} rho {loss['value']} = (epsilon {loss['epsilon_delta']['epsilon']:.3g}, "
      f"delta {loss['epsilon_delta']['delta']:g})-DP per patient (max {b['privacy_unit']['max_records_per_patient']} records)")
for q in b["queries"]:
    s = q["statistics"][0]
    shown = s.get("values", [])[:6] if "values" in s else f"image {s['file']['shape']} in {s['file']['name']}"
    print(f"   {q['name']:<20} {s['noise']['mechanism']} +-{s['interval_95']:.3g} (95%): {shown}")
PY
"$BIN/imaging-privacy" budget show demo-cohort --ledger "sqlite:///$ROOT/data/ledger.db"
"$BIN/imaging-privacy" budget verify demo-cohort --ledger "sqlite:///$ROOT/data/ledger.db"
echo "== airflow dags test cross_site_statistics (4 hospitals allowed, 3 upload; 2-of-3 threshold key)"
"$BIN/airflow" dags test cross_site_statistics -c '{"key_bits": 2048}' > "$ROOT/airflow/cross-site.log" 2>&1 || {
  tail -80 "$ROOT/airflow/cross-site.log"; exit 1; }
round=$(ls -d "$ROOT"/data/cross-site/exchange/round-* | tail -n 1)
"$BIN/python" - "$round" <<'PY'
import json, sys
from pathlib import Path
folder = Path(sys.argv[1])
aggregate = json.loads((folder / "aggregate.json").read_text())["payload"]
result = json.loads((folder / "result.json").read_text())["payload"]
noise = result["noise"]
print(f"   round {folder.name}: {result['sites_accepted']} uploads accepted {result['senders']}, "
      f"{len(aggregate['rejected'])} rejected; decrypted by key holders {result['holders']}")
print(f"   {noise['mechanism']}: sigma^2 {noise['sigma_sq']:g} from >= {noise['honest_sites']} honest sites, "
      f"rho {noise['rho']:.4g} = (epsilon {noise['epsilon_delta']['epsilon']:.3g}, delta {noise['epsilon_delta']['delta']:g})")
print(f"   noisy totals: {result['totals']}")
PY
"$BIN/imaging-privacy" budget show multi-site-cohort --ledger "sqlite:///$ROOT/data/ledger.db"

echo "== independent leak check (imaging-privacy verify)"
"$BIN/imaging-privacy" verify "$ROOT/data/input" "$release" \
  --option retain-long-modified-dates --option retain-patient-characteristics --option clean-descriptors
echo "== end-to-end audit of the cross-site exchange (imaging-privacy audit)"
"$BIN/imaging-privacy" audit "$ROOT/data/cross-site/exchange" --ledger "sqlite:///$ROOT/data/ledger.db" --secret-file "$ROOT/secret.key"
echo "== end-to-end audit (imaging-privacy audit)"
"$BIN/imaging-privacy" audit "$ROOT/data/releases" --ledger "sqlite:///$ROOT/data/ledger.db" --secret-file "$ROOT/secret.key"
echo "== release report (one self-contained HTML page: lineage, budget, DP statistics, before/after, de-id)"
"$BIN/imaging-privacy" report "$ROOT/data/releases" --html "$ROOT/report.html" --ledger "sqlite:///$ROOT/data/ledger.db"
