-- The role ckan-datastore reads CKAN's main database with (access control, strategy A).
-- It sees only the columns the access check needs: no password hashes, e-mails, API keys or
-- plugin extras. Run it as a superuser (or the database owner) on CKAN's main database, then
-- give the role a password and the server its URL:
--
--   psql -v ON_ERROR_STOP=1 -d ckan_default -f authz_role.sql
--   psql -d ckan_default -c "ALTER ROLE datastore_authz PASSWORD 'choose-one'"
--   ckan-datastore serve --ckan-ini ckan.ini \
--       --ckan-db-url postgresql://datastore_authz:choose-one@dbhost/ckan_default
--
-- Plain SQL (the tests run this very file); re-running it is harmless.
DO $$BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'datastore_authz') THEN
    CREATE ROLE datastore_authz LOGIN;
  END IF;
  EXECUTE format('GRANT CONNECT ON DATABASE %I TO datastore_authz', current_database());
END$$;
GRANT USAGE ON SCHEMA public TO datastore_authz;
GRANT SELECT (id, user_id)                                     ON api_token      TO datastore_authz;
GRANT SELECT (id, name, state, sysadmin)                       ON "user"         TO datastore_authz;
GRANT SELECT (id, name, package_id, state)                     ON resource       TO datastore_authz;
GRANT SELECT (id, state, private, owner_org, creator_user_id)  ON package        TO datastore_authz;
GRANT SELECT (id, type, is_organization, state)                ON "group"        TO datastore_authz;
GRANT SELECT (group_id, table_id, table_name, capacity, state) ON member         TO datastore_authz;
GRANT SELECT (package_id, user_id)                             ON package_member TO datastore_authz;
-- The DataTables view's configuration (its resource, filters and shown fields).
GRANT SELECT (id, resource_id, view_type, config)              ON resource_view  TO datastore_authz;
