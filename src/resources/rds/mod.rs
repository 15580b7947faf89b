//! Amazon RDS: what the DB kinds share — identifiers, tags, references to DB resources.

pub mod db_instance;
pub mod db_read_replica;
pub mod db_subnet_group;
