-- Runs once when the PostgreSQL volume is created: separate databases for Airflow's metadata
-- and for the warehouse, each with its own owner, and the warehouse's reader roles. Passwords come
-- from the container environment (see docker-compose.yml and .env.example); none is stored here.
-- Grants on the warehouse's schemas are made by the pipeline after each publication
-- (customer_mdm.security; `mdm roles apply` to change passwords later).
\set airflow_password `echo "$AIRFLOW_DB_PASSWORD"`
\set mdm_password `echo "$MDM_PG_PASSWORD"`
\set steward_password `echo "${MDM_PG_STEWARD_PASSWORD:-}"`
\set bi_password `echo "${MDM_PG_BI_PASSWORD:-}"`
\set api_password `echo "${MDM_PG_API_PASSWORD:-}"`
create role airflow login password :'airflow_password';
create database airflow owner airflow;
create role mdm_pipeline login password :'mdm_password';
create database mdm owner mdm_pipeline;

-- data stewards and BI tools: NOLOGIN unless a password is set
create role mdm_steward nologin;
create role bi_reader nologin;
select :'steward_password' <> '' as steward_login, :'bi_password' <> '' as bi_login \gset
\if :steward_login
alter role mdm_steward login password :'steward_password';
\endif
\if :bi_login
alter role bi_reader login password :'bi_password';
\endif
-- the hub server (mdm serve): reads schema serving, writes only schema hub
create role mdm_api nologin;
select :'api_password' <> '' as api_login \gset
\if :api_login
alter role mdm_api login password :'api_password';
\endif

-- only the roles meant to connect may connect
revoke all on database airflow from public;
revoke all on database mdm from public;
grant connect on database mdm to mdm_steward, bi_reader, mdm_api;
