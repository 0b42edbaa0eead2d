-- purpose: the privacy gate's setting (docs/privacy.md) as the catalog holds it now: read from the
-- catalog itself, not this connection's copy of the settings (see session/shadow_settings), so a
-- long-lived reader (the review page) follows a run that turned the gate on or off
-- grain: at most one row; parameters: $key = the setting's key
select value from lake.settings where key = $key
