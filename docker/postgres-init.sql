-- Runs once when the PostgreSQL volume is created: separate databases for Airflow's metadata
-- and for the warehouse, each with its own owner. Passwords come from the container environment
-- (see docker-compose.yml and .env.example); none is stored here.
\set airflow_password `echo "$AIRFLOW_DB_PASSWORD"`
\set mdm_password `echo "$MDM_PG_PASSWORD"`
create role airflow login password :'airflow_password';
create database airflow owner airflow;
create role mdm_pipeline login password :'mdm_password';
create database mdm owner mdm_pipeline;
