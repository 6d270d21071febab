-- enqueue_jobs: enqueue a batch of arq jobs in one call, each unless already known.
-- Runs on the job-queue Redis (ROTATOR_QUEUE_URL), not the data store. Same effect, job by
-- job, as arq's ArqRedis.enqueue_job(..., _job_id=id): a job whose id is queued, running
-- (arq:job:<id> exists) or finished with its result kept (arq:result:<id>) is skipped, so
-- enqueueing an event twice (a pump died before XACK and another reclaimed the entry)
-- delivers it once.
-- KEYS[1] arq queue (ZSET job id -> score ms)
-- KEYS[2i], KEYS[2i+1] arq:job:<id_i>, arq:result:<id_i>   (i = 1..n)
-- ARGV[1] score: when the jobs are due (ms since the epoch)
-- ARGV[2] job key expiry (ms)
-- ARGV[1 + 2i], ARGV[2 + 2i] id_i, serialized job i (arq.jobs.serialize_job)
-- Returns the number of jobs enqueued.

local enqueued = 0
local n = (#KEYS - 1) / 2
for i = 1, n do
  local job_key, result_key = KEYS[2 * i], KEYS[2 * i + 1]
  if redis.call('EXISTS', job_key, result_key) == 0 then
    redis.call('SET', job_key, ARGV[2 + 2 * i], 'PX', ARGV[2])
    redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1 + 2 * i])
    enqueued = enqueued + 1
  end
end
return enqueued
