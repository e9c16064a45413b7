-- Scanner: what a job's last run did, and the claim of one named job.
--
-- Every run is recorded in the audit trail (kind scan.completed / scan.failed, written in the
-- same fenced transaction as the run's proposals and its rescheduling); last_outcomes keeps the
-- latest run's per-market outcomes on the job itself, so "why was nothing proposed?"
-- (HOLD, BUDGET_EXHAUSTED, LLM_INVALID_JSON, ...) is one read away.

ALTER TABLE oracle.scan_jobs
  ADD COLUMN IF NOT EXISTS last_outcomes jsonb NOT NULL DEFAULT '[]'::jsonb;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'scan_jobs_last_outcomes_array') THEN
    ALTER TABLE oracle.scan_jobs ADD CONSTRAINT scan_jobs_last_outcomes_array
      CHECK (jsonb_typeof(last_outcomes) = 'array');
  END IF;
END $$;

-- Claims one named job of the current user (RunScan on a job) with exactly the lease rules of
-- oracle.claim_due_scan_jobs: a free or expired lease only, fencing token incremented. SECURITY
-- INVOKER, so row-level security limits it to the caller's own user. Returns no row when the job
-- does not exist for this user or another instance holds a live lease on it.
CREATE OR REPLACE FUNCTION oracle.claim_scan_job(p_job_id uuid, p_instance text,
                                                 p_lease_seconds integer, p_now timestamptz)
  RETURNS TABLE (job_id uuid, user_id text, fencing_token bigint)
  LANGUAGE sql SECURITY INVOKER
  SET search_path = oracle, pg_temp
AS $$
  UPDATE oracle.scan_jobs s
     SET locked_by = p_instance,
         lock_expires_at = p_now + make_interval(secs => p_lease_seconds),
         fencing_token = s.fencing_token + 1,
         heartbeat_at = p_now
   WHERE s.job_id = p_job_id
     AND (s.lock_expires_at IS NULL OR s.lock_expires_at <= p_now)
  RETURNING s.job_id, s.user_id::text, s.fencing_token
$$;
REVOKE ALL ON FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION oracle.claim_scan_job(uuid, text, integer, timestamptz) TO oracle_scanner;
