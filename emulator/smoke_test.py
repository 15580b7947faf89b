"""Smoke test of the emulator's control plane for the services SecureCart uses.

It behaves as a careful AWS client, so it passes with the strict layer on (the default): it waits
for what AWS does not make usable at once (see emulator/README.md)."""
import base64, io, json, os, sys, time, zipfile
import boto3, botocore.exceptions, uuid
U = uuid.uuid4().hex[:6]

EP = os.environ.get("ENDPOINT", "http://127.0.0.1:4566")
kw = dict(endpoint_url=EP, region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
c = lambda s: boto3.client(s, **kw)
ec2, rds, elb, asg = c("ec2"), c("rds"), c("elbv2"), c("autoscaling")


def settled(call, *codes, limit=20):
    """Retries `call` while it answers one of `codes`: a queue, role or launch template just
    created or changed is not usable at once on AWS (nor under the strict layer)."""
    deadline = time.time() + limit
    while True:
        try:
            return call()
        except botocore.exceptions.ClientError as e:
            if e.response["Error"]["Code"] not in codes or time.time() > deadline:
                raise
            time.sleep(0.3)

AMI = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
print("vpc", vpc, ec2.describe_vpcs(VpcIds=[vpc])["Vpcs"][0]["CidrBlock"])
s1 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
s2 = ec2.create_subnet(VpcId=vpc, CidrBlock="10.20.2.0/24", AvailabilityZone="us-east-1b")["Subnet"]["SubnetId"]
sg = ec2.create_security_group(GroupName=f"web-{U}", Description="web", VpcId=vpc)["GroupId"]

rds.create_db_subnet_group(DBSubnetGroupName=f"db-{U}", DBSubnetGroupDescription=f"db-{U}", SubnetIds=[s1, s2])
# A password managed by Secrets Manager (RDS creates the secret); such a source cannot have
# replicas on AWS, so the replica's source has a password of its own (a throwaway one here).
rds.create_db_instance(DBInstanceIdentifier=f"pg0-{U}", Engine="postgres", DBInstanceClass="db.t3.micro",
                       MasterUsername="app", ManageMasterUserPassword=True, AllocatedStorage=20,
                       DBSubnetGroupName=f"db-{U}", StorageEncrypted=True, VpcSecurityGroupIds=[sg])
assert rds.describe_db_instances(DBInstanceIdentifier=f"pg0-{U}")["DBInstances"][0]["MasterUserSecret"]["SecretArn"]
rds.create_db_instance(DBInstanceIdentifier=f"pg1-{U}", Engine="postgres", DBInstanceClass="db.t3.micro",
                       MasterUsername="app", MasterUserPassword="smoke-test-only-1", AllocatedStorage=20,
                       DBSubnetGroupName=f"db-{U}", StorageEncrypted=True, VpcSecurityGroupIds=[sg])
rds.get_waiter("db_instance_available").wait(DBInstanceIdentifier=f"pg1-{U}", WaiterConfig={"Delay": 1, "MaxAttempts": 60})
rds.create_db_instance_read_replica(DBInstanceIdentifier=f"pg1-r-{U}", SourceDBInstanceIdentifier=f"pg1-{U}")
# Every page: the strict layer answers List/Describe calls in small pages, as AWS may.
mine = [d for page in rds.get_paginator("describe_db_instances").paginate() for d in page["DBInstances"]
        if U in d["DBInstanceIdentifier"]]
assert len(mine) == 3, [d["DBInstanceIdentifier"] for d in mine]
for d in mine:
    print("rds", d["DBInstanceIdentifier"], d["DBInstanceStatus"], d.get("ReadReplicaSourceDBInstanceIdentifier"),
          d["DBSubnetGroup"]["VpcId"])

alb = elb.create_load_balancer(Name=f"alb-{U}", Subnets=[s1, s2], SecurityGroups=[sg], Type="application")["LoadBalancers"][0]
tg = elb.create_target_group(Name=f"tg-{U}", Protocol="HTTP", Port=80, VpcId=vpc, TargetType="instance")["TargetGroups"][0]
elb.create_listener(LoadBalancerArn=alb["LoadBalancerArn"], Protocol="HTTP", Port=80,
                    DefaultActions=[{"Type": "forward", "TargetGroupArn": tg["TargetGroupArn"]}])
print("alb", alb["DNSName"], len(elb.describe_listeners(LoadBalancerArn=alb["LoadBalancerArn"])["Listeners"]))

ec2.create_launch_template(LaunchTemplateName=f"web-lt-{U}", LaunchTemplateData={"ImageId": AMI, "InstanceType": "t3.micro"})
settled(lambda: asg.create_auto_scaling_group(
    AutoScalingGroupName=f"asg-{U}", MinSize=2, MaxSize=4, DesiredCapacity=2,
    LaunchTemplate={"LaunchTemplateName": f"web-lt-{U}", "Version": "$Latest"},
    VPCZoneIdentifier=f"{s1},{s2}", TargetGroupARNs=[tg["TargetGroupArn"]]), "ValidationError")
g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[f"asg-{U}"])["AutoScalingGroups"][0]
print("asg", [(i["InstanceId"], i["LifecycleState"]) for i in g["Instances"]])
th = elb.describe_target_health(TargetGroupArn=tg["TargetGroupArn"])["TargetHealthDescriptions"]
print("targets", [(t["Target"]["Id"], t["TargetHealth"]["State"]) for t in th])

