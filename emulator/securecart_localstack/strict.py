"""The strict layer: makes the emulator refuse, for a short window, what AWS refuses and LocalStack/moto accept.

Loaded by an ``on_infra_start`` hook; it adds a request handler (runs after the request is parsed,
before the service answers) and a response handler (sees what was created) to LocalStack's handler
chain. Every rule, its AWS source and its window are listed in ``emulator/README.md``.

``SECURECART_STRICT`` (read once at start): ``off`` disables the layer; otherwise a comma list of
``key=value`` overriding the defaults below, e.g. ``iam=2,sqs=1,rds=3,eni=3,lt=1,sns=1,page=2,throttle=0``.
State is in memory and guarded by one lock: LocalStack serves requests on several threads.
"""

import logging
import os
import random
import sys
import threading
import time
from dataclasses import dataclass, field

LOG = logging.getLogger(__name__)

ENV = "SECURECART_STRICT"
# Windows in seconds, the page size injected into List/Describe calls, and the fraction of calls throttled.
DEFAULTS = {"iam": 2.0, "sqs": 1.0, "rds": 3.0, "eni": 3.0, "lt": 1.0, "sns": 1.0, "page": 2, "throttle": 0.0}


class SettingsError(ValueError):
    pass


@dataclass
class Settings:
    enabled: bool = True
    values: dict = field(default_factory=lambda: dict(DEFAULTS))

    def __getattr__(self, name):
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def as_json(self) -> dict:
        return {"enabled": self.enabled, **({k: self.values[k] for k in DEFAULTS} if self.enabled else {})}


def parse_settings(text) -> Settings:
    """Parses SECURECART_STRICT; raises SettingsError naming the bad item."""
    text = (text or "").strip()
    if text.lower() == "off":
        return Settings(enabled=False)
    settings = Settings()
    if text.lower() in ("", "on"):
        return settings
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, raw = item.partition("=")
        key = key.strip().lower()
        if not sep or key not in DEFAULTS:
            raise SettingsError(
                f"{ENV}: '{item}' is not key=value with a known key ({', '.join(DEFAULTS)}), nor 'off'"
            )
        try:
            value = int(raw) if key == "page" else float(raw)
        except ValueError:
            raise SettingsError(
                f"{ENV}: '{item}': {key} needs {'a whole number' if key == 'page' else 'a number'}"
            ) from None
        if value < 0 or (key == "throttle" and value > 1) or value != value:
            raise SettingsError(
                f"{ENV}: '{item}': {key} must be {'between 0 and 1' if key == 'throttle' else 'zero or more'}"
            )
        settings.values[key] = value
    return settings


SETTINGS = Settings()


def _now() -> float:
    return time.monotonic()


