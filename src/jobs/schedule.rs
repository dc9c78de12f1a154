//! Scheduled jobs (tokio-cron-scheduler): the global sync check, with repair when
//! `auto_repair` is on. Cron strings come from the configuration; an empty one disables the
//! job.