sqs = c("sqs"); q = sqs.create_queue(QueueName=f"orders-{U}")["QueueUrl"]
settled(lambda: sqs.send_message(QueueUrl=q, MessageBody="hi"), "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")
print("sqs", sqs.receive_message(QueueUrl=q)["Messages"][0]["Body"])
ev = c("events"); ev.put_rule(Name=f"r-{U}", EventPattern=json.dumps({"source": ["sc"]}))
print("events", [r["Name"] for r in ev.list_rules(NamePrefix=f"r-{U}")["Rules"]])
sfn = c("stepfunctions")
sm = sfn.create_state_machine(name=f"sm-{U}", roleArn="arn:aws:iam::000000000000:role/x",
                              definition=json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "End": True}}}))
ex = sfn.start_execution(stateMachineArn=sm["stateMachineArn"], input="{}")["executionArn"]
for _ in range(50):
    d = sfn.describe_execution(executionArn=ex)
    if d["status"] != "RUNNING": break
    time.sleep(0.2)
print("sfn", d["status"], d.get("output"))

# Lambda: a Python function run by the local executor, invoked directly and from Step Functions.
CODE = """
import json, os, time, boto3
def handler(event, context):
    print("event", json.dumps(event))
    if event.get("fail"):
        raise ValueError("boom: " + event["fail"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    queues = boto3.client("sqs").list_queues().get("QueueUrls", [])
    return {"doubled": event.get("n", 0) * 2, "queues": len(queues), "fn": context.function_name,
            "left_ms": context.get_remaining_time_in_millis() > 0}
"""
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("app.py", CODE)
iam = c("iam")
role = iam.create_role(RoleName=f"fn-{U}", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}))["Role"]["Arn"]
lam = c("lambda")
fn = settled(lambda: lam.create_function(FunctionName=f"fn-{U}", Runtime="python3.12", Role=role, Handler="app.handler",
                                         Code={"ZipFile": buf.getvalue()}, Timeout=2), "InvalidParameterValueException")["FunctionArn"]
