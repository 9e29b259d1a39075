"""The Airflow provider of airflow-imaging-privacy: hooks, operators and provider info, kept thin."""
