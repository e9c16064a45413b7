-- One clock per decision (docs/design.md#one-clock-per-decision).
--
-- Every time another replica relies on (claim times and the windows they start, budget
-- reservations and their TTL, scan leases, proposal creation and expiry) is taken from the
-- database's clock, oracle.clock(), inside the statement that decides, once the deciding
-- transaction holds its locks. No replica's own clock decides any of them.
--
-- oracle.clock() is clock_timestamp() (the server's wall clock when the expression runs, not
-- now(): that is the transaction's start, taken before any lock wait) moved by the one row of
-- oracle.database_settings. Only the migration owner (the admin) can write that row; no service
-- role may. Production never writes it: offset 0, not frozen. Tests move the whole database's
-- clock through the admin connection (tests/support/database_clock.py) instead of giving a
-- replica a private clock:
--   clock_offset     added to clock_timestamp() (tests shift time forward or back);
--   clock_frozen_at  when set, oracle.clock() returns exactly it (tests put a window's edge on
--                    an exact microsecond, as a manual clock would).
-- proposal_max_lifetime caps the lifetime a scanner may ask for a proposal (migration 0096).

CREATE TABLE oracle.database_settings (
  id                    boolean     PRIMARY KEY DEFAULT true CHECK (id),
  clock_offset          interval    NOT NULL DEFAULT '0',
  clock_frozen_at       timestamptz,
  proposal_max_lifetime interval    NOT NULL DEFAULT '1 hour' CHECK (proposal_max_lifetime > '0')
);
INSERT INTO oracle.database_settings (id) VALUES (true);
REVOKE ALL ON oracle.database_settings FROM PUBLIC;
GRANT SELECT ON oracle.database_settings TO oracle_scanner, oracle_executor, oracle_budget, oracle_definer;

-- VOLATILE (clock_timestamp is): a statement that needs one instant reads it once, e.g. in a
-- scalar subquery, which PostgreSQL evaluates once per statement.
CREATE FUNCTION oracle.clock()
  RETURNS timestamptz
  LANGUAGE sql VOLATILE
  SET search_path = oracle, pg_temp
AS $$
  SELECT COALESCE(s.clock_frozen_at, clock_timestamp() + s.clock_offset) FROM oracle.database_settings s WHERE s.id
$$;
REVOKE ALL ON FUNCTION oracle.clock() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.clock() TO oracle_scanner, oracle_executor, oracle_budget, oracle_definer;

-- ---------------------------------------------------------------- scanner: leases
-- The lease functions lose their p_now parameter: a caller could pass any time (a scanner with
-- a clock running ahead took live leases of other instances). The time is the database's.
DROP FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz);
DROP FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz);
DROP FUNCTION oracle.lease_scan_jobs(uuid[], text, integer, timestamptz);

-- SECURITY INVOKER, as before: from claim_scan_job it runs under the scanner's row-level
-- security, from the SECURITY DEFINER claim_due_scan_jobs as that function's owner. The clock is
-- read in the UPDATE that takes the lease (its rows are locked by the caller's FOR UPDATE or by
-- this UPDATE itself).
CREATE FUNCTION oracle.lease_scan_jobs(p_job_ids uuid[], p_instance text, p_lease_seconds integer)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
  WITH t AS MATERIALIZED (SELECT oracle.clock() AS now)
  UPDATE oracle.scan_jobs s
     SET locked_by = p_instance,
         lock_expires_at = t.now + make_interval(secs => p_lease_seconds),
         fencing_token = s.fencing_token + 1,
         heartbeat_at = t.now
    FROM t
   WHERE s.job_id = ANY (p_job_ids)
     AND oracle.scan_job_lease_free(s.lock_expires_at, t.now)
  RETURNING s.*
$$;

CREATE FUNCTION oracle.claim_due_scan_jobs(p_instance text, p_limit integer, p_lease_seconds integer)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT * FROM oracle.lease_scan_jobs(
    ARRAY(SELECT j.job_id FROM oracle.scan_jobs j, (SELECT oracle.clock() AS now) t
           WHERE NOT j.paused AND j.next_run_at <= t.now
             AND oracle.scan_job_lease_free(j.lock_expires_at, t.now)
           ORDER BY j.next_run_at
           LIMIT GREATEST(p_limit, 0)
           FOR UPDATE OF j SKIP LOCKED),
    p_instance, p_lease_seconds)
$$;

CREATE FUNCTION oracle.claim_scan_job(p_job_id uuid, p_instance text, p_lease_seconds integer)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
  SELECT * FROM oracle.lease_scan_jobs(ARRAY[p_job_id], p_instance, p_lease_seconds)
$$;

ALTER FUNCTION oracle.claim_due_scan_jobs(text, integer, integer) OWNER TO oracle_definer;
ALTER FUNCTION oracle.lease_scan_jobs(uuid[], text, integer) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.claim_due_scan_jobs(text, integer, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.claim_scan_job(uuid, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.lease_scan_jobs(uuid[], text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.claim_due_scan_jobs(text, integer, integer) TO oracle_scanner;
GRANT EXECUTE ON FUNCTION oracle.claim_scan_job(uuid, text, integer) TO oracle_scanner;
GRANT EXECUTE ON FUNCTION oracle.lease_scan_jobs(uuid[], text, integer) TO oracle_scanner;

-- ---------------------------------------------------------------- expiry sweeps
DROP FUNCTION oracle.expire_due_proposals(timestamptz);
CREATE FUNCTION oracle.expire_due_proposals()
  RETURNS integer
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH e AS (
    UPDATE oracle.trade_proposals SET status = 'expired'
     WHERE status = 'open' AND expires_at <= (SELECT oracle.clock())
    RETURNING 1)
  SELECT count(*)::integer FROM e
$$;
ALTER FUNCTION oracle.expire_due_proposals() OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.expire_due_proposals() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.expire_due_proposals() TO oracle_scanner;

DROP FUNCTION oracle.expire_stale_reservations(timestamptz);
CREATE FUNCTION oracle.expire_stale_reservations()
  RETURNS integer
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  WITH e AS (
    UPDATE oracle.gpt_usage_log SET status = 'expired'
     WHERE status = 'reserved' AND expires_at <= (SELECT oracle.clock())
    RETURNING 1)
  SELECT count(*)::integer FROM e
$$;
ALTER FUNCTION oracle.expire_stale_reservations() OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.expire_stale_reservations() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.expire_stale_reservations() TO oracle_budget;
