"""customer_mdm: the customer master-data governance platform.

Every pipeline step is an importable function here; the Airflow DAGs in ``dags/`` and the
``mdm`` command line both call them.
"""

__version__ = "0.1.0"
