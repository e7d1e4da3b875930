"""Developer tooling of customer-mdm, kept out of the runtime package and the Airflow image.

The demo-data generator (``mdm-dev generate``), ``make bench`` and its hub and console parts, a
real local PostgreSQL server for tests and smoke checks (``pgserver``), the pytest fixtures that
start it, the alert receivers the tests listen with and the secret scan. It imports the runtime
package ``customer_mdm``; the runtime package never imports it (tests/devtools/test_packaging.py).
Installed by ``make install`` (``pip install -e ./devtools``) next to the runtime package.
"""
