-- Scanner: the lease rule written once, and claims that return the claimed job whole.
--
-- Until now oracle.claim_due_scan_jobs (0001) and oracle.claim_scan_job (0030) each spelled out
-- when a lease is free and what taking one writes. Both now call the two functions below, so the
-- rule has one home:
--   oracle.scan_job_lease_free(lock_expires_at, now)  a lease is free when it was never taken,
--                                                     was released, or has run out;
--   oracle.lease_scan_jobs(ids, instance, secs, now)  take the lease on those of ``ids`` whose
--                                                     lease is free: locked_by, lock expiry,
--                                                     fencing token + 1, heartbeat.
-- Both claims return the claimed job rows whole, so a run starts from the row its claim wrote
-- and does not lock the job again just to read it (services/scanner/lease.py).

CREATE OR REPLACE FUNCTION oracle.scan_job_lease_free(p_lock_expires_at timestamptz, p_now timestamptz)
  RETURNS boolean
  LANGUAGE sql IMMUTABLE
  SET search_path = oracle, pg_temp
AS $$
  SELECT p_lock_expires_at IS NULL OR p_lock_expires_at <= p_now
$$;

-- SECURITY INVOKER: from claim_scan_job it runs under the scanner's row-level security, from the
-- SECURITY DEFINER claim_due_scan_jobs as that function's owner.
CREATE OR REPLACE FUNCTION oracle.lease_scan_jobs(p_job_ids uuid[], p_instance text,
                                                  p_lease_seconds integer, p_now timestamptz)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
  UPDATE oracle.scan_jobs s
     SET locked_by = p_instance,
         lock_expires_at = p_now + make_interval(secs => p_lease_seconds),
         fencing_token = s.fencing_token + 1,
         heartbeat_at = p_now
   WHERE s.job_id = ANY (p_job_ids)
     AND oracle.scan_job_lease_free(s.lock_expires_at, p_now)
  RETURNING s.*
$$;

-- The return type changes (the whole row), which CREATE OR REPLACE cannot do.
DROP FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz);
DROP FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz);

CREATE FUNCTION oracle.claim_due_scan_jobs(p_instance text, p_limit integer,
                                           p_lease_seconds integer, p_now timestamptz)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY DEFINER
  SET search_path = oracle, pg_temp
AS $$
  SELECT * FROM oracle.lease_scan_jobs(
    ARRAY(SELECT j.job_id FROM oracle.scan_jobs j
           WHERE NOT j.paused AND j.next_run_at <= p_now
             AND oracle.scan_job_lease_free(j.lock_expires_at, p_now)
           ORDER BY j.next_run_at
           LIMIT GREATEST(p_limit, 0)
           FOR UPDATE SKIP LOCKED),
    p_instance, p_lease_seconds, p_now)
$$;

-- Claims one named job of the current user (RunScan on a job). SECURITY INVOKER, so row-level
-- security limits it to the caller's own user. No row when the job does not exist for this user
-- or another instance holds a live lease on it.
CREATE FUNCTION oracle.claim_scan_job(p_job_id uuid, p_instance text,
                                      p_lease_seconds integer, p_now timestamptz)
  RETURNS SETOF oracle.scan_jobs
  LANGUAGE sql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
  SELECT * FROM oracle.lease_scan_jobs(ARRAY[p_job_id], p_instance, p_lease_seconds, p_now)
$$;

ALTER FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz) OWNER TO oracle_definer;
ALTER FUNCTION oracle.scan_job_lease_free(timestamptz, timestamptz) OWNER TO oracle_definer;
ALTER FUNCTION oracle.lease_scan_jobs(uuid[], text, integer, timestamptz) OWNER TO oracle_definer;
REVOKE ALL ON FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.scan_job_lease_free(timestamptz, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION oracle.lease_scan_jobs(uuid[], text, integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.claim_due_scan_jobs(text, integer, integer, timestamptz) TO oracle_scanner;
GRANT EXECUTE ON FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz) TO oracle_scanner;
GRANT EXECUTE ON FUNCTION oracle.scan_job_lease_free(timestamptz, timestamptz) TO oracle_scanner;
GRANT EXECUTE ON FUNCTION oracle.lease_scan_jobs(uuid[], text, integer, timestamptz) TO oracle_scanner;
