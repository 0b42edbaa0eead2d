-- purpose: commit one work unit in the caller's transaction: its windows (the effort rows, which
-- double as the resume journal) and its predictions. A window committed again (a retry of a failed
-- window) replaces its failed row, so every window keeps exactly one row per fingerprint. A window
-- already committed ok is left as it is, with its predictions: committing the same unit twice (a
-- signal landing between the database's commit and the caller's bookkeeping) adds nothing, so
-- exactly-once does not depend on the caller. An embedding is added where the window has none
-- (a run with --embeddings over windows analysed without them).
-- inputs: _unit_windows, _unit_predictions, _unit_embeddings (empty unless the run asks for them)
-- Every lookup below probes the catalog's tables with the unit's few keys (semi joins whose
-- small side is the unit), so a commit does not build a hash table of a season's windows.
delete from windows
where status = 'failed'
    and exists (
        select 1
        from _unit_windows as u
        where u.config_fingerprint = windows.config_fingerprint
            and u.recording_id = windows.recording_id
            and u.channel = windows.channel
            and u.window_index = windows.window_index
    );
-- Predictions before windows: "already committed" means the window's row is there.
insert into predictions by name
select p.*
from _unit_predictions as p
anti join (
    select w.config_fingerprint, w.recording_id, w.channel, w.window_index
    from windows as w
    semi join _unit_windows as u
        on u.config_fingerprint = w.config_fingerprint
        and u.recording_id = w.recording_id
        and u.channel = w.channel
        and u.window_index = w.window_index
) as done
    on done.config_fingerprint = p.config_fingerprint
    and done.recording_id = p.recording_id
    and done.channel = p.channel
    and done.window_index = p.window_index;
insert into embeddings by name
select e.*
from _unit_embeddings as e
anti join (
    select x.config_fingerprint, x.recording_id, x.channel, x.window_index
    from embeddings as x
    semi join _unit_embeddings as u
        on u.config_fingerprint = x.config_fingerprint
        and u.recording_id = x.recording_id
        and u.channel = x.channel
        and u.window_index = x.window_index
) as done
    on done.config_fingerprint = e.config_fingerprint
    and done.recording_id = e.recording_id
    and done.channel = e.channel
    and done.window_index = e.window_index;
insert into windows by name
select u.*
from _unit_windows as u
anti join (
    select w.config_fingerprint, w.recording_id, w.channel, w.window_index
    from windows as w
    semi join _unit_windows as k
        on k.config_fingerprint = w.config_fingerprint
        and k.recording_id = w.recording_id
        and k.channel = w.channel
        and k.window_index = w.window_index
) as done
    on done.config_fingerprint = u.config_fingerprint
    and done.recording_id = u.recording_id
    and done.channel = u.channel
    and done.window_index = u.window_index;
-- The privacy gate's marks (docs/privacy.md): one per checked window, added where the window has
-- none under this fingerprint. inputs: _unit_speech (empty for callers that check nothing)
insert into speech_marks by name
select s.*
from _unit_speech as s
anti join (
    select x.config_fingerprint, x.recording_id, x.channel, x.window_index
    from speech_marks as x
    semi join _unit_speech as u
        on u.config_fingerprint = x.config_fingerprint
        and u.recording_id = x.recording_id
        and u.channel = x.channel
        and u.window_index = x.window_index
) as done
    on done.config_fingerprint = s.config_fingerprint
    and done.recording_id = s.recording_id
    and done.channel = s.channel
    and done.window_index = s.window_index;
