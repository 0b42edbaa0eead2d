-- purpose: commit one work unit in the caller's transaction: its windows (the effort rows, which
-- double as the resume journal) and its predictions. A window committed again (a retry of a failed
-- window) replaces its failed row, so every window keeps exactly one row per fingerprint.
-- inputs: _unit_windows, _unit_predictions, _unit_embeddings (empty unless the run asks for them)
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
insert into windows by name select * from _unit_windows;
insert into predictions by name select * from _unit_predictions;
-- Embeddings exist only for windows that were analysed (status ok), and an ok window is never
-- planned again under its fingerprint: an insert never duplicates one.
insert into embeddings by name select * from _unit_embeddings;
