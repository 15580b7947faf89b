"""Install-time check that LocalStack's plugin loader (plux) finds SecureCart's plugins; exits non-zero if not."""

import sys

PROVIDERS = ("rds:default", "elbv2:default", "autoscaling:default")
EXECUTORS = ("securecart-local",)
HOOKS = ("securecart_strict",)


def main() -> int:
    from plux import PluginManager

    problems = []
    providers = PluginManager("localstack.aws.provider")
    by_name = {spec.name: spec for spec in providers.list_plugin_specs()}
    for name in PROVIDERS:
        spec = by_name.get(name)
        if spec is None:
            problems.append(f"provider {name} not discovered")
        elif not spec.factory.__module__.startswith("securecart_localstack"):
            problems.append(f"provider {name} resolves to {spec.factory.__module__}, not securecart_localstack")
    executors = PluginManager("localstack.lambda.runtime_executor")
    for name in EXECUTORS:
        if not executors.exists(name):
            problems.append(f"lambda runtime executor {name} not discovered")
    servers = PluginManager("localstack.runtime.server")
    if not servers.exists("securecart-twisted"):
        problems.append("runtime server securecart-twisted not discovered")
    hooks = PluginManager("localstack.hooks.on_infra_start")
    for name in HOOKS:
        if not hooks.exists(name):
            problems.append(f"on_infra_start hook {name} (the strict layer) not discovered")
    # Building one service proves the provider module imports against this LocalStack/moto; the
    # tagging and packages modules use Python 3.13 APIs (warnings.deprecated, threading.Lock | None),
    # so importing them catches an interpreter LocalStack cannot run on.
    if not problems:
        import localstack.packages.api  # noqa: F401
        import localstack.utils.tagging  # noqa: F401

        providers.load("rds:default").load()
        executors.load("securecart-local").load()
        servers.load("securecart-twisted")
        hooks.load("securecart_strict")
        # The strict layer's handlers and its moto patch resolve against this LocalStack/moto.
        from moto.rds.models import DBInstance

        from localstack.aws import handlers

        if not isinstance(DBInstance.__dict__.get("endpoint"), property):
            problems.append("moto's DBInstance.endpoint is no longer a property (the strict layer patches it)")
        for name in ("serve_custom_service_request_handlers", "run_custom_response_handlers"):
            if not hasattr(handlers, name):
                problems.append(f"localstack.aws.handlers.{name} is gone (the strict layer appends to it)")
    for problem in problems:
        print(problem, file=sys.stderr)
    if not problems:
        print("securecart_localstack plugins discovered: " + ", ".join(PROVIDERS + EXECUTORS + ("securecart-twisted",) + HOOKS))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
