-- purpose: commit one work unit: its windows (the effort rows, which double as the resume
-- journal) and its predictions, in the caller's transaction
-- inputs: _unit_windows, _unit_predictions, _unit_failures (recording_id, error)
insert into windows by name select * from _unit_windows;
insert into predictions by name select * from _unit_predictions;
update recordings
set status = 'failed', error = f.error
from _unit_failures as f
where recordings.recording_id = f.recording_id and recordings.status = 'ok';
