"""Smoke test of the emulator's control plane for the services SecureCart uses."""
import json, os, sys, time
import boto3, uuid
U = uuid.uuid4().hex[:6]

EP = os.environ.get("ENDPOINT", "http://127.0.0.1:4566")
kw = dict(endpoint_url=EP, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
c = lambda s: boto3.client(s, **kw)
ec2, rds, elb, asg = c("ec2"), c("rds"), c("elbv2"), c("autoscaling")

AMI = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
print("vpc", vpc, ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"])
s1 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
s2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName=f"web-{U}", Description="web", VpcId=vpc)["GroupId"]

rds.create_db_subnet_group(DBSubnetGroupName=f"db-{U}", DBSubnetGroupDescription=f"db-{U}", SubnetIds=[s1, s2])
rds.create_db_instance(DBInstanceIdentifier=f"pg1-{U}", Engine="postgres", DBInstanceClass="db.t3.micro",
                       MasterUsername="app", ManageMasterUserPassword=True, AllocatedStorage=20,
                       DBSubnetGroupName=f"db-{U}", StorageEncrypted=True, VpcSecurityGroupIds=[sg])
rds.create_db_instance_read_replica(DBInstanceIdentifier=f"pg1-r-{U}", SourceDBInstanceIdentifier=f"pg1-{U}")
for d in rds.describe_db_instances()["DBInstances"]:
    if U not in d["DBInstanceIdentifier"]: continue
    print("rds", d["DBInstanceIdentifier"], d["DBInstanceStatus"], d.get("ReadReplicaSourceDBInstanceIdentifier"),
          d["DBSubnetGroup"]["VpcId"])

alb = elb.create_load_balancer(Name=f"alb-{U}", Subnets=[s1, s2], SecurityGroups=[sg], Type="application")["LoadBalancers"][0]
tg = elb.create_target_group(Name=f"tg-{U}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]
elb.create_listener(LoadBalancerArn=alb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
print("alb", alb["DNSName"], len(elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]))

ec2.create_launch_template(LaunchTemplateName=f"web-lt-{U}", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
asg.create_auto_scaling_group(AutoScalingGroupName=f"asg-{U}", MinSize=2, MaxSize=4, DesiredCapacity=2,
                              LaunchTemplate={"LaunchTemplateName": f"web-lt-{U}", "Version": "$Latest"},
                              VPCZoneIdentifier=f"{s1},{s2}", TargetGroupARNs=[tg["TargetGroupArn"]])
g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"asg-{U}"])["AutoScalingGroups"][0]
print("asg", [(i["InstanceId"], i["LifecycleState"]) for i in g["Instances"]])
th = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
print("targets", [(t["Target"]["Id"], t["TargetHealth"]["State"]) for t in th])

sqs = c("sqs"); q = sqs.create_queue(QueueName=f"orders-{U}")["QueueUrl"]
sqs.send_message(QueueUrl=q, MessageBody="hi")
print("sqs", sqs.receive_message(QueueUrl=q)["Messages"][0]["Body"])
ev = c("events"); ev.put_rule(Name=f"r-{U}", EventPattern=json.dumps({"source": ["sc"]}))
print("events", [r["Name"] for r in ev.list_rules()["Rules"]])
sfn = c("stepfunctions")
sm = sfn.create_state_machine(name=f"sm-{U}", roleArn="arn:aws:iam::000000000000:role/x",
                              definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}))
ex = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], input="{}")["executionArn"]
for _ in range(50):
    d = sfn.describe_execution(executionArn=ex)
    if d["status"] != "RUNNING": break
    time.sleep(0.2)
print("sfn", d["status"], d.get("output"))
print("OK")
