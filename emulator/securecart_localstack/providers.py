"""Service providers that route every operation of rds, elbv2 and autoscaling to LocalStack's in-process moto.

LocalStack Community 4.14 ships no provider for these services, but its bundled moto-ext implements
them and shares state with the EC2 provider (subnets, instances, security groups), so a dispatch
table that sends each operation of the service's spec straight to moto is all that is needed.
"""

from localstack.services.plugins import Service, aws_provider


class _MotoOnlyProvider:
    """Carries the service name for LocalStack's plumbing; all behaviour comes from moto."""

    def __init__(self, service: str) -> None:
        self.service = service


def _moto_service(api: str) -> Service:
    # Imported lazily: these modules pull in moto and botocore models, which plux must not load
    # merely to list plugins.
    from localstack.aws.spec import load_service
    from localstack.services.moto import call_moto

    def forward(context, _request):
        return call_moto(context)

    model = load_service(api)
    table = {name: forward for name in model.operation_names}
    return Service.for_provider(_MotoOnlyProvider(api), dispatch_table_factory=lambda _p: table)


@aws_provider()
def rds() -> Service:
    return _moto_service("rds")


@aws_provider()
def elbv2() -> Service:
    return _moto_service("elbv2")


@aws_provider()
def autoscaling() -> Service:
    return _moto_service("autoscaling")
