-- purpose: register newly discovered and changed recordings in one transaction
-- inputs (registered Arrow tables): _superseded (recording_id: the old versions of changed files),
--   _new_recordings (rows shaped like `recordings`)
-- a changed file's old rows go (DuckLake snapshots keep them for time travel), so its new rows
-- never sit beside stale ones
delete from predictions where recording_id in (select recording_id from _superseded);
delete from windows where recording_id in (select recording_id from _superseded);
delete from recordings where recording_id in (select recording_id from _superseded);
insert into recordings by name select * from _new_recordings;
