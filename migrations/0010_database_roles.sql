-- Database roles (terraform/sql.tf creates the login users; this grants them): the
-- functions run as reel_app (read and write rows, no DDL), health as reel_readonly (read
-- only), and migrations as reel_migrate, which owns what they create. Where a role does
-- not exist (development, tests, an external database without them) nothing is granted.
-- Also creates the pgaudit extension where the server offers it (Cloud SQL with
-- cloudsql.enable_pgaudit = on); pgaudit.log (sql.tf) then decides what is audited.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reel_app') THEN
        GRANT USAGE ON SCHEMA public TO reel_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO reel_app;
        GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO reel_app;
        GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO reel_app;
        -- Tables and sequences later migrations create (by the role running them).
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO reel_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO reel_app;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reel_readonly') THEN
        GRANT USAGE ON SCHEMA public TO reel_readonly;
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO reel_readonly;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO reel_readonly;
        ALTER ROLE reel_readonly SET default_transaction_read_only = on;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgaudit') THEN
        CREATE EXTENSION IF NOT EXISTS pgaudit;
    END IF;
END
$$;
