-- purpose: every recorded change of a setting, newest first; parameters: $key = the setting
select * from setting_changes where key = $key order by changed_at desc
