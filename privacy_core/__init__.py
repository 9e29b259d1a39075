"""privacy_core: the plain-Python privacy library behind airflow-imaging-privacy (never imports Airflow)."""

__version__ = "0.1.0"
