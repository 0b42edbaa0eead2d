-- purpose: version 2 — the recorder clock's zone kept apart from the site's zone; run lifecycle
-- (which machine and process drove a run, and when a later run found it dead); a recording's
-- status that says only whether the file is readable.
alter table deployments add column clock_timezone varchar;
alter table runs add column host varchar;
alter table runs add column pid bigint;
alter table runs add column interrupted_at timestamptz;
-- Version 1 marked a readable recording failed when one of its windows failed, and then never
-- planned its other windows again. The windows keep their own failures; the recording is readable.
update recordings set status = 'ok', error = null where status = 'failed' and duration_s is not null;