class _State:
    """What the rules remember between requests; every access holds ``lock``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (account, role name) -> when its trust or permissions last changed
        self.role_changed: dict = {}
        # (account, region, queue name) -> (created at, LocalStack's queue object)
        self.queues: dict = {}
        # (account, region, "id:lt-..." or "name:...") -> created at
        self.templates: dict = {}
        # (account, region, lower-case DB instance id) -> created at
        self.databases: dict = {}
        # (account, region, topic name) -> when a topic of that name was deleted
        self.deleted_topics: dict = {}
        # interfaces of deleted load balancers / DB instances: dicts with until, account, region,
        # owner, vpc, subnets, groups, public
        self.lingering: list = []

    def live_lingering(self, account: str, region: str) -> list:
        now = _now()
        with self.lock:
            self.lingering = [r for r in self.lingering if r["until"] > now]
            return [r for r in self.lingering if r["account"] == account and r["region"] == region]


STATE = _State()


def _young(recorded_at, window: float) -> bool:
    return recorded_at is not None and _now() - recorded_at < window


# --- errors, serialised by LocalStack per protocol -------------------------------------------------


def _error(code: str, message: str, status: int = 400):
    from localstack.aws.api import CommonServiceException

    return CommonServiceException(code, message, status_code=status, sender_fault=True)


def _throttle_error(context):
    # EC2: https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html (RequestLimitExceeded, 503);
    # query services answer Throttling, JSON services ThrottlingException:
    # https://docs.aws.amazon.com/general/latest/gr/api-retries.html
    protocol = context.service.protocol
    message = "Rate exceeded"
    if protocol == "ec2":
        return _error("RequestLimitExceeded", "Request limit exceeded.", 503)
    if protocol == "query":
        return _error("Throttling", message)
    return _error("ThrottlingException", message)


# --- moto / LocalStack state lookups ---------------------------------------------------------------


def _ec2(context):
    from moto.ec2.models import ec2_backends

    return ec2_backends[context.account_id][context.region]


def _rds(context):
    from moto.rds.models import rds_backends

    return rds_backends[context.account_id][context.region]


def _elbv2(context):
    from moto.elbv2.models import elbv2_backends

    return elbv2_backends[context.account_id][context.region]


def _role_name(role_arn) -> str:
    # arn:aws:iam::123456789012:role/optional/path/name -> name
    return str(role_arn or "").rsplit("/", 1)[-1]


def _db_id(identifier) -> str:
    # An identifier or an ARN (arn:aws:rds:region:account:db:name)
    return str(identifier or "").rsplit(":", 1)[-1].lower()


@dataclass
class Interface:
    """A network interface as the dependency checks see it: moto's own ENIs and the ones AWS
    creates for load balancers and DB instances (moto creates none for those)."""

    owner: str
    vpc: str
    subnets: set
    groups: set
    public: bool


def _interfaces(context) -> list:
    found = []
    ec2 = _ec2(context)
    for eni in list(ec2.enis.values()):
        subnet = getattr(eni, "subnet", None)
        instance = getattr(eni, "instance", None)
        state = getattr(getattr(instance, "_state", None), "name", None)
        if state == "terminated":
            continue
        found.append(
            Interface(
                owner=f"network interface {eni.id}",
                vpc=getattr(subnet, "vpc_id", "") or "",
                subnets={subnet.id} if subnet is not None else set(),
                groups={g.id for g in getattr(eni, "group_set", []) or []},
                public=bool(getattr(eni, "public_ip", None)),
            )
        )
    try:
        balancers = list(_elbv2(context).load_balancers.values())
    except Exception:  # noqa: BLE001 - elbv2 not initialised in this account/region
        balancers = []
    for lb in balancers:
        found.append(
            Interface(
                owner=f"load balancer {lb.name}",
                vpc=lb.vpc_id or "",
                subnets={s.id for s in lb.subnets},
                groups=set(lb.security_groups or []),
                public=lb.scheme == "internet-facing",
            )
        )
    try:
        databases = list(_rds(context).databases.values())
    except Exception:  # noqa: BLE001
        databases = []
    for db in databases:
        found.append(_db_interface(db))
    for r in STATE.live_lingering(context.account_id, context.region):
        found.append(
            Interface(owner=r["owner"], vpc=r["vpc"], subnets=r["subnets"], groups=r["groups"], public=r["public"])
        )
    return found


def _db_interface(db) -> Interface:
    group = getattr(db, "db_subnet_group", None)
    subnets = {s.id for s in getattr(group, "_subnets", None) or []}
    return Interface(
        owner=f"DB instance {db.db_instance_identifier}",
        vpc=getattr(group, "vpc_id", "") or "",
        subnets=subnets,
        groups=set(getattr(db, "vpc_security_group_ids", None) or []),
        public=bool(getattr(db, "publicly_accessible", False)),
    )


# --- rules run before the service answers ----------------------------------------------------------


def _check_rds_replica(context, req):
    source = _rds(context).databases.get(_db_id(req.get("SourceDBInstanceIdentifier")))
    if source is None:
        return
    # RDS User Guide, "Password management with Amazon RDS and AWS Secrets Manager", Limitations.
    if getattr(source, "manage_master_user_password", False):
        raise _error(
            "InvalidParameterValue",
            f"Creating read replicas for source instance with engine {source.engine} "
            "where ManageMasterUserPassword is enabled is not supported.",
        )
    # A source still being created cannot be replicated yet
    # (terraform-aws-modules/terraform-aws-rds#192, hashicorp/terraform-provider-aws#43474).
    if _creating(source):
        raise _error("InvalidDBInstanceState", "DB instance is not in the available state")


def _check_rds_modify(context, req):
    # ModifyDBInstance of an instance that is not available yet
    # (hashicorp/terraform-provider-aws#31594).
    db = _rds(context).databases.get(_db_id(req.get("DBInstanceIdentifier")))
    if db is not None and _creating(db):
        raise _error("InvalidDBInstanceState", "Database instance is not in available state.")


def _role_is_young(context, role_arn) -> bool:
    name = _role_name(role_arn)
    with STATE.lock:
        changed = STATE.role_changed.get((context.account_id, name))
    return bool(name) and _young(changed, SETTINGS.iam)


def _check_lambda(context, req):
    from localstack.aws.api.lambda_ import InvalidParameterValueException

    role, tracing = req.get("Role"), (req.get("TracingConfig") or {}).get("Mode")
    if context.operation.name == "UpdateFunctionConfiguration" and not role:
        # An update that keeps the role is checked only when it turns Active tracing on, which
        # needs the role's xray:PutTraceSegments permission.
        if tracing != "Active":
            return
        role = _function_role(context, req.get("FunctionName"))
    elif context.operation.name == "UpdateFunctionConfiguration" and not tracing:
        tracing = _function_tracing(context, req.get("FunctionName"))
    if not _role_is_young(context, role):
        return
    if tracing == "Active":
        raise InvalidParameterValueException(
            "The provided execution role does not have permissions to call PutTraceSegments on XRAY"
        )
    raise InvalidParameterValueException("The role defined for the function cannot be assumed by Lambda.")


def _function_config(context, function_name):
    try:
        from localstack.services.lambda_.invocation.models import lambda_stores

        # A name, a partial or a full ARN, possibly with a qualifier
        name = str(function_name or "").rsplit(":function:", 1)[-1].split(":")[0]
        fn = lambda_stores[context.account_id][context.region].functions.get(name)
        return fn.latest().config if fn is not None else None
    except Exception:  # noqa: BLE001 - unknown function: Lambda itself answers
        return None


def _function_role(context, function_name):
    return getattr(_function_config(context, function_name), "role", None)


def _function_tracing(context, function_name):
    return getattr(_function_config(context, function_name), "tracing_config_mode", None)


def _logs_to_a_destination(logging_config) -> bool:
    logging_config = logging_config or {}
    return logging_config.get("level", "OFF") != "OFF" and bool(logging_config.get("destinations"))


def _check_states(context, req):
    role, logging_config = req.get("roleArn"), req.get("loggingConfiguration")
    if context.operation.name == "UpdateStateMachine":
        machine = _state_machine(context, req.get("stateMachineArn"))
        if not role:
            # An update that keeps the role is checked only when it configures logging, which
            # needs the role's CloudWatch Logs delivery permissions.
            if not _logs_to_a_destination(logging_config):
                return
            role = getattr(machine, "role_arn", None)
        elif logging_config is None:
            logging_config = getattr(machine, "logging_config", None)
    if not _role_is_young(context, role):
        return
    if _logs_to_a_destination(logging_config):
        raise _error("AccessDeniedException", "The state machine IAM Role is not authorized to access the Log Destination")
    raise _error(
        "AccessDeniedException",
        "Neither the global service principal states.amazonaws.com, nor the regional one is authorized "
        "to assume the provided role.",
    )


def _state_machine(context, arn):
    try:
        from localstack.services.stepfunctions.backend.store import sfn_stores

        return sfn_stores[context.account_id][context.region].state_machines.get(arn)
    except Exception:  # noqa: BLE001 - unknown machine: Step Functions itself answers
        return None


def _check_sqs(context, req):
    # https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_CreateQueue.html:
    # "After you create a queue, you must wait at least one second after the queue is created to be
    # able to use the queue."
    if context.operation.name == "CreateQueue":
        return
    if "QueueUrl" in req:
        name = str(req["QueueUrl"]).rstrip("/").rsplit("/", 1)[-1]
    elif "QueueName" in req:
        name = str(req["QueueName"])
    else:
        return
    with STATE.lock:
        entry = STATE.queues.get((context.account_id, context.region, name))
    if entry is not None and _young(entry[0], SETTINGS.sqs):
        from localstack.aws.api.sqs import QueueDoesNotExist

        raise QueueDoesNotExist("The specified queue does not exist.")


def _topic_exists(context, arn) -> bool:
    try:
        from localstack.services.sns.models import sns_stores

        return arn in sns_stores[context.account_id][context.region].topics
    except Exception:  # noqa: BLE001 - unknown store layout: no window
        return False


def _remember_topic_before_delete(context, req):
    # Recorded when DeleteTopic succeeds (on_response): only a topic that existed leaves tags behind.
    arn = str(req.get("TopicArn") or "")
    if _topic_exists(context, arn):
        context.securecart_deleted_topic = arn.rsplit(":", 1)[-1]


def _check_stale_tag(context, req):
    # https://docs.aws.amazon.com/sns/latest/api/API_CreateTopic.html and API_TagResource.html, Errors:
    # "StaleTag: A tag has been added to a resource with the same ARN as a deleted resource. Wait a
    # short while and then retry the operation."
    if context.operation.name == "CreateTopic":
        if not req.get("Tags"):
            return
        name = str(req.get("Name") or "")
    else:
        name = str(req.get("ResourceArn") or "").rsplit(":", 1)[-1]
    with STATE.lock:
        deleted = STATE.deleted_topics.get((context.account_id, context.region, name))
    if _young(deleted, SETTINGS.sns):
        raise _error(
            "StaleTag",
            "A tag has been added to a resource with the same ARN as a deleted resource. "
            "Wait a short while and then retry the operation.",
        )


def _check_delete_security_group(context, req):
    ec2 = _ec2(context)
    group = ec2.get_security_group_by_name_or_id(req.get("GroupId") or req.get("GroupName"))
    if group is None:
        return
    gid = group.id
    message = f"resource {gid} has a dependent object"
    for groups in list(ec2.groups.values()):
        for other in list(groups.values()):
            if other.id == gid:
                continue
            for rule in list(other.ingress_rules) + list(other.egress_rules):
                # moto keeps one source group per rule (older releases: a list of them)
                pairs = getattr(rule, "source_groups", None) or [getattr(rule, "source_group", None) or {}]
                if any(pair.get("GroupId") == gid for pair in pairs):
                    raise _error("DependencyViolation", message)
    if any(gid in i.groups for i in _interfaces(context)):
        raise _error("DependencyViolation", message)


def _check_delete_subnet(context, req):
    subnet = req.get("SubnetId")
    if any(subnet in i.subnets for i in _interfaces(context)):
        raise _error("DependencyViolation", f"The subnet '{subnet}' has dependencies and cannot be deleted.")


def _check_detach_gateway(context, req):
    vpc = req.get("VpcId")
    if any(i.public and i.vpc == vpc for i in _interfaces(context)):
        raise _error(
            "DependencyViolation",
            f"Network {vpc} has some mapped public address(es). "
            "Please unmap those public address(es) before detaching the gateway.",
        )


def _remember_interfaces_before_delete(context, req):
    """Captures what a load balancer or DB instance about to be deleted occupies; the response
    handler keeps it for the eni window if the delete succeeds."""
    if context.operation.name == "DeleteLoadBalancer":
        lb = _elbv2(context).load_balancers.get(req.get("LoadBalancerArn"))
        if lb is not None:
            context.securecart_lingering = Interface(
                owner=f"deleted load balancer {lb.name}",
                vpc=lb.vpc_id or "",
                subnets={s.id for s in lb.subnets},
                groups=set(lb.security_groups or []),
                public=lb.scheme == "internet-facing",
            )
    else:
        db = _rds(context).databases.get(_db_id(req.get("DBInstanceIdentifier")))
        if db is not None:
            iface = _db_interface(db)
            iface.owner = "deleted " + iface.owner
            context.securecart_lingering = iface


def _template_spec(req):
    spec = req.get("LaunchTemplate")
    if not spec:
        mixed = req.get("MixedInstancesPolicy") or {}
        spec = (mixed.get("LaunchTemplate") or {}).get("LaunchTemplateSpecification")
    return spec or {}


def _check_asg(context, req):
    spec = _template_spec(req)
    if spec.get("LaunchTemplateId"):
        key, what = "id:" + spec["LaunchTemplateId"], f"template ID {spec['LaunchTemplateId']}"
    elif spec.get("LaunchTemplateName"):
        key, what = "name:" + spec["LaunchTemplateName"], f"template name {spec['LaunchTemplateName']}"
    else:
        return
    with STATE.lock:
        created = STATE.templates.get((context.account_id, context.region, key))
    if _young(created, SETTINGS.lt):
        raise _error(
            "ValidationError",
            "You must use a valid fully-formed launch template. "
            f"The specified launch template, with {what}, does not exist.",
        )


CHECKS = {
    ("rds", "CreateDBInstanceReadReplica"): _check_rds_replica,
    ("rds", "ModifyDBInstance"): _check_rds_modify,
    ("lambda", "CreateFunction"): _check_lambda,
    ("lambda", "UpdateFunctionConfiguration"): _check_lambda,
    ("stepfunctions", "CreateStateMachine"): _check_states,
    ("stepfunctions", "UpdateStateMachine"): _check_states,
    ("ec2", "DeleteSecurityGroup"): _check_delete_security_group,
    ("ec2", "DeleteSubnet"): _check_delete_subnet,
    ("ec2", "DetachInternetGateway"): _check_detach_gateway,
    ("elbv2", "DeleteLoadBalancer"): _remember_interfaces_before_delete,
    ("rds", "DeleteDBInstance"): _remember_interfaces_before_delete,
    ("autoscaling", "CreateAutoScalingGroup"): _check_asg,
    ("autoscaling", "UpdateAutoScalingGroup"): _check_asg,
    ("sns", "DeleteTopic"): _remember_topic_before_delete,
    ("sns", "CreateTopic"): _check_stale_tag,
    ("sns", "TagResource"): _check_stale_tag,
}

# --- pagination ------------------------------------------------------------------------------------

# (service, operation) -> (page-size parameter, parameters that AWS refuses together with a page
# size or that make the answer a single item). Only operations whose emulated backend honours the
# parameter are listed (checked one by one; see emulator/README.md).
PAGED = {
    ("rds", "DescribeDBInstances"): ("MaxRecords", ("DBInstanceIdentifier",)),
    ("elbv2", "DescribeLoadBalancers"): ("PageSize", ("LoadBalancerArns", "Names")),
    ("elbv2", "DescribeRules"): ("PageSize", ("RuleArns",)),
    ("autoscaling", "DescribeAutoScalingGroups"): ("MaxRecords", ()),
    ("autoscaling", "DescribeLaunchConfigurations"): ("MaxRecords", ()),
    ("ec2", "DescribeInstances"): ("MaxResults", ("InstanceIds",)),
    ("sqs", "ListQueues"): ("MaxResults", ()),
    ("lambda", "ListFunctions"): ("MaxItems", ()),
    ("events", "ListRules"): ("Limit", ()),
    ("stepfunctions", "ListStateMachines"): ("maxResults", ()),
    ("secretsmanager", "ListSecrets"): ("MaxResults", ()),
}


def _inject_page_size(context, req):
    entry = PAGED.get((context.service.service_name, context.operation.name))
    if not entry or SETTINGS.page <= 0:
        return
    param, excluded = entry
    if req.get(param) is not None or any(req.get(p) for p in excluded):
        return
    params = dict(req)
    params[param] = SETTINGS.page
    if context.service.protocol in ("query", "ec2", "json"):
        # moto-backed services (ec2, rds, elbv2, autoscaling, secretsmanager...) read the raw HTTP
        # request rather than the parsed one, so the request is rebuilt with the parameter.
        import copy

        from localstack.aws.forwarder import create_aws_request_context

        rebuilt = create_aws_request_context(
            service_name=context.service.service_name,
            action=context.operation.name,
            parameters=params,
            region=context.region,
            protocol=context.protocol,
        )
        headers = copy.deepcopy(context.request.headers)
        host = headers.get("Host")
        for name in ("Content-Type", "Content-Length"):
            if name in rebuilt.request.headers:
                headers[name] = rebuilt.request.headers[name]
        rebuilt.request.headers = headers
        if host:
            rebuilt.request.headers["Host"] = host
        context.request = rebuilt.request
    req[param] = SETTINGS.page


# --- the handlers ----------------------------------------------------------------------------------


def _applies(context) -> bool:
    return (
        SETTINGS.enabled
        and context.service is not None
        and context.operation is not None
        and not context.is_internal_call
    )


def on_request(chain, context, response):
    if not _applies(context):
        return
    service, op = context.service.service_name, context.operation.name
    req = context.service_request if context.service_request is not None else {}
    if SETTINGS.throttle > 0 and random.random() < SETTINGS.throttle:
        raise _throttle_error(context)
    if service == "sqs":
        _check_sqs(context, req)
    check = CHECKS.get((service, op))
    if check is not None:
        check(context, req)
    _inject_page_size(context, req)


def on_response(chain, context, response):
    if not _applies(context) or context.service_exception is not None or response.status_code >= 400:
        return
    service, op = context.service.service_name, context.operation.name
    req = context.service_request or {}
    out = context.service_response or {}
    now = _now()
    key = (context.account_id, context.region)
    if service == "iam" and op in ("CreateRole", "PutRolePolicy", "AttachRolePolicy"):
        with STATE.lock:
            STATE.role_changed[(context.account_id, str(req.get("RoleName")))] = now
    elif service == "sqs" and op == "CreateQueue":
        _record_queue(context, req, now)
    elif service == "ec2" and op == "CreateLaunchTemplate":
        lt = out.get("LaunchTemplate") or {}
        with STATE.lock:
            if lt.get("LaunchTemplateId"):
                STATE.templates[key + ("id:" + lt["LaunchTemplateId"],)] = now
            if lt.get("LaunchTemplateName"):
                STATE.templates[key + ("name:" + lt["LaunchTemplateName"],)] = now
    elif service == "rds" and op in ("CreateDBInstance", "CreateDBInstanceReadReplica"):
        with STATE.lock:
            STATE.databases[key + (_db_id(req.get("DBInstanceIdentifier")),)] = now
    deleted_topic = getattr(context, "securecart_deleted_topic", None)
    if deleted_topic is not None:
        with STATE.lock:
            STATE.deleted_topics[key + (deleted_topic,)] = now
    lingering = getattr(context, "securecart_lingering", None)
    if lingering is not None:
        with STATE.lock:
            STATE.lingering.append(
                {
                    "until": now + SETTINGS.eni,
                    "account": context.account_id,
                    "region": context.region,
                    "owner": lingering.owner,
                    "vpc": lingering.vpc,
                    "subnets": lingering.subnets,
                    "groups": lingering.groups,
                    "public": lingering.public,
                }
            )


def _record_queue(context, req, now):
    """A queue is new (and gets the window) unless CreateQueue answered for one that existed."""
    name = str(req.get("QueueName"))
    try:
        from localstack.services.sqs.models import sqs_stores

        queue = sqs_stores[context.account_id][context.region].queues.get(name)
    except Exception:  # noqa: BLE001
        queue = None
    key = (context.account_id, context.region, name)
    with STATE.lock:
        entry = STATE.queues.get(key)
        # The queue object itself, not its id(): an id can be reused once a deleted queue is freed.
        if entry is None or entry[1] is not queue:
            STATE.queues[key] = (now, queue)


# --- RDS: "creating" without an Endpoint -----------------------------------------------------------


def _creating(db) -> bool:
    with STATE.lock:
        created = STATE.databases.get((db.account_id, db.region, str(db.db_instance_identifier).lower()))
    return SETTINGS.enabled and _young(created, SETTINGS.rds)


def _patch_rds():
    """moto makes instances available at once; AWS keeps them 'creating', with no Endpoint, for
    minutes (https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/accessing-monitoring.html).
    A property in front of moto's attribute answers 'creating' for the window; moto's own checks
    (e.g. ModifyDBInstance on an instance that is not available) then see it too."""
    from moto.rds.models import DBInstance

    original_endpoint = DBInstance.endpoint

    def get_status(self):
        if _creating(self):
            return "creating"
        return self.__dict__.get("status", "available")

    def set_status(self, value):
        self.__dict__["status"] = value

    def get_endpoint(self):
        return None if _creating(self) else original_endpoint.fget(self)

    DBInstance.status = property(get_status, set_status)
    DBInstance.endpoint = property(get_endpoint)


# --- pagination: a deleted item does not break the next page --------------------------------------


# Next-page token -> the order of every item's key when the token was made, for the last few
# hundred tokens (a reader follows its tokens within seconds).
_TOKEN_ORDERS: "dict[str, list[str]]" = {}
_TOKEN_ORDERS_MAX = 500


def _patch_paginator():
    """moto's next-page token names the first item of the next page; when that item is deleted
    between two pages (another stack's destroy), moto answers InvalidToken "Resource not found!"
    or an empty last page. AWS documents no such failure: a marker stays valid while the set
    changes (e.g. https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DescribeDBInstances.html,
    "Marker"). Only the small pages this layer injects make the race likely, so the layer mends
    it: the page resumes at the first item after the deleted one that still exists."""
    from moto.utilities.paginator import Paginator

    original = Paginator.paginate

    def key_of(self, item) -> str:
        return "|".join(
            str(item[a] if isinstance(item, dict) else getattr(item, a, None))
            for a in self._unique_attributes
        )

    def paginate(self, results):
        token = self._starting_token
        if token and SETTINGS.enabled and not any(self._check_predicate(r) for r in results):
            with STATE.lock:
                order = _TOKEN_ORDERS.get(token)
            wanted = self._parsed_token["uniqueAttributes"] if self._parsed_token else None
            if order and wanted in order:
                present = {key_of(self, r): r for r in results}
                later = order[order.index(wanted) + 1 :]
                nxt = next((present[k] for k in later if k in present), None)
                if nxt is None:
                    return [], None
                self._parsed_token = self._token_decoder.decode(self._build_next_token(nxt))
        page, next_token = original(self, results)
        if next_token:
            with STATE.lock:
                _TOKEN_ORDERS[next_token] = [key_of(self, r) for r in results]
                while len(_TOKEN_ORDERS) > _TOKEN_ORDERS_MAX:
                    _TOKEN_ORDERS.pop(next(iter(_TOKEN_ORDERS)))
        return page, next_token

    Paginator.paginate = paginate


# --- status route ----------------------------------------------------------------------------------


def _status_route(request):
    from localstack.http import Response

    return Response.for_json(SETTINGS.as_json())


STATUS_PATH = "/_securecart/strict"


def install(settings: Settings):
    """Adds the handlers and the status route; separated from the hook so it can be tested."""
    global SETTINGS
    SETTINGS = settings
    from localstack.aws import handlers
    from localstack.services.edge import ROUTER

    ROUTER.add(STATUS_PATH, _status_route, methods=["GET"])
    if not settings.enabled:
        LOG.info("securecart strict layer is off (%s=off)", ENV)
        return
    _patch_rds()
    _patch_paginator()
    handlers.serve_custom_service_request_handlers.append(on_request)
    handlers.run_custom_response_handlers.append(on_response)
    LOG.info("securecart strict layer is on: %s", settings.as_json())


from localstack.runtime import hooks  # noqa: E402 - plux only; cheap to import while listing plugins


# The moto modules behind the services securecart calls, imported once at start-up. Lazily,
# the first requests import them on many threads at once, and Python's import locks can then
# report a deadlock (`deadlock detected by _ModuleLock('moto.s3.exceptions')`) that leaves the
# module half-imported: every later call needing it answers 500 for the life of the process
# (seen on a cold start under the parallel integration tests: logs.DescribeLogGroups).
WARM_MODULES = [
    "moto.s3.exceptions",
    "moto.s3.models",
    "moto.logs.models",
    "moto.events.models",
    "moto.ec2.models",
    "moto.elb.models",
    "moto.elbv2.models",
    "moto.autoscaling.models",
    "moto.rds.models",
    "moto.iam.models",
    "moto.sts.models",
    "moto.sns.models",
    "moto.sqs.models",
    "moto.ssm.models",
    "moto.secretsmanager.models",
    "moto.kms.models",
    "moto.stepfunctions.models",
    "moto.awslambda.models",
    "moto.resourcegroupstaggingapi.models",
]


def warm_imports():
    import importlib

    for name in WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as e:  # a module this moto lacks is not ours to fail on
            sys.stderr.write(f"securecart: not pre-imported {name}: {e}\n")


@hooks.on_infra_start()
def securecart_strict():
    warm_imports()
    try:
        settings = parse_settings(os.environ.get(ENV))
    except SettingsError as e:
        # The starter sees the process end and shows these last lines of the log.
        sys.stderr.write(f"ERROR: {e}\n")
        sys.stderr.flush()
        os._exit(2)
    install(settings)
