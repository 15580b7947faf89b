"""A Lambda execution environment for Python handlers, run as a local process by lambda_executor.

Protocol (one JSON object per line): the worker writes {"type": "ready"} once the handler module
is initialised (or its import failed), then for each {"request_id", "payload", "invoked_function_arn",
"deadline_ms"} read from the executor it answers {"ok", "payload", "logs"}. The original stdin and
stdout carry only this protocol; the handler's stdout and stderr are captured per invocation.
"""

import importlib
import json
import logging
import math
import os
import resource
import sys
import tempfile
import time
import traceback

_PROTO_IN = os.fdopen(os.dup(0), "rb", buffering=0)
_PROTO_OUT = os.fdopen(os.dup(1), "wb", buffering=0)
# From here on, anything the handler prints lands on fd 1/2, never on the protocol channel.
_devnull = os.open(os.devnull, os.O_RDONLY)
os.dup2(_devnull, 0)
os.dup2(2, 1)
sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)

_REQUEST_ID = {"value": ""}


class _RequestIdFilter(logging.Filter):
    def filter(self, record):
        record.aws_request_id = _REQUEST_ID["value"]
        return True


def _setup_logging():
    # Mirrors the AWS Python runtime: the root logger prints "[LEVEL] time request-id message".
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n", "%Y-%m-%dT%H:%M:%S")
    )
    handler.formatter.converter = time.gmtime
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL")
    if level:
        root.setLevel(level.upper())


class _Capture:
    """Points fds 1 and 2 at a temporary file so that all output, even from C code or child
    processes, ends up in this invocation's log."""

    def __enter__(self):
        sys.stdout.flush()
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = (os.dup(1), os.dup(2))
        os.dup2(self._file.fileno(), 1)
        os.dup2(self._file.fileno(), 2)
        return self

    def __exit__(self, *exc):
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(self._saved[0], 1)
        os.dup2(self._saved[1], 2)
        os.close(self._saved[0])
        os.close(self._saved[1])
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        return False


class LambdaContext:
    def __init__(self, request_id, invoked_function_arn, deadline_ms):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(error_type, message, tb=None):
    stack = traceback.format_list(traceback.extract_tb(tb)) if tb is not None else []
    return {"errorMessage": message, "errorType": error_type, "requestId": "", "stackTrace": stack}


def _load_handler():
    """Returns (handler, None) or (None, error) with the AWS runtime's error types."""
    spec = os.environ.get("_HANDLER", "")
    try:
        module_path, func_name = spec.rsplit(".", 1)
    except ValueError:
        return None, _error("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    module_name = module_path.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        return None, _error("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {e}")
    except SyntaxError as e:
        return None, _error("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {e}")
    except Exception as e:  # noqa: BLE001 - init errors are reported to the caller like on AWS
        return None, _error(type(e).__name__, str(e), e.__traceback__)
    handler = getattr(module, func_name, None)
    if handler is None:
        return None, _error("Runtime.HandlerNotFound", f"Handler '{func_name}' missing on module '{module_name}'")
    return handler, None


def _send(obj):
    _PROTO_OUT.write((json.dumps(obj) + "\n").encode())


def _run(handler, init_error, request):
    request_id = request["request_id"]
    _REQUEST_ID["value"] = request_id
    if init_error is not None:
        error = dict(init_error, requestId=request_id)
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        return False, json.dumps(error)
    try:
        raw = request.get("payload") or "{}"
        event = json.loads(raw)
    except ValueError as e:
        return False, json.dumps(dict(_error("Runtime.UnmarshalError", f"Unable to unmarshal input: {e}"), requestId=request_id))
    context = LambdaContext(request_id, request.get("invoked_function_arn"), request["deadline_ms"])
    try:
        result = handler(event, context)
    except Exception as e:  # noqa: BLE001 - an unhandled error is the function's result
        error = _error(type(e).__name__, str(e), e.__traceback__.tb_next)
        error["requestId"] = request_id
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        print("Traceback (most recent call last):\n" + "".join(error["stackTrace"]), end="", file=sys.stderr)
        return False, json.dumps(error)
    try:
        return True, json.dumps(result)
    except (TypeError, ValueError) as e:
        error = _error("Runtime.MarshalError", f"Unable to marshal response: {e}")
        error["requestId"] = request_id
        print(f"[ERROR] {error['errorType']}: {error['errorMessage']}", file=sys.stderr)
        return False, json.dumps(error)


def main():
    _setup_logging()
    version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
    memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
    with _Capture() as init:
        handler, init_error = _load_handler()
    pending_init_logs = init.text
    _send({"type": "ready"})
    for line in _PROTO_IN:
        if not line.strip():
            continue
        request = json.loads(line)
        request_id = request["request_id"]
        started = time.monotonic()
        with _Capture() as cap:
            ok, payload = _run(handler, init_error, request)
        duration_ms = (time.monotonic() - started) * 1000
        max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        logs = (
            pending_init_logs
            + f"START RequestId: {request_id} Version: {version}\n"
            + cap.text
            + f"END RequestId: {request_id}\n"
            + f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            + f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\tMemory Size: {memory} MB\t"
            + f"Max Memory Used: {max_rss_mb} MB\t\n"
        )
        pending_init_logs = ""
        _send({"ok": ok, "payload": payload, "logs": logs})


if __name__ == "__main__":
    main()
