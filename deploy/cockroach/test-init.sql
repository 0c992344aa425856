-- compose.test.yaml only: the role and database the test suite connects to by default
-- (postgresql://postgres@127.0.0.1:5432/postgres). Insecure mode: no password exists or is needed.
-- The fixtures create and drop one database per test, so the role is an admin.
CREATE USER IF NOT EXISTS postgres;
GRANT admin TO postgres;
CREATE DATABASE IF NOT EXISTS postgres;
-- Dropped databases keep their data until garbage collection (25 hours by default): a long test
-- run on an in-memory store would fill it. Ten minutes is enough for a throwaway cluster.
ALTER RANGE default CONFIGURE ZONE USING gc.ttlseconds = 600;
