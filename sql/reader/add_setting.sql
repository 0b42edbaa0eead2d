-- purpose: add setting $1 = $2 to this connection's settings (see shadow_settings), for keys
-- only a reader sets (detection_threshold_source); parameters: $1 key, $2 value
insert into temp.settings values ($1, $2)
