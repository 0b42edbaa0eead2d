-- purpose: add setting $key = $value to this connection's settings (see shadow_settings), for keys
-- only a reader sets (detection_threshold_source); parameters: $key, $value
insert into temp.settings values ($key, $value)