lam.get_waiter("function_active_v2").wait(FunctionName=fn, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
print("lambda state", lam.get_function(FunctionName=fn)["Configuration"]["State"])
t = time.time()
r = lam.invoke(FunctionName=fn, Payload=json.dumps({"n": 21}), LogType="Tail")
ok = json.loads(r["Payload"].read())
print("lambda ok", r["StatusCode"], r.get("FunctionError"), ok, f"{time.time() - t:.2f}s")
assert ok["doubled"] == 42 and ok["queues"] >= 1 and ok["fn"] == f"fn-{U}" and "FunctionError" not in r, ok
assert "START RequestId" in base64.b64decode(r["LogResult"]).decode()
r = lam.invoke(FunctionName=fn, Payload=json.dumps({"fail": "x"}))
err = json.loads(r["Payload"].read())
print("lambda error", r.get("FunctionError"), err["errorType"], err["errorMessage"], len(err["stackTrace"]))
assert r["FunctionError"] == "Unhandled" and err["errorType"] == "ValueError" and err["errorMessage"] == "boom: x"
r = lam.invoke(FunctionName=fn, Payload=json.dumps({"sleep": 5}))
err = json.loads(r["Payload"].read())
print("lambda timeout", r.get("FunctionError"), err)
assert r["FunctionError"] == "Unhandled" and "timed out" in err["errorMessage"]
r = lam.invoke(FunctionName=fn, Payload=json.dumps({"n": 1}))
assert json.loads(r["Payload"].read())["doubled"] == 2 and "FunctionError" not in r, "no recovery after timeout"

definition = {"StartAt": "Call", "States": {
    "Call": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
             "Parameters": {"FunctionName": fn, "Payload.$": "$"}, "OutputPath": "$.Payload",
             "Retry": [{"ErrorEquals": ["ValueError"], "MaxAttempts": 1, "IntervalSeconds": 1}],
             "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Caught"}], "End": True},
    "Caught": {"Type": "Pass", "Result": "caught", "End": True}}}
sm2 = sfn.create_state_machine(name=f"fnsm-{U}", roleArn="arn:aws:iam::000000000000:role/x", definition=json.dumps(definition))["stateMachineArn"]
for inp, want in [({"n": 5}, 10), ({"fail": "y"}, "caught")]:
    ex = sfn.start_execution(stateMachineArn=sm2, input=json.dumps(inp))["executionArn"]
    for _ in range(150):
        d = sfn.describe_execution(executionArn=ex)
        if d["status"] != "RUNNING": break
        time.sleep(0.2)
    out = json.loads(d.get("output", "null"))
    print("sfn->lambda", d["status"], out)
    assert d["status"] == "SUCCEEDED" and (out == want or (isinstance(out, dict) and out.get("doubled") == want)), d

# Node.js, when the machine has it: an ES module async handler and a CommonJS callback handler.
import shutil
if shutil.which("node"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.mjs", "export const handler = async (event, context) => {\n"
                   "  console.log('got', JSON.stringify(event));\n"
                   "  if (event.fail) throw new TypeError('bad ' + event.fail);\n"
                   "  return {sum: event.a + event.b, fn: context.functionName};\n};\n")
        z.writestr("cb.js", "exports.handler = (event, context, callback) => callback(null, {echo: event});\n")
    for handler, payload, check in [
        ("index.handler", {"a": 2, "b": 3}, lambda r, p: "FunctionError" not in r and p == {"sum": 5, "fn": f"node-{U}"}),
        ("index.handler", {"fail": "x"}, lambda r, p: r["FunctionError"] == "Unhandled" and p["errorType"] == "TypeError" and p["errorMessage"] == "bad x"),
        ("cb.handler", {"k": 1}, lambda r, p: p == {"echo": {"k": 1}}),
    ]:
        name = f"node-{U}" if handler == "index.handler" else f"nodecb-{U}"
        try:
            lam.get_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            lam.create_function(FunctionName=name, Runtime="nodejs20.x", Role=role, Handler=handler,
                                Code={"ZipFile": buf.getvalue()}, Timeout=5)
            lam.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        r = lam.invoke(FunctionName=name, Payload=json.dumps(payload))
        p = json.loads(r["Payload"].read())
        print("node", handler, r.get("FunctionError"), p)
        assert check(r, p), (r, p)

logs = c("logs").filter_log_events(logGroupName=f"/aws/lambda/fn-{U}")["events"]
print("lambda log lines", len(logs), [e["message"].strip() for e in logs if "event" in e["message"]][:1])
print("OK")
