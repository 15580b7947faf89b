//! Amazon EC2 Auto Scaling: the `autoscaling_group` kind.

pub mod autoscaling_group;
