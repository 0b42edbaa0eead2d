-- purpose: lay Parquet data files out by deployment and UTC date, so a deployment's or a night's
-- rows are read without scanning the rest
alter table windows set partitioned by (deployment_id, date);
alter table predictions set partitioned by (deployment_id, date);
