"""SecureCart's LocalStack plugins: moto-backed rds/elbv2/autoscaling providers and a local-process Lambda executor."""
