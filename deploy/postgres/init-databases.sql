-- Runs once, when the compose postgres volume is first created.
-- One role and one database per service: a service can neither read nor
-- migrate another service's tables. Development passwords only; production
-- credentials live in the Kubernetes Secret (deploy/k8s/secret.example.yaml).

CREATE ROLE inventory LOGIN PASSWORD 'inventory';
CREATE DATABASE inventory OWNER inventory;

CREATE ROLE shipping LOGIN PASSWORD 'shipping';
CREATE DATABASE shipping OWNER shipping;

CREATE ROLE support LOGIN PASSWORD 'support';
CREATE DATABASE support OWNER support;

-- PostgreSQL 15+ no longer lets every role create objects in "public";
-- make each owner the owner of its database's public schema.
\connect inventory
ALTER SCHEMA public OWNER TO inventory;
\connect shipping
ALTER SCHEMA public OWNER TO shipping;
\connect support
ALTER SCHEMA public OWNER TO support;
