-- compose.test.yaml only: the role and database the test suite connects to by default
-- (postgresql://postgres@127.0.0.1:5432/postgres). Insecure mode: no password exists or is needed.
-- The fixtures create and drop one database per test, so the role is an admin.
CREATE USER IF NOT EXISTS postgres;
GRANT admin TO postgres;
CREATE DATABASE IF NOT EXISTS postgres;
