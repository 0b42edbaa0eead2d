-- purpose: every recorded change of a setting, newest first; parameters: $1 = the key
select * from setting_changes where key = $1 order by changed_at desc
